package events

import (
	"slices"

	"github.com/identityd/identityd/store"
)

// AllEvents in enabled_events selects every event type identityd emits.
const AllEvents = "*"

// ValidEventType reports whether typ may appear in an endpoint's enabled_events: one of the event types
// identityd emits, or "*".
func ValidEventType(typ string) bool {
	if typ == AllEvents {
		return true
	}
	return slices.Contains(store.EventTypes, typ)
}

// Matches reports whether an endpoint with enabledEvents subscribes to typ.
//
// "*" includes identity.verification_session.redacted. Stripe documents `*` as "all events except those
// that require explicit selection", and a third-party mirror of its docs says `.redacted` is one of them;
// identityd delivers it to `*` anyway: the event carries no personal data, it is the signal a merchant needs
// to erase its own copies, and a receiver that does not know a type ignores it, while one that never hears
// of a redaction cannot act on it. List types explicitly to leave it out.
func Matches(enabledEvents []string, typ string) bool {
	for _, e := range enabledEvents {
		if e == AllEvents || e == typ {
			return true
		}
	}
	return false
}
