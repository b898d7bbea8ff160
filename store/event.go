package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// APIVersion is the Stripe API version events are rendered with (stripe-go v85's pinned version).
const APIVersion = "2026-03-25.dahlia"

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

// ObjectID returns data.object.id.
func (e *Event) ObjectID() string {
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

// writeEvent queues the event's writes: the object, its indexes, the session's event set, and a stream entry
// that carries ids only.
func (s *Store) writeEvent(ctx context.Context, pipe redis.Pipeliner, sc Scope, ev *Event, sessionID string) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	member := indexMember(ev.Created, ev.ID)
	pipe.Set(ctx, s.eventKey(sc, ev.ID), EncodeDoc(body), 0)
	pipe.ZAdd(ctx, s.eventIndexKey(sc), redis.Z{Member: member})
	pipe.ZAdd(ctx, s.eventTypeIndexKey(sc, ev.Type), redis.Z{Member: member})
	pipe.ZAdd(ctx, s.sessionEventsKey(sc, sessionID), redis.Z{Score: float64(ev.Created), Member: ev.ID})
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
	body, err := s.rdb.Get(ctx, s.eventKey(sc, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get event: %w", err)
	}
	var ev Event
	if body, err = DecodeDoc(body); err != nil {
		return nil, fmt.Errorf("decode event %s: %w", id, err)
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("decode event %s: %w", id, err)
	}
	ev.Account = sc.Account
	if err := s.withPendingWebhooks(ctx, sc, []*Event{&ev}); err != nil {
		return nil, err
	}
	return &ev, nil
}

// EventFilter selects events; Types empty means all.
type EventFilter struct {
	Types []string
}

// ListEvents returns a page of events, newest first.
func (s *Store) ListEvents(ctx context.Context, sc Scope, f EventFilter, p Page) ([]*Event, bool, error) {
	cursor, err := s.cursorMember(ctx, "", p, func(id string) (int64, error) {
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
		for _, t := range f.Types {
			if ev.Type == t {
				return true
			}
		}
		return false
	}
	evs, hasMore, err := listFiltered(ctx, s, key, p, cursor, func(ctx context.Context, ids []string) ([]*Event, error) {
		return mget[Event](ctx, s, ids, func(id string) string { return s.eventKey(sc, id) })
	}, match)
	if err != nil {
		return nil, false, err
	}
	return evs, hasMore, s.withPendingWebhooks(ctx, sc, evs)
}

// SessionEventIDs returns the ids of every event about a session.
func (s *Store) SessionEventIDs(ctx context.Context, sc Scope, sessionID string) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, s.sessionEventsKey(sc, sessionID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("session events: %w", err)
	}
	return ids, nil
}
