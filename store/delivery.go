package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Delivery states of one (event, endpoint) pair. Only pending counts towards the event's pending_webhooks.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
	// DeliveryCanceled: the endpoint was deleted or disabled before the event reached it.
	DeliveryCanceled = "canceled"
)

// AttemptTTL is how long webhook attempt records are kept.
const AttemptTTL = 30 * 24 * time.Hour

// finishDelivery moves a pending delivery to its final state, takes it off the event's pending_webhooks and
// counts it on the redelivery job that reopened it, if any (redelivery.go); it returns 0 when the delivery
// was not pending (already finished, or unknown).
// KEYS[1] delivery key, KEYS[2] pending-webhooks hash, KEYS[3] the endpoint's redelivery owners hash;
// ARGV[1] final state, ARGV[2] event id, ARGV[3] the scope's redelivery job key prefix, ARGV[4] now.
var finishDelivery = redis.NewScript(redeliverySettleSrc + `
if redis.call('GET', KEYS[1]) ~= 'pending' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
` + redeliveryOutcomeSrc + `
return 1
`)

// reopenDelivery makes one delivery pending again, whatever state it was in (or none), counting it in the
// event's pending_webhooks unless it was pending already; it returns 1 when it reopened it.
// KEYS[1] delivery key, KEYS[2] pending-webhooks hash; ARGV[1] event id, ARGV[2] ttl in seconds.
var reopenDelivery = redis.NewScript(`
if redis.call('GET', KEYS[1]) == 'pending' then return 0 end
redis.call('SET', KEYS[1], 'pending', 'EX', ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return 1
`)

// ReopenDelivery makes the delivery of eventID to endpointID pending again — after it was delivered, failed
// or canceled, or when it never existed — so a resend is counted and finished like any delivery. It reports
// whether the delivery was not pending already.
func (s *Store) ReopenDelivery(ctx context.Context, sc Scope, eventID, endpointID string, ttl time.Duration) (bool, error) {
	n, err := reopenDelivery.Run(ctx, s.rdb, []string{s.deliveryKey(sc, eventID, endpointID), s.pendingWebhooksKey(sc)},
		eventID, int64(max(ttl, time.Second)/time.Second)).Int()
	if err != nil {
		return false, fmt.Errorf("reopen delivery: %w", err)
	}
	return n == 1, nil
}

// CreateDeliveries records that eventID is to be delivered to each endpoint, counting them in the event's
// pending_webhooks in the same step. It returns the endpoints whose delivery this call created (a second
// call for the same pair creates nothing). ttl bounds how long the delivery state is kept.
func (s *Store) CreateDeliveries(ctx context.Context, sc Scope, eventID string, endpointIDs []string, ttl time.Duration) ([]string, error) {
	return s.markDeliveries(ctx, sc, eventID, endpointIDs, ttl, createdOnly)
}

// FinishDelivery moves a pending delivery to state (delivered, failed or canceled). It reports whether
// this call did it, so an outcome is counted once however often a task runs.
func (s *Store) FinishDelivery(ctx context.Context, sc Scope, eventID, endpointID, state string) (bool, error) {
	n, err := finishDelivery.Run(ctx, s.rdb, []string{s.deliveryKey(sc, eventID, endpointID), s.pendingWebhooksKey(sc),
		s.redeliveryOwnersKey(sc, endpointID)}, state, eventID, s.redeliveryKey(sc, ""), s.clock.Now().Unix()).Int()
	if err != nil {
		return false, fmt.Errorf("finish delivery: %w", err)
	}
	return n == 1, nil
}

// DeliveryState returns the state of one delivery; ErrNotFound when there is none.
func (s *Store) DeliveryState(ctx context.Context, sc Scope, eventID, endpointID string) (string, error) {
	st, err := s.rdb.Get(ctx, s.deliveryKey(sc, eventID, endpointID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("delivery state: %w", err)
	}
	return st, nil
}

// markUndelivered adds to undelivered every event among ids with a pending or failed delivery to one of the
// endpoints, reading every (event, endpoint) state in one MGET.
func (s *Store) markUndelivered(ctx context.Context, sc Scope, ids, endpoints []string, undelivered map[string]bool) error {
	if len(ids) == 0 || len(endpoints) == 0 {
		return nil
	}
	keys := make([]string, 0, len(ids)*len(endpoints))
	for _, id := range ids {
		for _, ep := range endpoints {
			keys = append(keys, s.deliveryKey(sc, id, ep))
		}
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return fmt.Errorf("delivery states: %w", err)
	}
	for i, v := range vals {
		if state, ok := v.(string); ok && (state == DeliveryPending || state == DeliveryFailed) {
			undelivered[ids[i/len(endpoints)]] = true
		}
	}
	return nil
}

// withPendingWebhooks sets each event's pending_webhooks from the counters the deliveries keep (one HMGET).
// The stored event JSON is never rewritten for it, so a delivery can never race a redaction's scrub.
func (s *Store) withPendingWebhooks(ctx context.Context, sc Scope, evs []*Event) error {
	ids := make([]string, 0, len(evs))
	for _, ev := range evs {
		if ev != nil {
			ids = append(ids, ev.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	vals, err := s.rdb.HMGet(ctx, s.pendingWebhooksKey(sc), ids...).Result()
	if err != nil {
		return fmt.Errorf("pending webhooks: %w", err)
	}
	i := 0
	for _, ev := range evs {
		if ev == nil {
			continue
		}
		ev.PendingWebhooks = 0
		if str, ok := vals[i].(string); ok {
			if n, err := strconv.Atoi(str); err == nil && n > 0 {
				ev.PendingWebhooks = n
			}
		}
		i++
	}
	return nil
}

// Attempt outcomes.
const (
	AttemptDelivered = "delivered"
	AttemptRetrying  = "retrying"
	AttemptFailed    = "failed"
)

// WebhookAttempt records one delivery attempt (identityd extension). It never holds the request or
// response body; Error names a network failure or an unexpected status and nothing the receiver sent.
type WebhookAttempt struct {
	ID              string  `json:"id"`
	Object          string  `json:"object"`
	Created         int64   `json:"created"`
	Livemode        bool    `json:"livemode"`
	WebhookEndpoint string  `json:"webhook_endpoint"`
	Event           string  `json:"event"`
	EventType       string  `json:"event_type"`
	Attempt         int     `json:"attempt"`
	Outcome         string  `json:"outcome"`
	StatusCode      *int    `json:"status_code"`
	LatencyMS       int64   `json:"latency_ms"`
	Error           *string `json:"error"`
	// NextAttempt is when the next try is due (unix seconds), for outcome retrying.
	NextAttempt *int64 `json:"next_attempt"`
}

// NewAttemptID returns a "wha_" id whose characters sort in time order (milliseconds first), so attempts
// made within one second still list in the order they were made.
func NewAttemptID(now time.Time) string {
	return fmt.Sprintf("wha_%013d%s", now.UnixMilli(), RandomString(11))
}

// RecordAttempt stores an attempt under its endpoint and, when the event is about a session, under that
// session too (so a redaction can account for it).
func (s *Store) RecordAttempt(ctx context.Context, sc Scope, a *WebhookAttempt, sessionID string) error {
	a.Object = "webhook_attempt"
	a.Livemode = sc.Livemode
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, s.attemptKey(sc, a.ID), body, AttemptTTL)
		idx := s.endpointAttemptsKey(sc, a.WebhookEndpoint)
		pipe.ZAdd(ctx, idx, redis.Z{Member: indexMember(a.Created, a.ID)})
		pipe.Expire(ctx, idx, AttemptTTL)
		if sessionID != "" {
			set := s.sessionAttemptsKey(sc, sessionID)
			pipe.SAdd(ctx, set, a.ID)
			pipe.Expire(ctx, set, AttemptTTL)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record webhook attempt: %w", err)
	}
	return nil
}

// ListAttempts returns a page of an endpoint's attempts, newest first; eventID, when set, keeps that
// event's only.
func (s *Store) ListAttempts(ctx context.Context, sc Scope, endpointID, eventID string, p Page) ([]*WebhookAttempt, bool, error) {
	load := func(ctx context.Context, ids []string) ([]*WebhookAttempt, error) {
		return mget[WebhookAttempt](ctx, s, ids, func(id string) string { return s.attemptKey(sc, id) })
	}
	cursor, err := s.cursorMember(p, func(id string) (int64, error) {
		as, err := load(ctx, []string{id})
		if err != nil {
			return 0, err
		}
		if as[0] == nil || as[0].WebhookEndpoint != endpointID {
			return 0, ErrNotFound
		}
		return as[0].Created, nil
	})
	if err != nil {
		return nil, false, err
	}
	var match func(*WebhookAttempt) bool
	if eventID != "" {
		match = func(a *WebhookAttempt) bool { return a.Event == eventID }
	}
	// Expired attempts leave members behind in the index; they load as nil and are skipped.
	return listFiltered(ctx, s, s.endpointAttemptsKey(sc, endpointID), p, cursor, load, match)
}
