package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Webhook redelivery statuses.
const (
	RedeliveryRunning   = "running"
	RedeliverySucceeded = "succeeded"
	RedeliveryFailed    = "failed"
)

// MaxRedeliveryAge bounds how far back a redelivery may reach: event deliveries are kept about as long.
const MaxRedeliveryAge = 30 * 24 * time.Hour

// WebhookRedelivery is a `webhook_redelivery` job (identityd extension): it redelivers to one endpoint every
// event created at or after Since (and before the job) that matches the endpoint's enabled_events and that the
// endpoint has not acknowledged. Total counts the events its walk selected so far, Enqueued those whose
// delivery task is queued, Delivered and Failed those whose delivery finished (Failed includes deliveries
// dropped because the endpoint was disabled or deleted again). The job is running until its walk is done and
// Delivered+Failed == Total; then it has succeeded when nothing failed, and failed otherwise. A job whose walk
// cannot finish (the endpoint was deleted or disabled) fails at once.
type WebhookRedelivery struct {
	ID              string `json:"id"`
	Object          string `json:"object"`
	Livemode        bool   `json:"livemode"`
	WebhookEndpoint string `json:"webhook_endpoint"`
	Status          string `json:"status"`
	Since           int64  `json:"since"`
	Created         int64  `json:"created"`
	Total           int64  `json:"total"`
	Enqueued        int64  `json:"enqueued"`
	Delivered       int64  `json:"delivered"`
	Failed          int64  `json:"failed"`
	CompletedAt     *int64 `json:"completed_at"`
}

// Done reports whether the job reached a final status.
func (r *WebhookRedelivery) Done() bool { return r.Status != RedeliveryRunning }

// A job is one hash, like a bulk redaction's.
const (
	rfID, rfEndpoint, rfSince, rfCreated, rfLivemode        = "id", "webhook_endpoint", "since", "created", "livemode"
	rfStatus, rfCompletedAt, rfWalkDone, rfError            = "status", "completed_at", "walk_done", "error"
	rfTotal, rfEnqueued, rfDelivered, rfFailed       string = "total", "enqueued", "delivered", "failed"
)

// CreateRedelivery stores a new running job for endpointID. The caller checked the endpoint and enqueues the
// job's task.
func (s *Store) CreateRedelivery(ctx context.Context, sc Scope, endpointID string, since int64) (*WebhookRedelivery, error) {
	if err := s.registerScope(ctx, sc); err != nil {
		return nil, err
	}
	now := s.clock.Now().Unix()
	r := &WebhookRedelivery{ID: NewID("whrd"), Object: "webhook_redelivery", Livemode: sc.Livemode,
		WebhookEndpoint: endpointID, Status: RedeliveryRunning, Since: since, Created: now}
	_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.HSet(ctx, s.redeliveryKey(sc, r.ID), rfID, r.ID, rfEndpoint, endpointID, rfSince, since, rfCreated, now,
			rfLivemode, boolField(sc.Livemode), rfStatus, RedeliveryRunning, rfTotal, 0, rfEnqueued, 0, rfDelivered, 0, rfFailed, 0)
		pipe.SAdd(ctx, s.redeliveryWalkingKey(sc), r.ID)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create webhook redelivery: %w", err)
	}
	return r, nil
}

// GetRedelivery loads one job with its current counters.
func (s *Store) GetRedelivery(ctx context.Context, sc Scope, id string) (*WebhookRedelivery, error) {
	if !safeID(id) {
		return nil, ErrNotFound
	}
	m, err := s.rdb.HGetAll(ctx, s.redeliveryKey(sc, id)).Result()
	if err != nil {
		return nil, fmt.Errorf("get webhook redelivery: %w", err)
	}
	if len(m) == 0 || m[rfID] == "" {
		return nil, ErrNotFound
	}
	num := func(k string) int64 {
		n, _ := strconv.ParseInt(m[k], 10, 64)
		return n
	}
	r := &WebhookRedelivery{ID: m[rfID], Object: "webhook_redelivery", Livemode: m[rfLivemode] == "1",
		WebhookEndpoint: m[rfEndpoint], Status: m[rfStatus], Since: num(rfSince), Created: num(rfCreated),
		Total: num(rfTotal), Enqueued: num(rfEnqueued), Delivered: num(rfDelivered), Failed: num(rfFailed)}
	if v := m[rfCompletedAt]; v != "" {
		t := num(rfCompletedAt)
		r.CompletedAt = &t
	}
	return r, nil
}

// WalkingRedeliveries lists the jobs of a scope whose walk or enqueueing has not finished (the reconciler
// re-enqueues their tasks).
func (s *Store) WalkingRedeliveries(ctx context.Context, sc Scope) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, s.redeliveryWalkingKey(sc)).Result()
	if err != nil {
		return nil, fmt.Errorf("walking webhook redeliveries: %w", err)
	}
	return ids, nil
}

// FailRedelivery marks a job whose walk cannot finish as failed (reason holds ids and errors only) and stops
// its walk. A job already final stays as it is.
func (s *Store) FailRedelivery(ctx context.Context, sc Scope, id, reason string) error {
	err := redeliveryFailScript.Run(ctx, s.rdb, []string{s.redeliveryKey(sc, id), s.redeliveryWalkingKey(sc),
		s.redeliveryQueueKey(sc, id)}, id, reason, s.clock.Now().Unix()).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("fail webhook redelivery: %w", err)
	}
	return nil
}

// redeliveryFailScript ends the walk; the job stays in the walking set until its queue is drained, so that no
// reopened delivery is left pending without a task.
// KEYS[1] job hash, KEYS[2] walking set, KEYS[3] job queue; ARGV[1] job id, ARGV[2] reason, ARGV[3] now.
var redeliveryFailScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'walk_done', '1')
if redis.call('LLEN', KEYS[3]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[2], 'completed_at', ARGV[3])
return 1
`)

// redeliverySettleSrc defines settle(job key, now): a running job whose walk is done and whose every selected
// delivery finished becomes succeeded (nothing failed) or failed. Scripts that move the counters prepend it.
const redeliverySettleSrc = `
local function settle(jk, now)
  local f = redis.call('HMGET', jk, 'status', 'walk_done', 'total', 'delivered', 'failed')
  if f[1] ~= 'running' or f[2] ~= '1' then return end
  local total, delivered, failed = tonumber(f[3]) or 0, tonumber(f[4]) or 0, tonumber(f[5]) or 0
  if delivered + failed < total then return end
  local st = 'succeeded'
  if failed > 0 then st = 'failed' end
  redis.call('HSET', jk, 'status', st, 'completed_at', now)
end
`

// redeliveryOutcomeSrc counts a finished delivery on the job that reopened it, if one did.
// It is part of finishDelivery: KEYS[3] the endpoint's owners hash; ARGV[1] final state, ARGV[2] event id,
// ARGV[3] the scope's job key prefix (jobs live in the same slot), ARGV[4] now.
const redeliveryOutcomeSrc = `
local job = redis.call('HGET', KEYS[3], ARGV[2])
if job then
  redis.call('HDEL', KEYS[3], ARGV[2])
  local jk = ARGV[3] .. job
  if redis.call('EXISTS', jk) == 1 then
    local field = 'failed'
    if ARGV[1] == 'delivered' then field = 'delivered' end
    redis.call('HINCRBY', jk, field, 1)
    settle(jk, ARGV[4])
  end
end
`
