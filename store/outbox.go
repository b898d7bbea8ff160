package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The webhook outbox makes fan-out durable. The transaction that stores an event also adds it to its scope's
// outbox; the fan-out removes it only once every delivery it owes is recorded and its task enqueued. An entry
// that outlives its grace period belongs to a process that died (or failed) between the commit and the
// fan-out, and the reconciler fans it out again: recording deliveries dedupes per (event, endpoint) and
// delivery tasks have deterministic ids, so a second fan-out sends nothing twice.

// OutboxDue returns up to limit events of the scope committed no later than `before` and still waiting for their
// fan-out, oldest first.
func (s *Store) OutboxDue(ctx context.Context, sc Scope, before time.Time, limit int64) ([]string, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.webhookOutboxKey(sc), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(before.UnixMilli(), 10), Count: limit}).Result()
	if err != nil {
		return nil, fmt.Errorf("webhook outbox: %w", err)
	}
	return ids, nil
}

// ClearOutbox records that the fan-out of these events is done.
func (s *Store) ClearOutbox(ctx context.Context, sc Scope, eventIDs ...string) error {
	if len(eventIDs) == 0 {
		return nil
	}
	members := make([]any, len(eventIDs))
	for i, id := range eventIDs {
		members[i] = id
	}
	if err := s.rdb.ZRem(ctx, s.webhookOutboxKey(sc), members...).Err(); err != nil {
		return fmt.Errorf("clear webhook outbox: %w", err)
	}
	return nil
}

// markDeliveriesScript makes sure a delivery exists for each endpoint: a new one is created pending (and
// counted in the event's pending_webhooks), one still pending is left as it is, a finished one is left
// finished. It returns one flag per endpoint: 1 when this call created the delivery, or — with ARGV[3] = 1 —
// when the delivery is pending now, created by this call or before; 0 otherwise.
// KEYS[1] pending-webhooks hash, KEYS[2..] delivery keys; ARGV[1] event id, ARGV[2] ttl in seconds,
// ARGV[3] 1 to flag deliveries still pending from before.
var markDeliveriesScript = redis.NewScript(`
local flags = {}
local n = 0
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], 'pending', 'NX', 'EX', ARGV[2]) then
    n = n + 1
    flags[i - 1] = 1
  elseif ARGV[3] == '1' and redis.call('GET', KEYS[i]) == 'pending' then
    flags[i - 1] = 1
  else
    flags[i - 1] = 0
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[1], ARGV[1], n) end
return flags
`)

// deliveriesToReturn says which endpoints markDeliveries returns.
type deliveriesToReturn int

const (
	// createdOnly: the endpoints whose delivery the call created.
	createdOnly deliveriesToReturn = iota
	// pendingNow: those, and the endpoints whose delivery was still pending from before.
	pendingNow
)

// OpenDeliveries records that eventID is owed to each endpoint, as CreateDeliveries does, and returns the
// endpoints whose delivery is pending after the call: the new ones and those a fan-out that did not finish
// left pending (perhaps without a task). A delivery already finished is not returned.
func (s *Store) OpenDeliveries(ctx context.Context, sc Scope, eventID string, endpointIDs []string, ttl time.Duration) ([]string, error) {
	return s.markDeliveries(ctx, sc, eventID, endpointIDs, ttl, pendingNow)
}

// markDeliveries runs markDeliveriesScript for eventID and endpointIDs and returns the flagged endpoints.
func (s *Store) markDeliveries(ctx context.Context, sc Scope, eventID string, endpointIDs []string, ttl time.Duration, want deliveriesToReturn) ([]string, error) {
	if len(endpointIDs) == 0 {
		return nil, nil
	}
	keys := []string{s.pendingWebhooksKey(sc)}
	for _, id := range endpointIDs {
		keys = append(keys, s.deliveryKey(sc, eventID, id))
	}
	withPending := "0"
	if want == pendingNow {
		withPending = "1"
	}
	flags, err := markDeliveriesScript.Run(ctx, s.rdb, keys, eventID, int64(max(ttl, time.Second)/time.Second), withPending).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("mark deliveries: %w", err)
	}
	var flagged []string
	for i, f := range flags {
		if f == 1 && i < len(endpointIDs) {
			flagged = append(flagged, endpointIDs[i])
		}
	}
	return flagged, nil
}

// EventHeads loads events by id without rendering them: id, type, created, mode and account, which is all a
// fan-out needs (nil where missing). One MGET whatever the number.
func (s *Store) EventHeads(ctx context.Context, sc Scope, ids []string) ([]*Event, error) {
	stored, err := mget[storedEvent](ctx, s, ids, func(id string) string { return s.eventKey(sc, id) })
	if err != nil {
		return nil, err
	}
	out := make([]*Event, len(stored))
	for i, se := range stored {
		if se != nil {
			out[i] = &Event{ID: se.ID, Object: "event", APIVersion: se.APIVersion, Created: se.Created,
				Livemode: se.Livemode, Type: se.Type, Account: sc.Account, ref: SessionRef{ID: se.Session, Rev: se.Rev}}
		}
	}
	return out, nil
}
