package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// Event types identityd emits.
const (
	EventSessionCreated       = "identity.verification_session.created"
	EventSessionProcessing    = "identity.verification_session.processing"
	EventSessionVerified      = "identity.verification_session.verified"
	EventSessionRequiresInput = "identity.verification_session.requires_input"
	EventSessionCanceled      = "identity.verification_session.canceled"
	EventSessionRedacted      = "identity.verification_session.redacted"
)

// EventTypes lists every type, in lifecycle order.
var EventTypes = []string{EventSessionCreated, EventSessionProcessing, EventSessionVerified,
	EventSessionRequiresInput, EventSessionCanceled, EventSessionRedacted}

// Event is a Stripe Event object.
type Event struct {
	ID              string       `json:"id"`
	Object          string       `json:"object"`
	APIVersion      string       `json:"api_version"`
	Created         int64        `json:"created"`
	Data            EventData    `json:"data"`
	Livemode        bool         `json:"livemode"`
	PendingWebhooks int          `json:"pending_webhooks"`
	Request         EventRequest `json:"request"`
	Type            string       `json:"type"`
	// Account is the owning account; not rendered (Stripe shows `account` only for Connect events).
	Account string `json:"-"`
	// ref is the session version data.object shows; the stored event keeps only it (storedEvent).
	ref SessionRef
}

// storedEvent is an event as stored: its envelope and a reference to the version of the session it shows.
// The idempotency key of the request behind it is personal data and lives in the session's personal-data
// record, under the request id.
type storedEvent struct {
	ID         string  `json:"id"`
	APIVersion string  `json:"api_version"`
	Created    int64   `json:"created"`
	Livemode   bool    `json:"livemode"`
	Type       string  `json:"type"`
	Session    string  `json:"s"`
	Rev        int64   `json:"v"`
	Request    *string `json:"r,omitempty"`
	// IdempotencyKey is true when the request had one (read it from the personal-data record).
	IdempotencyKey bool `json:"ik,omitempty"`
}

// EventData holds the snapshot of the object the event is about.
type EventData struct {
	Object json.RawMessage `json:"object"`
}

// EventRequest names the API request that caused the event; both are null for background changes.
type EventRequest struct {
	ID             *string `json:"id"`
	IdempotencyKey *string `json:"idempotency_key"`
}

// ObjectID returns the id of the object the event is about.
func (e *Event) ObjectID() string {
	if e.ref.ID != "" {
		return e.ref.ID
	}
	var head struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(e.Data.Object, &head)
	return head.ID
}

func newEvent(now int64, sc Scope, typ string, object json.RawMessage, o Origin) *Event {
	ev := &Event{ID: NewID("evt"), Object: "event", APIVersion: APIVersion, Created: now,
		Data: EventData{Object: object}, Livemode: sc.Livemode, Type: typ, Account: sc.Account}
	if o.RequestID != "" {
		rid := o.RequestID
		ev.Request.ID = &rid
	}
	if o.IdempotencyKey != "" {
		k := o.IdempotencyKey
		ev.Request.IdempotencyKey = &k
	}
	return ev
}

// writeEvent queues the event's writes: the envelope with its reference, its indexes, the session's event
// set, its webhook outbox entry, and a stream entry that carries ids only.
func (s *Store) writeEvent(ctx context.Context, pipe redis.Pipeliner, sc Scope, ev *Event, sessionID string) error {
	body, err := json.Marshal(storedEvent{ID: ev.ID, APIVersion: ev.APIVersion, Created: ev.Created,
		Livemode: ev.Livemode, Type: ev.Type, Session: ev.ref.ID, Rev: ev.ref.Rev, Request: ev.Request.ID,
		IdempotencyKey: ev.Request.IdempotencyKey != nil})
	if err != nil {
		return err
	}
	member := indexMember(ev.Created, ev.ID)
	pipe.Set(ctx, s.eventKey(sc, ev.ID), EncodeDoc(body), 0)
	pipe.ZAdd(ctx, s.eventIndexKey(sc), redis.Z{Member: member})
	pipe.ZAdd(ctx, s.eventTypeIndexKey(sc, ev.Type), redis.Z{Member: member})
	pipe.ZAdd(ctx, s.sessionEventsKey(sc, sessionID), redis.Z{Score: float64(ev.Created), Member: ev.ID})
	// Due for fan-out from this commit on: a process that dies before its fan-out leaves the entry to the
	// reconciler (outbox.go).
	pipe.ZAdd(ctx, s.webhookOutboxKey(sc), redis.Z{Score: float64(s.clock.Now().UnixMilli()), Member: ev.ID})
	pipe.XAdd(ctx, &redis.XAddArgs{
		Stream: s.StreamKey(sc), MaxLen: s.StreamMaxLen, Approx: true,
		Values: []string{"id", ev.ID, "type", ev.Type, "object", sessionID, "account", sc.Account},
	})
	return nil
}

// GetEvent loads one event.
func (s *Store) GetEvent(ctx context.Context, sc Scope, id string) (*Event, error) {
	if !safeID(id) {
		return nil, ErrNotFound
	}
	evs, err := s.loadEvents(ctx, sc, []string{id})
	if err != nil {
		return nil, err
	}
	if evs[0] == nil {
		return nil, ErrNotFound
	}
	return evs[0], nil
}

// Events loads events by id, rendered (nil where missing).
func (s *Store) Events(ctx context.Context, sc Scope, ids []string) ([]*Event, error) {
	return s.loadEvents(ctx, sc, ids)
}

// loadEvents loads events by id and renders them (nil where missing): each stored envelope with the version
// of the session it refers to, and the pending webhook counts. Three round trips whatever the number.
func (s *Store) loadEvents(ctx context.Context, sc Scope, ids []string) ([]*Event, error) {
	stored, err := mget[storedEvent](ctx, s, ids, func(id string) string { return s.eventKey(sc, id) })
	if err != nil {
		return nil, err
	}
	return s.renderEvents(ctx, sc, stored)
}

// renderEvents turns stored events into Stripe's shape: data.object is the referenced version of the session
// (scrubbed once its redaction was requested), request.idempotency_key comes from its personal-data record.
func (s *Store) renderEvents(ctx context.Context, sc Scope, stored []*storedEvent) ([]*Event, error) {
	want := map[string]*historyWant{}
	for _, se := range stored {
		if se == nil {
			continue
		}
		w := want[se.Session]
		if w == nil {
			w = &historyWant{}
			want[se.Session] = w
		}
		w.maxRev = max(w.maxRev, se.Rev)
		if se.IdempotencyKey && se.Request != nil {
			w.requests = append(w.requests, *se.Request)
		}
	}
	hist, err := s.histories(ctx, sc, want)
	if err != nil {
		return nil, err
	}
	out := make([]*Event, len(stored))
	for i, se := range stored {
		if se == nil {
			continue
		}
		ev := &Event{ID: se.ID, Object: "event", APIVersion: se.APIVersion, Created: se.Created,
			Livemode: se.Livemode, Type: se.Type, Account: sc.Account, ref: SessionRef{ID: se.Session, Rev: se.Rev}}
		h := hist[se.Session]
		if h == nil || !h.found {
			return nil, fmt.Errorf("event %s: session %s: %w", se.ID, se.Session, ErrNotFound)
		}
		sess, err := h.at(se.Rev)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", se.ID, err)
		}
		ev.Data.Object = sessionSnapshot(sess)
		if se.Request != nil {
			rid := *se.Request
			ev.Request.ID = &rid
			if se.IdempotencyKey {
				key := Redacted // the record lost it: show that there was one, not what it was
				if p := h.request(rid); p != nil && p.IdempotencyKey != nil {
					key = *p.IdempotencyKey
				}
				ev.Request.IdempotencyKey = &key
			}
		}
		out[i] = ev
	}
	return out, s.withPendingWebhooks(ctx, sc, out)
}

// EventFilter selects events; Types empty means all.
type EventFilter struct {
	Types []string
	// DeliverySuccess, when set, keeps the events whose deliveries to the scope's endpoints all succeeded
	// (true), or those with a delivery to one of them still pending or failed (false). A deleted endpoint's
	// deliveries no longer count, and neither does a delivery whose state expired (its TTL outlives the retries by 30 days).
	DeliverySuccess *bool
}

// ListEvents returns a page of events, newest first.
func (s *Store) ListEvents(ctx context.Context, sc Scope, f EventFilter, p Page) ([]*Event, bool, error) {
	cursor, err := s.cursorMember(p, func(id string) (int64, error) {
		ev, err := s.GetEvent(ctx, sc, id)
		if err != nil {
			return 0, err
		}
		return ev.Created, nil
	})
	if err != nil {
		return nil, false, err
	}
	key := s.eventIndexKey(sc)
	if len(f.Types) == 1 {
		key = s.eventTypeIndexKey(sc, f.Types[0])
	}
	match := func(ev *Event) bool {
		if len(f.Types) == 0 {
			return true
		}
		return slices.Contains(f.Types, ev.Type)
	}
	var endpoints []string
	if f.DeliverySuccess != nil {
		if endpoints, err = s.endpointIDs(ctx, sc); err != nil {
			return nil, false, err
		}
	}
	undelivered := map[string]bool{} // filled by each stretch's load, read by match right after it
	stored, hasMore, err := listFiltered(ctx, s, key, p, cursor, func(ctx context.Context, ids []string) ([]*storedEvent, error) {
		evs, err := mget[storedEvent](ctx, s, ids, func(id string) string { return s.eventKey(sc, id) })
		if err == nil && f.DeliverySuccess != nil {
			err = s.markUndelivered(ctx, sc, ids, endpoints, undelivered)
		}
		return evs, err
	}, func(se *storedEvent) bool {
		return match(&Event{Type: se.Type}) && (f.DeliverySuccess == nil || undelivered[se.ID] != *f.DeliverySuccess)
	})
	if err != nil {
		return nil, false, err
	}
	evs, err := s.renderEvents(ctx, sc, stored)
	return evs, hasMore, err
}

// SessionEventIDs returns the ids of every event about a session.
func (s *Store) SessionEventIDs(ctx context.Context, sc Scope, sessionID string) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, s.sessionEventsKey(sc, sessionID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("session events: %w", err)
	}
	return ids, nil
}
