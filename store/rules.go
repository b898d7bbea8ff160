package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Redacted replaces every personal string (Stripe's placeholder; also a member of the `sex` enum).
const Redacted = "[redacted]"

// The scrub rules, in one table. Every field of every object kind that can show a person's data is declared
// here once: kept as it is, or personal with the action a redaction applies. The table is an allow-list: a
// field it does not name is personal (Redact for strings, Null for anything else), so a field added to a
// type without a line here is scrubbed rather than kept — and TestRules_ClassifyEveryField fails until the
// line is written. Scrubbing (scrubDoc), the split of request parameters into kept and personal
// (SplitParams) and the canary fixtures of the tests all read this table; nothing else knows a field name.

// Action is what a redaction does to a field.
type Action uint8

// The actions. Keep leaves the value alone; the others apply to personal fields.
const (
	// Keep leaves the value as it is: ids, enums, timestamps, statuses.
	Keep Action = iota
	// Redact turns a non-null string into "[redacted]" (each element of an array of strings); null stays null.
	Redact
	// Null turns the value into null (dates, id_number_type, single-use credentials).
	Null
	// Empty turns the value into {} (metadata: its keys are personal like its values).
	Empty
	// Nested applies the rules of another kind to an object value; a string value (an id) is kept.
	Nested
)

// String names the action as the table reads.
func (a Action) String() string {
	return [...]string{"keep", "redact", "null", "empty", "nested"}[a]
}

// Kind names one object shape of the table.
type Kind string

// The object kinds.
const (
	KindSession         Kind = "identity.verification_session"
	KindLastError       Kind = "last_error"
	KindProvidedDetails Kind = "provided_details"
	KindVerifiedOutputs Kind = "verified_outputs"
	KindAddress         Kind = "address"
	KindReport          Kind = "identity.verification_report"
	KindDocumentCheck   Kind = "document_check"
	KindIDNumberCheck   Kind = "id_number_check"
	KindEmailCheck      Kind = "email_check"
	KindPhoneCheck      Kind = "phone_check"
	KindSelfieCheck     Kind = "selfie_check"
	KindCheckError      Kind = "check_error"
)

// Rule is one field's entry in the table.
type Rule struct {
	Action Action
	// Of is the kind whose rules apply to the value, for Nested.
	Of Kind
}

var (
	keep   = Rule{Action: Keep}
	redact = Rule{Action: Redact}
	null   = Rule{Action: Null}
	empty  = Rule{Action: Empty}
)

func nested(k Kind) Rule { return Rule{Action: Nested, Of: k} }

// Rules is the table: kind → field → rule.
var Rules = map[Kind]map[string]Rule{
	KindSession: {
		"id": keep, "object": keep, "client_reference_id": keep, "client_secret": null, "created": keep,
		"last_error": nested(KindLastError), "last_verification_report": nested(KindReport), "livemode": keep,
		"metadata": empty, "options": keep, "provided_details": nested(KindProvidedDetails), "redaction": keep,
		"related_customer": keep, "related_customer_account": keep, "related_person": keep, "status": keep, "type": keep, "url": null,
		"verified_outputs": nested(KindVerifiedOutputs), "rev": keep,
	},
	// A reason is free text (the test helper and the hosted page take one): personal; the code is an enum.
	KindLastError:       {"code": keep, "reason": redact},
	KindProvidedDetails: {"email": redact, "phone": redact},
	KindVerifiedOutputs: {
		"address": nested(KindAddress), "dob": null, "email": redact, "first_name": redact, "id_number": redact,
		"id_number_type": null, "last_name": redact, "phone": redact, "sex": redact,
		"unparsed_place_of_birth": redact, "unparsed_sex": redact,
	},
	KindAddress: {
		"city": redact, "country": redact, "line1": redact, "line2": redact, "postal_code": redact, "state": redact,
	},
	KindReport: {
		"id": keep, "object": keep, "client_reference_id": keep, "created": keep,
		"document": nested(KindDocumentCheck), "email": nested(KindEmailCheck), "id_number": nested(KindIDNumberCheck),
		"livemode": keep, "options": keep, "phone": nested(KindPhoneCheck), "selfie": nested(KindSelfieCheck),
		"type": keep, "verification_session": keep,
	},
	KindDocumentCheck: {
		"address": nested(KindAddress), "dob": null, "error": nested(KindCheckError), "expiration_date": null,
		"files": redact, "first_name": redact, "issued_date": null, "issuing_country": redact, "last_name": redact,
		"number": redact, "sex": redact, "status": keep, "type": keep, "unparsed_place_of_birth": redact,
		"unparsed_sex": redact,
	},
	KindIDNumberCheck: {
		"dob": null, "error": nested(KindCheckError), "first_name": redact, "id_number": redact,
		"id_number_type": null, "last_name": redact, "status": keep,
	},
	KindEmailCheck:  {"email": redact, "error": nested(KindCheckError), "status": keep},
	KindPhoneCheck:  {"error": nested(KindCheckError), "phone": redact, "status": keep},
	KindSelfieCheck: {"document": redact, "error": nested(KindCheckError), "selfie": redact, "status": keep},
	KindCheckError:  {"code": keep, "reason": redact},
}

// ruleFor returns the rule of a field; an undeclared field is personal.
func ruleFor(k Kind, field string) Rule {
	if r, ok := Rules[k][field]; ok {
		return r
	}
	return Rule{Action: Redact}
}

// scrubValue applies the rules of kind k to a decoded JSON object and returns the scrubbed value. Values that
// are not objects are returned as they are (a null, an id where an object may be expanded).
func scrubValue(k Kind, v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	for field, val := range m {
		m[field] = applyRule(ruleFor(k, field), val)
	}
	return m
}

func applyRule(r Rule, v any) any {
	switch r.Action {
	case Keep:
		return v
	case Null:
		return nil
	case Empty:
		return map[string]any{}
	case Nested:
		if _, isObject := v.(map[string]any); isObject {
			return scrubValue(r.Of, v)
		}
		if _, isString := v.(string); isString || v == nil {
			return v
		}
		return nil // an unexpected shape of a nested field: nothing of it is known to be safe
	default: // Redact
		switch x := v.(type) {
		case nil:
			return nil
		case string:
			return Redacted
		case []any:
			out := make([]any, len(x))
			for i := range out {
				out[i] = Redacted
			}
			return out
		default:
			return nil // a personal value that is not a string has no placeholder of its type
		}
	}
}

// scrubDoc applies the rules of kind k to an encoded JSON object (a whole object or a partial one, such as a
// version patch of a session).
func scrubDoc(k Kind, doc []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("scrub %s: %w", k, err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("scrub %s: not an object", k)
	}
	return json.Marshal(scrubValue(k, v))
}

// scrubRaw is scrubDoc for compact JSON as json.Marshal writes it: it walks the top-level members and keeps
// the bytes of kept ones, decoding only nested personal objects. Anything it cannot walk goes to scrubDoc.
func scrubRaw(k Kind, doc []byte) ([]byte, error) {
	out := make([]byte, 0, len(doc))
	out = append(out, '{')
	var failed error
	walked := EachMember(doc, func(field string, v []byte) bool {
		r := ruleFor(k, field)
		switch {
		case r.Action == Empty:
			out = appendMember(out, field, []byte("{}"))
		case r.Action == Keep || string(v) == "null":
			out = appendMember(out, field, v)
		case r.Action == Null:
			out = appendMember(out, field, []byte("null"))
		case r.Action == Redact && v[0] == '"':
			out = appendMember(out, field, []byte(`"`+Redacted+`"`))
		default: // nested objects, arrays, values of an unexpected type: the decoded rules
			var val any
			if err := json.Unmarshal(v, &val); err != nil {
				failed = err
				return false
			}
			enc, err := json.Marshal(applyRule(r, val))
			if err != nil {
				failed = err
				return false
			}
			out = appendMember(out, field, enc)
		}
		return true
	})
	if failed != nil || !walked {
		return scrubDoc(k, doc)
	}
	return append(out, '}'), nil
}

// scrubTyped applies the rules of kind k to a typed object in place.
func scrubTyped[T any](k Kind, obj *T) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	out, err := scrubRaw(k, body)
	if err != nil {
		return err
	}
	var fresh T
	if err := json.Unmarshal(out, &fresh); err != nil {
		return err
	}
	*obj = fresh
	return nil
}

// ScrubSession applies the session rules to a session (an expanded last_verification_report is not part of
// a stored session).
func ScrubSession(s *Session) error { return scrubTyped(KindSession, s) }

// ScrubReport applies the report rules to a report.
func ScrubReport(r *Report) error { return scrubTyped(KindReport, r) }

// Request parameters follow the same allow-list: the names below hold ids, enums, booleans, numbers and
// list controls; every other parameter — an unknown one included — is personal.

// keptParams are the exact request parameters that never hold personal data.
var keptParams = map[string]bool{"type": true, "client_reference_id": true, "related_customer": true,
	"related_customer_account": true,
	"related_person[account]":  true, "related_person[person]": true, "limit": true, "starting_after": true,
	"ending_before": true, "status": true, "created": true, "created[gt]": true, "created[gte]": true,
	"created[lt]": true, "created[lte]": true, "outcome": true, "last_error[code]": true, "options": true,
	"options[document]": true, "options[document][require_id_number]": true,
	"options[document][require_live_capture]": true, "options[document][require_matching_selfie]": true,
	"verification_session": true, "dry_run": true, "document[type]": true, "object": true, "event": true,
	"webhook_endpoint": true, "delivery_success": true, "expires_in": true,
	"enabled_events": true, "disabled": true, "api_version": true, "url": true, "description": true,
}

// keptArrays are arrays of kept values (key[] or key[N]).
var keptArrays = []string{"expand", "types", "options[document][allowed_types]", "enabled_events"}

// KeptParam reports whether a request parameter is kept as sent in stored request logs.
func KeptParam(key string) bool {
	if keptParams[key] {
		return true
	}
	for _, a := range keptArrays {
		if rest, ok := strings.CutPrefix(key, a+"["); ok && strings.HasSuffix(rest, "]") &&
			strings.Trim(rest[:len(rest)-1], "0123456789") == "" {
			return true
		}
	}
	return false
}

// Param is one request parameter as it arrived.
type Param struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

// SplitParams separates a request's parameters into those kept as sent and the personal ones, in order.
// The personal ones are stored only in the personal-data record of the session the request changed.
func SplitParams(params []Param) (kept, personal []Param) {
	kept = []Param{}
	for _, p := range params {
		if KeptParam(p.Key) {
			kept = append(kept, p)
		} else {
			personal = append(personal, p)
		}
	}
	return kept, personal
}

// ScrubParams applies the rules to request parameters: kept ones stay, metadata ones are dropped whole (keys
// included), every other one keeps its name only when the name is a known parameter, with the placeholder as
// value.
func ScrubParams(params []Param) []Param {
	out := []Param{}
	for _, p := range params {
		switch {
		case KeptParam(p.Key):
			out = append(out, p)
		case p.Key == "metadata" || strings.HasPrefix(p.Key, "metadata["):
		case KnownParam(p.Key):
			out = append(out, Param{Key: p.Key, Value: Redacted})
		default:
			out = append(out, Param{Key: Redacted, Value: Redacted})
		}
	}
	return out
}

// personalParamPrefixes are the parameter families identityd accepts that hold personal data.
var personalParamPrefixes = []string{"provided_details", "verified_outputs", "document", "last_error[reason]",
	"return_url", "metadata"}

// KnownParam reports whether a parameter's name is one identityd accepts: its name (unlike an unknown one's)
// is not something a client chose, so a stored log may show it.
func KnownParam(key string) bool {
	if KeptParam(key) {
		return true
	}
	if slices.Contains(keptArrays, key) {
		return true
	}
	for _, p := range personalParamPrefixes {
		if key == p {
			return true
		}
		if rest, ok := strings.CutPrefix(key, p+"["); ok {
			field, _, _ := strings.Cut(rest, "]")
			return p != "metadata" && knownParamField(p, field)
		}
	}
	return false
}

// knownParamField reports whether field is a field the table declares for the family's object.
func knownParamField(family, field string) bool {
	switch family {
	case "provided_details":
		_, ok := Rules[KindProvidedDetails][field]
		return ok
	case "verified_outputs":
		_, ok := Rules[KindVerifiedOutputs][field]
		return ok
	case "document":
		_, ok := Rules[KindDocumentCheck][field]
		return ok
	}
	return false
}
