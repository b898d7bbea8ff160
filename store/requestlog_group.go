package store

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/identityd/identityd/store/groupcommit"
)

// Request logs saved at the same time in one scope share one run of saveLogsScript (a groupcommit.Group keyed
// by scope): each SaveRequestLog puts its log on the scope's waiting list and waits; a few flushers per scope
// take everything waiting (up to logBatchMax) and write it in one round trip. Alone, a log is written at once
// by its own caller; under load, batches grow with the number of requests waiting. Every caller still waits
// for its own log's outcome, so a log exists before the response that it records is sent. A log holds no personal data
// (it refers to the session's personal-data record), so it is written as it is, with no redaction check.

// logBatchMax caps one shared script run.
const logBatchMax = 64

// saveLogsScript writes several request logs in one round trip: each log with its TTL, and its member in
// each of its indexes (the scope's log index and one per object it names), whose TTL it extends.
//
// KEYS: per log, in order: the log, its indexes. ARGV: the TTL in milliseconds (0: none), the number of logs,
// then per log: the index count, the stored log, the index member. Answers the number of logs written.
var saveLogsScript = redis.NewScript(`
local ms = tonumber(ARGV[1])
local k = 1
local a = 3
local n = tonumber(ARGV[2])
for _ = 1, n do
  local indexes = tonumber(ARGV[a])
  if ms > 0 then
    redis.call('SET', KEYS[k], ARGV[a + 1], 'PX', ms)
  else
    redis.call('SET', KEYS[k], ARGV[a + 1])
  end
  for i = k + 1, k + indexes do
    redis.call('ZADD', KEYS[i], 0, ARGV[a + 2])
    if ms > 0 then
      redis.call('PEXPIRE', KEYS[i], ms)
    end
  end
  k = k + 1 + indexes
  a = a + 3
end
return n
`)

// logWrite is one log's part of a saveLogsScript run.
type logWrite struct {
	key     string   // the log
	indexes []string // the scope's log index and the object-log indexes
	body    []byte   // the stored log (EncodeDoc)
	member  string   // its index member
}

// newLogGroup returns the group that shares saveLogsScript runs between the logs of one scope saved at the
// same time. A caller alone writes its log itself (handing it to a goroutine costs more than the round trip
// when requests do not overlap), and a log whose caller gave up before its batch started is not written.
// maxRunning 0 is the default.
func (s *Store) newLogGroup(maxRunning int) *groupcommit.Group[Scope, *logWrite] {
	return groupcommit.New(func(ctx context.Context, _ Scope, writes []*logWrite) []error {
		if before := s.beforeLogBatch.Load(); before != nil {
			(*before)(len(writes))
		}
		return s.runSaveLogs(ctx, writes)
	}, groupcommit.Options{MaxBatch: logBatchMax, MaxRunning: maxRunning, Inline: true, DropAbandoned: true})
}

// runSaveLogs runs saveLogsScript on writes and returns each one's outcome. When a run of several logs fails,
// each log is tried again on its own, all of them in one pipeline, so one log's failure (a key of the wrong
// type, say) is reported to its caller only and the others wait one round trip more, not one per log; writing
// a log twice leaves it as once.
func (s *Store) runSaveLogs(ctx context.Context, writes []*logWrite) []error {
	outs := make([]error, len(writes))
	keys, args := s.saveLogsArgs(writes)
	err := saveLogsScript.Run(ctx, s.rdb, keys, args...).Err()
	switch {
	case err == nil:
	case len(writes) == 1:
		outs[0] = err
	default:
		s.runSaveLogsApart(ctx, writes, outs)
	}
	return outs
}

// runSaveLogsApart runs saveLogsScript once per log, in one pipeline, and fills each log's outcome.
func (s *Store) runSaveLogsApart(ctx context.Context, writes []*logWrite, outs []error) {
	cmds := make([]*redis.Cmd, len(writes))
	// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT, and this path is rare.
	_, _ = s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, w := range writes {
			keys, args := s.saveLogsArgs([]*logWrite{w})
			cmds[i] = saveLogsScript.Eval(ctx, pipe, keys, args...)
		}
		return nil
	})
	for i, cmd := range cmds {
		outs[i] = cmd.Err()
	}
}

// saveLogsArgs lays writes out as saveLogsScript's KEYS and ARGV.
func (s *Store) saveLogsArgs(writes []*logWrite) (keys []string, args []any) {
	nkeys := 0
	for _, w := range writes {
		nkeys += 1 + len(w.indexes)
	}
	keys = make([]string, 0, nkeys)
	args = make([]any, 0, 2+3*len(writes))
	args = append(args, s.RequestLogTTL.Milliseconds(), len(writes))
	for _, w := range writes {
		keys = append(keys, w.key)
		keys = append(keys, w.indexes...)
		args = append(args, len(w.indexes), w.body, w.member)
	}
	return keys, args
}
