package store

import (
	"context"
	"runtime"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Request logs saved at the same time in one scope share one run of saveLogsScript (group commit): each
// SaveRequestLog puts its log on the scope's waiting list and waits; a few flushers per scope take everything
// waiting (up to logBatchMax) and write it in one round trip. Alone, a log is written at once by its own
// caller; under load, batches grow with the number of requests waiting. Every caller still waits for its own
// log's outcome, so a log exists before the response that it records is sent. A log holds no personal data
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

// logOutcome is what a script run answered for one log: written (nil) or the run's error.
type logOutcome struct {
	err error
}

// logGroups is the waiting list and flush state of each scope. Its zero value is ready.
type logGroups struct {
	mu     sync.Mutex
	scopes map[Scope]*logGroup
	// flushLimit overrides maxLogFlushers (tests); beforeBatch, when set, sees each batch's size before it runs.
	flushLimit  int
	beforeBatch func(n int)
}

// logGroup is one scope's waiting logs and how many flushers are writing them.
type logGroup struct {
	waiting  []*logWaiter
	flushers int
}

// logWaiter is one caller waiting for its log's outcome.
type logWaiter struct {
	ctx  context.Context // the caller's: a log whose caller gave up before its batch started is not written
	w    *logWrite
	done chan logOutcome // buffered: a flusher never blocks on a caller that gave up
}

// maxLogFlushers is how many batches of one scope may be in flight at once: while one waits on Redis, the
// next collects.
func maxLogFlushers() int { return max(2, runtime.GOMAXPROCS(0)) }

// saveLogShared writes w through a shared script run of sc and returns its outcome, or ctx's error when the
// caller's context ends first (a batch that already took the log still finishes it).
func (s *Store) saveLogShared(ctx context.Context, sc Scope, w *logWrite) error {
	g := &s.logs
	g.mu.Lock()
	if g.scopes == nil {
		g.scopes = map[Scope]*logGroup{}
	}
	lg := g.scopes[sc]
	if lg == nil {
		lg = &logGroup{}
		g.scopes[sc] = lg
	}
	limit := g.flushLimit
	if limit == 0 {
		limit = maxLogFlushers()
	}
	if len(lg.waiting) == 0 && lg.flushers < limit {
		// Nothing waits and a flusher's slot is free: the caller writes its log at once, itself — handing it
		// to a goroutine costs more than the round trip when requests do not overlap — and holds the slot, so
		// logs arriving meanwhile queue and go out together after it.
		lg.flushers++
		before := g.beforeBatch
		g.mu.Unlock()
		if before != nil {
			before(1)
		}
		out := s.runSaveLogs(ctx, []*logWrite{w})[0]
		s.releaseLogFlusher(context.WithoutCancel(ctx), sc, lg)
		return out.err
	}
	waiter := &logWaiter{ctx: ctx, w: w, done: make(chan logOutcome, 1)}
	lg.waiting = append(lg.waiting, waiter)
	if lg.flushers < limit {
		lg.flushers++
		go s.flushLogs(context.WithoutCancel(ctx), sc, lg)
	}
	g.mu.Unlock()
	select {
	case out := <-waiter.done:
		return out.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// releaseLogFlusher gives up a flusher's slot of sc, or hands it to a new flusher when logs wait.
func (s *Store) releaseLogFlusher(ctx context.Context, sc Scope, lg *logGroup) {
	g := &s.logs
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(lg.waiting) > 0 {
		go s.flushLogs(ctx, sc, lg)
		return
	}
	g.dropFlusher(sc, lg)
}

// dropFlusher gives up a flusher's slot of sc and forgets the scope once none is left. Call it with g.mu held.
func (g *logGroups) dropFlusher(sc Scope, lg *logGroup) {
	lg.flushers--
	if lg.flushers == 0 && g.scopes[sc] == lg {
		delete(g.scopes, sc)
	}
}

// flushLogs writes batches of sc's waiting logs until none are left, holding one flusher's slot.
func (s *Store) flushLogs(ctx context.Context, sc Scope, lg *logGroup) {
	g := &s.logs
	for {
		g.mu.Lock()
		if len(lg.waiting) == 0 {
			g.dropFlusher(sc, lg)
			g.mu.Unlock()
			return
		}
		n := min(len(lg.waiting), logBatchMax)
		batch := make([]*logWaiter, 0, n)
		for _, wt := range lg.waiting[:n] {
			if wt.ctx.Err() == nil { // its caller has already returned
				batch = append(batch, wt)
			}
		}
		rest := copy(lg.waiting, lg.waiting[n:])
		clear(lg.waiting[rest:]) // taken waiters hold log bodies: do not keep them reachable from the queue
		lg.waiting = lg.waiting[:rest]
		before := g.beforeBatch
		g.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		if before != nil {
			before(len(batch))
		}
		writes := make([]*logWrite, len(batch))
		for i, wt := range batch {
			writes[i] = wt.w
		}
		outs := s.runSaveLogs(ctx, writes)
		for i, wt := range batch {
			wt.done <- outs[i]
		}
	}
}

// runSaveLogs runs saveLogsScript on writes and returns each one's outcome. When a run of several logs fails,
// each log is tried again on its own, all of them in one pipeline, so one log's failure (a key of the wrong
// type, say) is reported to its caller only and the others wait one round trip more, not one per log; writing
// a log twice leaves it as once.
func (s *Store) runSaveLogs(ctx context.Context, writes []*logWrite) []logOutcome {
	outs := make([]logOutcome, len(writes))
	keys, args := s.saveLogsArgs(writes)
	err := saveLogsScript.Run(ctx, s.rdb, keys, args...).Err()
	switch {
	case err == nil:
	case len(writes) == 1:
		outs[0] = logOutcome{err: err}
	default:
		s.runSaveLogsApart(ctx, writes, outs)
	}
	return outs
}

// runSaveLogsApart runs saveLogsScript once per log, in one pipeline, and fills each log's outcome.
func (s *Store) runSaveLogsApart(ctx context.Context, writes []*logWrite, outs []logOutcome) {
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
		outs[i] = logOutcome{err: cmd.Err()}
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
