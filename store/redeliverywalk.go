package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedeliveryWalk sizes and steers a redelivery's walk.
type RedeliveryWalk struct {
	// PageSize is how many events one step reads and commits in one script run (default 1000).
	PageSize int
	// TTL is how long a reopened delivery's state is kept (the delivery's whole retry schedule and more).
	TTL time.Duration
	// Match reports whether the endpoint subscribes to an event type (its enabled_events).
	Match func(eventType string) bool
}

// ErrRedeliveryStopped is returned by RedeliveryStep when the job cannot go on: its endpoint was deleted or
// disabled (the job is marked failed), or the job is final already.
var ErrRedeliveryStopped = errors.New("webhook redelivery stopped")

// RedeliveryStep walks the next page of the scope's events, in (created, id) order from the job's saved
// cursor, between the job's since and its creation. In ONE script run it reopens the delivery to the job's
// endpoint of every event of the page that matches and was not delivered (and is not already being redelivered
// by another job), makes the job own those deliveries (their outcome is counted on it), appends the events to
// the job's queue of tasks to enqueue, counts them in total and saves the cursor; so a run that dies anywhere
// resumes at the first page not committed, and nothing is counted twice. It reports whether the walk is done.
// A page a concurrent run committed first is skipped (done false): call again.
func (s *Store) RedeliveryStep(ctx context.Context, sc Scope, id string, w RedeliveryWalk) (done bool, err error) {
	if w.PageSize <= 0 {
		w.PageSize = 1000
	}
	var fields *redis.SliceCmd
	var cursorCmd *redis.StringCmd
	_, err = s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		fields = pipe.HMGet(ctx, s.redeliveryKey(sc, id), rfID, rfStatus, rfWalkDone, rfEndpoint, rfSince, rfCreated)
		cursorCmd = pipe.Get(ctx, s.redeliveryCursorKey(sc, id))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("load webhook redelivery: %w", err)
	}
	field := func(i int) string { str, _ := fields.Val()[i].(string); return str }
	if field(0) == "" {
		return false, ErrNotFound
	}
	cursor := cursorCmd.Val()
	if cursor == walkDoneCursor || field(2) == "1" {
		return true, nil
	}
	if field(1) != RedeliveryRunning {
		return false, ErrRedeliveryStopped
	}
	endpointID := field(3)
	ep, err := s.GetEndpoint(ctx, sc, endpointID)
	if errors.Is(err, ErrNotFound) || (err == nil && ep.Status != EndpointEnabled) {
		reason := "webhook endpoint deleted"
		if err == nil {
			reason = "webhook endpoint disabled"
		}
		if ferr := s.FailRedelivery(ctx, sc, id, reason); ferr != nil {
			return false, ferr
		}
		return false, ErrRedeliveryStopped
	}
	if err != nil {
		return false, err
	}
	since, _ := strconv.ParseInt(field(4), 10, 64)
	created, _ := strconv.ParseInt(field(5), 10, 64)
	lo := "[" + fmt.Sprintf("%012d:", since)
	if cursor != "" {
		lo = "(" + cursor
	}
	members, err := s.rdb.ZRangeByLex(ctx, s.eventIndexKey(sc), &redis.ZRangeBy{Min: lo,
		Max: "(" + fmt.Sprintf("%012d:", created+1), Count: int64(w.PageSize)}).Result()
	if err != nil {
		return false, fmt.Errorf("read event index: %w", err)
	}
	last := len(members) < w.PageSize
	next := walkDoneCursor
	if !last {
		next = members[len(members)-1]
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = memberID(m)
	}
	heads, err := s.EventHeads(ctx, sc, ids)
	if err != nil {
		return false, err
	}
	keys := []string{s.redeliveryKey(sc, id), s.redeliveryCursorKey(sc, id), s.pendingWebhooksKey(sc),
		s.redeliveryQueueKey(sc, id), s.redeliveryOwnersKey(sc, endpointID), s.redeliveryWalkingKey(sc)}
	args := []any{cursor, next, int64(max(w.TTL, time.Second) / time.Second), id, s.clock.Now().Unix()}
	for _, ev := range heads {
		if ev != nil && (w.Match == nil || w.Match(ev.Type)) {
			keys = append(keys, s.deliveryKey(sc, ev.ID, endpointID))
			args = append(args, ev.ID)
		}
	}
	n, err := redeliverPage.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return false, fmt.Errorf("redeliver page: %w", err)
	}
	switch n {
	case -1:
		return false, nil // a concurrent run committed this page
	case -2:
		return false, ErrRedeliveryStopped
	}
	return last, nil
}

// redeliverPage commits one page of a redelivery's walk; it returns how many events it selected, -1 when the
// cursor moved (another run committed the page) and -2 when the job is no longer running.
// KEYS[1] job hash, KEYS[2] cursor, KEYS[3] pending-webhooks hash, KEYS[4] job queue, KEYS[5] the endpoint's
// owners hash, KEYS[6] walking set, KEYS[7..] delivery keys of the page's matching events.
// ARGV[1] expected cursor ("" for none), ARGV[2] next cursor (walkDoneCursor on the last page), ARGV[3] ttl
// in seconds, ARGV[4] job id, ARGV[5] now, ARGV[6..] the matching events' ids, in KEYS[7..]'s order.
var redeliverPage = redis.NewScript(redeliverySettleSrc + `
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return -2 end
local n = 0
for i = 7, #KEYS do
  local ev = ARGV[i - 1]
  local st = redis.call('GET', KEYS[i])
  if st ~= 'delivered' and not redis.call('HGET', KEYS[5], ev) then
    if st ~= 'pending' then
      redis.call('SET', KEYS[i], 'pending', 'EX', ARGV[3])
      redis.call('HINCRBY', KEYS[3], ev, 1)
    end
    redis.call('HSET', KEYS[5], ev, ARGV[4])
    redis.call('RPUSH', KEYS[4], ev)
    n = n + 1
  end
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[1], 'total', n)
if ARGV[2] == '` + walkDoneCursor + `' then
  redis.call('HSET', KEYS[1], 'walk_done', '1')
  if redis.call('LLEN', KEYS[4]) == 0 then redis.call('SREM', KEYS[6], ARGV[4]) end
  settle(KEYS[1], ARGV[5])
end
return n
`)

// RedeliveryQueue returns up to n events of the job's queue: reopened deliveries whose task is not yet known
// to be enqueued, oldest first.
func (s *Store) RedeliveryQueue(ctx context.Context, sc Scope, id string, n int) ([]string, error) {
	ids, err := s.rdb.LRange(ctx, s.redeliveryQueueKey(sc, id), 0, int64(n)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("webhook redelivery queue: %w", err)
	}
	return ids, nil
}

// AckRedeliveryQueue records that the tasks of ids — the head of the job's queue, as RedeliveryQueue returned
// it — are enqueued: it drops them from the queue and counts them in enqueued, once. Once the walk is done and
// the queue empty, the job leaves the walking set.
func (s *Store) AckRedeliveryQueue(ctx context.Context, sc Scope, id string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	err := redeliveryAck.Run(ctx, s.rdb, []string{s.redeliveryKey(sc, id), s.redeliveryQueueKey(sc, id),
		s.redeliveryWalkingKey(sc)}, id, ids[0], ids[len(ids)-1], len(ids)).Err()
	if err != nil {
		return fmt.Errorf("ack webhook redelivery queue: %w", err)
	}
	return nil
}

// redeliveryAck drops the queue's first ARGV[4] entries if they are still the ones acknowledged (an event is
// queued once per job, so first and last identify the stretch) and counts them.
// KEYS[1] job hash, KEYS[2] job queue, KEYS[3] walking set; ARGV[1] job id, ARGV[2] first id, ARGV[3] last
// id, ARGV[4] count.
var redeliveryAck = redis.NewScript(`
local n = tonumber(ARGV[4])
if redis.call('LINDEX', KEYS[2], 0) == ARGV[2] and redis.call('LINDEX', KEYS[2], n - 1) == ARGV[3] then
  redis.call('LTRIM', KEYS[2], n, -1)
  redis.call('HINCRBY', KEYS[1], 'enqueued', n)
end
if redis.call('LLEN', KEYS[2]) == 0 and redis.call('HGET', KEYS[1], 'walk_done') == '1' then
  redis.call('SREM', KEYS[3], ARGV[1])
end
return 1
`)
