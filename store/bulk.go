package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Bulk redaction statuses.
const (
	BulkQueued    = "queued"
	BulkRunning   = "running"
	BulkCompleted = "completed"
	BulkFailed    = "failed"
)

// BulkFilter selects the sessions of a bulk redaction; empty fields match everything. The API requires at
// least one. The values are identifiers a merchant chose (a redaction keeps them), never personal data.
type BulkFilter struct {
	ClientReferenceID string         `json:"client_reference_id,omitempty"`
	Status            string         `json:"status,omitempty"`
	RelatedCustomer   string         `json:"related_customer,omitempty"`
	Created           *CreatedBounds `json:"created,omitempty"`
}

// CreatedBounds is a `created` range as the bulk redaction object shows it.
type CreatedBounds struct {
	GT  *int64 `json:"gt,omitempty"`
	GTE *int64 `json:"gte,omitempty"`
	LT  *int64 `json:"lt,omitempty"`
	LTE *int64 `json:"lte,omitempty"`
}

// NewCreatedBounds converts a list filter's range; nil when the range is open.
func NewCreatedBounds(r CreatedRange) *CreatedBounds {
	if r.GT == nil && r.GTE == nil && r.LT == nil && r.LTE == nil {
		return nil
	}
	return &CreatedBounds{GT: r.GT, GTE: r.GTE, LT: r.LT, LTE: r.LTE}
}

// Range returns the bounds as a CreatedRange (open when b is nil).
func (b *CreatedBounds) Range() CreatedRange {
	if b == nil {
		return CreatedRange{}
	}
	return CreatedRange{GT: b.GT, GTE: b.GTE, LT: b.LT, LTE: b.LTE}
}

// Empty reports whether the filter selects everything.
func (f BulkFilter) Empty() bool {
	return f.ClientReferenceID == "" && f.Status == "" && f.RelatedCustomer == "" && f.Created == nil
}

// BulkSkipped counts matching sessions a bulk redaction left alone.
type BulkSkipped struct {
	// Processing counts sessions in verification (`status=processing`), which cannot be redacted yet.
	Processing int64 `json:"processing"`
	// AlreadyRedacted counts sessions whose redaction was already requested or finished.
	AlreadyRedacted int64 `json:"already_redacted"`
}

// BulkRedaction is an `identity.bulk_redaction` job. Requested counts the sessions this job put
// into redaction, Redacted those whose scrub finished, Failed those whose scrub exhausted its retries; the job is
// completed once its walk is done and Redacted+Failed == Requested (a dry run completes when its walk is done).
type BulkRedaction struct {
	ID          string      `json:"id"`
	Object      string      `json:"object"`
	Status      string      `json:"status"`
	DryRun      bool        `json:"dry_run"`
	Filter      BulkFilter  `json:"filter"`
	Matched     int64       `json:"matched"`
	Requested   int64       `json:"requested"`
	Redacted    int64       `json:"redacted"`
	Failed      int64       `json:"failed"`
	Skipped     BulkSkipped `json:"skipped"`
	Created     int64       `json:"created"`
	CompletedAt *int64      `json:"completed_at"`
}

// Done reports whether the job reached a final status.
func (b *BulkRedaction) Done() bool { return b.Status == BulkCompleted || b.Status == BulkFailed }

// A bulk job is one hash: its fixed fields, counters moved with HINCRBY, and the walk's saved cursor.
const (
	bfID, bfDryRun, bfFilter, bfCreated                    = "id", "dry_run", "filter", "created"
	bfStatus, bfCompletedAt, bfWalkDone                    = "status", "completed_at", "walk_done"
	bfMatched, bfRequested, bfRedacted, bfFailed           = "matched", "requested", "redacted", "failed"
	bfSkippedProcessing, bfSkippedAlreadyRedacted, bfError = "skipped_processing", "skipped_already_redacted", "error"
)

// walkDoneCursor marks a finished walk (index members start with digits, so it is never one).
const walkDoneCursor = "~done"

// CreateBulkRedaction stores a new queued job. The caller enqueues its task.
func (s *Store) CreateBulkRedaction(ctx context.Context, sc Scope, f BulkFilter, dryRun bool) (*BulkRedaction, error) {
	if err := s.registerScope(ctx, sc); err != nil {
		return nil, err
	}
	now := s.clock.Now().Unix()
	b := &BulkRedaction{ID: NewID("br"), Object: "identity.bulk_redaction", Status: BulkQueued, DryRun: dryRun,
		Filter: f, Created: now}
	filter, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	_, err = s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.HSet(ctx, s.bulkKey(sc, b.ID), bfID, b.ID, bfDryRun, boolField(dryRun), bfFilter, filter,
			bfCreated, now, bfStatus, BulkQueued, bfMatched, 0, bfRequested, 0, bfRedacted, 0, bfFailed, 0,
			bfSkippedProcessing, 0, bfSkippedAlreadyRedacted, 0)
		pipe.ZAdd(ctx, s.bulkIndexKey(sc), redis.Z{Member: indexMember(now, b.ID)})
		pipe.SAdd(ctx, s.bulkWalkingKey(sc), b.ID)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create bulk redaction: %w", err)
	}
	return b, nil
}

func boolField(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// GetBulkRedaction loads one job with its current counters.
func (s *Store) GetBulkRedaction(ctx context.Context, sc Scope, id string) (*BulkRedaction, error) {
	m, err := s.rdb.HGetAll(ctx, s.bulkKey(sc, id)).Result()
	if err != nil {
		return nil, fmt.Errorf("get bulk redaction: %w", err)
	}
	if len(m) == 0 || m[bfID] == "" {
		return nil, ErrNotFound
	}
	return decodeBulk(m)
}

func decodeBulk(m map[string]string) (*BulkRedaction, error) {
	num := func(k string) int64 {
		n, _ := strconv.ParseInt(m[k], 10, 64)
		return n
	}
	b := &BulkRedaction{ID: m[bfID], Object: "identity.bulk_redaction", Status: m[bfStatus], DryRun: m[bfDryRun] == "1",
		Matched: num(bfMatched), Requested: num(bfRequested), Redacted: num(bfRedacted), Failed: num(bfFailed),
		Skipped: BulkSkipped{Processing: num(bfSkippedProcessing), AlreadyRedacted: num(bfSkippedAlreadyRedacted)},
		Created: num(bfCreated)}
	if err := json.Unmarshal([]byte(m[bfFilter]), &b.Filter); err != nil {
		return nil, fmt.Errorf("decode bulk redaction %s filter: %w", b.ID, err)
	}
	if v, ok := m[bfCompletedAt]; ok && v != "" {
		t := num(bfCompletedAt)
		b.CompletedAt = &t
	}
	return b, nil
}

// ListBulkRedactions returns a page of jobs, newest first.
func (s *Store) ListBulkRedactions(ctx context.Context, sc Scope, p Page) ([]*BulkRedaction, bool, error) {
	cursor, err := s.cursorMember(p, func(id string) (int64, error) {
		b, err := s.GetBulkRedaction(ctx, sc, id)
		if err != nil {
			return 0, err
		}
		return b.Created, nil
	})
	if err != nil {
		return nil, false, err
	}
	return listFiltered(ctx, s, s.bulkIndexKey(sc), p, cursor, func(ctx context.Context, ids []string) ([]*BulkRedaction, error) {
		cmds := make([]*redis.MapStringStringCmd, len(ids))
		_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for i, id := range ids {
				cmds[i] = pipe.HGetAll(ctx, s.bulkKey(sc, id))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("load bulk redactions: %w", err)
		}
		out := make([]*BulkRedaction, len(ids))
		for i, c := range cmds {
			if m := c.Val(); len(m) > 0 && m[bfID] != "" {
				if out[i], err = decodeBulk(m); err != nil {
					return nil, err
				}
			}
		}
		return out, nil
	}, nil)
}

// FailBulkRedaction marks a job whose walk cannot finish as failed (reason holds ids and Redis errors only).
// A completed job stays completed.
func (s *Store) FailBulkRedaction(ctx context.Context, sc Scope, id, reason string) error {
	now := s.clock.Now().Unix()
	err := bulkFailScript.Run(ctx, s.rdb, []string{s.bulkKey(sc, id), s.bulkWalkingKey(sc)}, id, reason, now).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("fail bulk redaction: %w", err)
	}
	return nil
}

// WalkingBulkRedactions lists the jobs of a scope whose walk has not finished (the reconciler re-enqueues
// their tasks).
func (s *Store) WalkingBulkRedactions(ctx context.Context, sc Scope) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, s.bulkWalkingKey(sc)).Result()
	if err != nil {
		return nil, fmt.Errorf("walking bulk redactions: %w", err)
	}
	return ids, nil
}

// bulkFailScript marks a job failed unless it is already final, and drops it from the walking set.
// KEYS[1] job hash, KEYS[2] walking set. ARGV[1] job id, ARGV[2] reason, ARGV[3] now (unix seconds).
var bulkFailScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[1])
local st = redis.call('HGET', KEYS[1], 'status')
if st == 'completed' or st == 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[2], 'completed_at', ARGV[3])
return 1
`)

// bulkAccountSrc adds deltas to a job's counters, marks a queued job running, and completes the job once its
// walk is done and every requested session is settled (a dry run: once its walk is done). It runs inside the MULTI of the change it
// accounts for, so counters and sessions never disagree. A missing job is left missing.
// KEYS[1] job hash. ARGV[1] now (unix seconds), then field/delta pairs.
const bulkAccountSrc = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
local f = redis.call('HMGET', KEYS[1], 'status', 'walk_done', 'dry_run', 'requested', 'redacted', 'failed')
if f[1] == 'queued' then redis.call('HSET', KEYS[1], 'status', 'running') end
if f[1] == 'completed' or f[1] == 'failed' or f[2] ~= '1' then return 0 end
if f[3] == '1' or (tonumber(f[5]) or 0) + (tonumber(f[6]) or 0) >= (tonumber(f[4]) or 0) then
  redis.call('HSET', KEYS[1], 'status', 'completed', 'completed_at', ARGV[1])
  return 1
end
return 0
`

// bulkSettleSrc counts sessions of a job whose redaction finished: each one is redacted, and one that had been
// counted as failed is no longer. It must run before the completion drops the sessions' failure records.
// KEYS[1] job hash, KEYS[2] failed-redactions hash. ARGV[1] now, ARGV[2…] session ids.
const bulkSettleSrc = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local unfailed = 0
for i = 2, #ARGV do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then unfailed = unfailed + 1 end
end
redis.call('HINCRBY', KEYS[1], 'redacted', #ARGV - 1)
if unfailed > 0 then redis.call('HINCRBY', KEYS[1], 'failed', -unfailed) end
local f = redis.call('HMGET', KEYS[1], 'status', 'walk_done', 'dry_run', 'requested', 'redacted', 'failed')
if f[1] == 'completed' or f[1] == 'failed' or f[2] ~= '1' then return 0 end
if (tonumber(f[5]) or 0) + (tonumber(f[6]) or 0) >= (tonumber(f[4]) or 0) then
  redis.call('HSET', KEYS[1], 'status', 'completed', 'completed_at', ARGV[1])
  return 1
end
return 0
`

// settleBulk queues the job accounting of finished redactions into a completion's MULTI.
func (s *Store) settleBulk(ctx context.Context, pipe redis.Pipeliner, sc Scope, jobID string, sessionIDs ...string) {
	args := make([]any, 0, len(sessionIDs)+1)
	args = append(args, s.clock.Now().Unix())
	for _, id := range sessionIDs {
		args = append(args, id)
	}
	pipe.Eval(ctx, bulkSettleSrc, []string{s.bulkKey(sc, jobID), s.failedRedactionsKey(sc)}, args...)
}

// recordFailureScript records a redaction failure once and, when a bulk job asked for the redaction and the
// session is still pending, counts it on the job.
// KEYS[1] failed-redactions hash, KEYS[2] pending index, KEYS[3] job hash ("" job: KEYS[1] again).
// ARGV[1] session id, ARGV[2] reason, ARGV[3] now, ARGV[4] "1" when KEYS[3] is a job.
var recordFailureScript = redis.NewScript(`
local first = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if first == 0 or ARGV[4] ~= '1' then return first end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return first end
if redis.call('EXISTS', KEYS[3]) == 0 then return first end
redis.call('HINCRBY', KEYS[3], 'failed', 1)
local f = redis.call('HMGET', KEYS[3], 'status', 'walk_done', 'requested', 'redacted', 'failed')
if f[1] ~= 'completed' and f[1] ~= 'failed' and f[2] == '1' and
   (tonumber(f[4]) or 0) + (tonumber(f[5]) or 0) >= (tonumber(f[3]) or 0) then
  redis.call('HSET', KEYS[3], 'status', 'completed', 'completed_at', ARGV[3])
end
return first
`)
