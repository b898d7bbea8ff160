package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// Batched redaction: bulk jobs and retention request, scrub and complete many sessions per Redis round trip.
// Each session goes through the same transitions as the single path (sessionTx.requestRedaction,
// sessionTx.completeRedaction); a batch only commits many of them in one MULTI, so every guarantee of the
// single path holds per session — and the whole batch is atomic besides.

// batchTx is one optimistic transaction over many sessions of one scope.
type batchTx struct {
	store *Store
	scope Scope
	// txs holds one transaction per id, nil where the session does not exist. Each starts unchanged; the
	// callback clears unchanged on the ones it transitions.
	txs []*sessionTx
	// ops are batch-level writes (counters, cursors); they commit before the sessions' writes.
	ops []func(ctx context.Context, pipe redis.Pipeliner)
	// settled collects, per bulk job, the sessions whose redaction this batch completes.
	settled map[string][]string
	jobs    []string
	// watched holds the values of mutateMany's extra watch keys (string, or nil where missing), read in the same
	// round trip as the sessions, so callbacks need not read them again.
	watched []any
}

func (b *batchTx) later(op func(ctx context.Context, pipe redis.Pipeliner)) {
	b.ops = append(b.ops, op)
}

func (b *batchTx) settle(jobID, sessionID string) {
	if b.settled == nil {
		b.settled = map[string][]string{}
	}
	if _, ok := b.settled[jobID]; !ok {
		b.jobs = append(b.jobs, jobID)
	}
	b.settled[jobID] = append(b.settled[jobID], sessionID)
}

// events returns the events of every committed session transaction, in id order.
func (b *batchTx) events() []*Event {
	var out []*Event
	for _, stx := range b.txs {
		if stx != nil && !stx.unchanged {
			out = append(out, stx.events...)
		}
	}
	return out
}

// mutateMany loads the sessions ids under WATCH, with the extra watch keys (their values go to
// batchTx.watched), lets fn transition some of them and queue batch writes, and commits everything in one
// MULTI/EXEC or, when another client changed a watched key, runs fn again on fresh state. fn must keep its
// results in the batchTx, which is rebuilt on a retry.
func (s *Store) mutateMany(ctx context.Context, sc Scope, ids []string, o Origin, watch []string,
	fn func(tx *redis.Tx, b *batchTx) error) (*batchTx, error) {
	keys := make([]string, 2*len(ids), 2*len(ids)+len(watch)) // the sessions, then their personal-data records
	for i, id := range ids {
		keys[i], keys[len(ids)+i] = s.sessionKey(sc, id), s.personalKey(sc, id)
	}
	var out *batchTx
	err := s.watchLoad(ctx, append(keys, watch...), func(wtx *watchedTx, vals []any) error {
		tx := wtx.Tx
		b := &batchTx{store: s, scope: sc, txs: make([]*sessionTx, len(ids)), watched: vals[len(keys):]}
		for i, v := range vals[:len(ids)] {
			str, ok := v.(string)
			if !ok {
				continue
			}
			sess, err := decodeSession(ids[i], str)
			if err != nil {
				return err
			}
			personal, err := decodePersonal(ids[i], vals[len(ids)+i])
			if err != nil {
				return err
			}
			stx := newSessionTx(s, sc, sess, personal, o)
			stx.unchanged, stx.batch = true, b
			b.txs[i] = stx
		}
		if err := fn(tx, b); err != nil {
			return err
		}
		for _, job := range b.jobs {
			sessions := b.settled[job]
			b.later(func(ctx context.Context, pipe redis.Pipeliner) { s.settleBulk(ctx, pipe, sc, job, sessions...) })
		}
		err := wtx.commit(ctx, func(pipe redis.Pipeliner) error {
			for _, op := range b.ops {
				op(ctx, pipe)
			}
			for _, stx := range b.txs {
				if stx == nil || stx.unchanged {
					continue
				}
				if err := stx.commit(ctx, pipe); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		out = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RedactionBatch is a group of sessions whose redaction one task scrubs. Its id is recorded for each session
// (so the reconciler leaves covered sessions to the batch) and names the task.
type RedactionBatch struct {
	ID         string
	SessionIDs []string
}

// splitBatches cuts ids into batches of at most size, named prefix.n.
func splitBatches(prefix string, ids []string, size int) []RedactionBatch {
	if size <= 0 {
		size = 100
	}
	var out []RedactionBatch
	for start, n := 0, 0; start < len(ids); start, n = start+size, n+1 {
		out = append(out, RedactionBatch{ID: fmt.Sprintf("%s.%d", prefix, n), SessionIDs: ids[start:min(start+size, len(ids))]})
	}
	return out
}

// recordBatches queues the session → batch entries the reconciler reads.
func (s *Store) recordBatches(ctx context.Context, pipe redis.Pipeliner, sc Scope, batches []RedactionBatch) {
	if len(batches) == 0 {
		return
	}
	args := make([]any, 0, 2*len(batches)*len(batches[0].SessionIDs))
	for _, b := range batches {
		for _, id := range b.SessionIDs {
			args = append(args, id, b.ID)
		}
	}
	pipe.HSet(ctx, s.batchedRedactionsKey(sc), args...)
}

// RedactionBatches returns, for each id, the batch recorded as scrubbing it ("" when none).
func (s *Store) RedactionBatches(ctx context.Context, sc Scope, ids []string) ([]string, error) {
	out := make([]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	vals, err := s.rdb.HMGet(ctx, s.batchedRedactionsKey(sc), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("redaction batches: %w", err)
	}
	for i, v := range vals {
		if str, ok := v.(string); ok {
			out[i] = str
		}
	}
	return out, nil
}

// ForgetRedactionBatch drops the batch entry of a session, so the reconciler treats it as a single redaction.
func (s *Store) ForgetRedactionBatch(ctx context.Context, sc Scope, id string) error {
	if err := s.rdb.HDel(ctx, s.batchedRedactionsKey(sc), id).Err(); err != nil {
		return fmt.Errorf("forget redaction batch: %w", err)
	}
	return nil
}

// CompleteRedactions is CompleteRedaction for many sessions of one scope (an id may repeat): one optimistic
// transaction scrubs every one's personal-data record, reports and session, marks it redacted, completes its
// audit record and emits its single `.redacted` event, and settles the bulk jobs that asked for them. The
// result has one entry per id, nil for a session that does not exist; New is false for one already redacted.
// A session with no redaction request fails the whole call with ErrInvalidTransition, as the single path does.
func (s *Store) CompleteRedactions(ctx context.Context, sc Scope, ids []string) ([]*RedactionCompletion, error) {
	if unique := slices.Compact(slices.Sorted(slices.Values(ids))); len(unique) < len(ids) {
		// An id given twice would be two transitions of one session in one MULTI: complete each once, and
		// answer its completion at every place it was given (New only at the first).
		done, err := s.CompleteRedactions(ctx, sc, unique)
		if err != nil {
			return nil, err
		}
		out := make([]*RedactionCompletion, len(ids))
		seen := map[string]bool{}
		for i, id := range ids {
			c := done[slices.Index(unique, id)]
			if c != nil && seen[id] {
				again := *c
				again.New, again.Events = false, nil
				c = &again
			}
			seen[id] = true
			out[i] = c
		}
		return out, nil
	}
	recordKeys := make([]string, len(ids))
	for i, id := range ids {
		recordKeys[i] = s.redactionRecordKey(sc, id)
	}
	var requestedAt []int64
	b, err := s.mutateMany(ctx, sc, ids, Origin{}, recordKeys, func(tx *redis.Tx, b *batchTx) error {
		requestedAt = make([]int64, len(ids))
		var todo []string
		for i, stx := range b.txs {
			if stx != nil && !(stx.sess.Redaction != nil && stx.sess.Redaction.Status == RedactionRedacted) {
				todo = append(todo, ids[i])
			}
		}
		targets, err := s.readRedactionTargets(ctx, tx, sc, todo)
		if err != nil {
			return err
		}
		for i, stx := range b.txs {
			if stx == nil {
				continue
			}
			var rec *RedactionRecord
			if str, ok := b.watched[i].(string); ok { // the record, read under WATCH with the sessions
				if rec, err = decodeRedactionRecord(str); err != nil {
					return fmt.Errorf("session %s: %w", ids[i], err)
				}
			}
			t := &redactionTargets{requestedAtMillis: -1}
			if len(todo) > 0 && todo[0] == ids[i] {
				t, targets, todo = targets[0], targets[1:], todo[1:]
			}
			stx.unchanged = false
			if requestedAt[i], err = stx.completeRedaction(rec, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*RedactionCompletion, len(ids))
	for i, stx := range b.txs {
		if stx == nil {
			continue
		}
		out[i] = &RedactionCompletion{Session: stx.sess, New: !stx.unchanged, RequestedAtMillis: requestedAt[i]}
		if !stx.unchanged {
			out[i].Events = stx.events
		}
	}
	return out, nil
}

// RedactionStatuses returns each session's redaction status: "" when none was requested or the session does
// not exist. It decodes only that field, for callers that only need to know which sessions to scrub.
func (s *Store) RedactionStatuses(ctx context.Context, sc Scope, ids []string) ([]string, error) {
	out := make([]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.sessionKey(sc, id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("load sessions: %w", err)
	}
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		if r := storedSessionRedaction(str); r != nil {
			out[i] = r.Status
		}
	}
	return out, nil
}
