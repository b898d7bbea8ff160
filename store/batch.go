package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

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
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.sessionKey(sc, id)
	}
	var out *batchTx
	err := s.watchLoad(ctx, append(keys, watch...), func(wtx *watchedTx, vals []any) error {
		tx := wtx.Tx
		b := &batchTx{store: s, scope: sc, txs: make([]*sessionTx, len(ids)), watched: vals[len(keys):]}
		for i, v := range vals[:len(keys)] {
			str, ok := v.(string)
			if !ok {
				continue
			}
			var sess Session
			body, err := decodeDocString(str)
			if err != nil {
				return fmt.Errorf("decode session %s: %w", ids[i], err)
			}
			if err := json.Unmarshal(body, &sess); err != nil {
				return fmt.Errorf("decode session %s: %w", ids[i], err)
			}
			b.txs[i] = &sessionTx{store: s, scope: sc, sess: &sess, origin: o, oldStatus: sess.Status,
				unchanged: true, batch: b}
		}
		if err := fn(tx, b); err != nil {
			return err
		}
		bodies := make([][]byte, len(ids))
		for i, stx := range b.txs {
			if stx == nil || stx.unchanged {
				continue
			}
			body, err := json.Marshal(stx.sess)
			if err != nil {
				return err
			}
			bodies[i] = body
		}
		for _, job := range b.jobs {
			sessions := b.settled[job]
			b.later(func(ctx context.Context, pipe redis.Pipeliner) { s.settleBulk(ctx, pipe, sc, job, sessions...) })
		}
		err := wtx.commit(ctx, func(pipe redis.Pipeliner) error {
			for _, op := range b.ops {
				op(ctx, pipe)
			}
			for i, stx := range b.txs {
				if bodies[i] == nil {
					continue
				}
				if err := stx.commit(ctx, pipe, bodies[i]); err != nil {
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

// scrubTarget is one stored object that refers to sessions of a batch.
type scrubTarget struct {
	key      string
	kind     int
	sessions []int // indexes into the batch's ids
}

const (
	targetReport = iota
	targetEvent
	targetLog
	targetIdem
)

// ScrubCascadeMany scrubs what refers to many sessions of one scope, with pipelined round trips: one pipeline
// reads every session's indexes, one MGET per 500 keys loads the objects, one pipeline writes back what
// changed (keeping TTLs) and drops unverified submissions. An object tied to several sessions of the batch
// (a list request's log) is scrubbed for each of them. It is idempotent and safe to run concurrently with
// itself and with ScrubCascade. counts[i] belongs to ids[i].
func (s *Store) ScrubCascadeMany(ctx context.Context, sc Scope, ids []string, attempts AttemptScrubber) ([]ScrubCounts, error) {
	counts := make([]ScrubCounts, len(ids))
	if len(ids) == 0 {
		return counts, nil
	}
	targets, err := s.scrubTargets(ctx, sc, ids)
	if err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	for start := 0; start < len(targets); start += 500 {
		chunk := targets[start:min(start+500, len(targets))]
		keys := make([]string, len(chunk))
		for i, t := range chunk {
			keys[i] = t.key
		}
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("load objects to scrub: %w", err)
		}
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue
			}
			t := chunk[i]
			in, err := decodeDocString(str)
			if err != nil {
				return nil, fmt.Errorf("scrub %s: %w", keyKind(t.kind), err)
			}
			// scrubFor leaves its input alone (scrubscan_test.go checks it), so in tells whether anything changed.
			out, err := scrubFor(t.kind, in, ids, t.sessions, counts)
			if err != nil {
				return nil, fmt.Errorf("scrub %s: %w", keyKind(t.kind), err)
			}
			if !bytes.Equal(in, out) {
				pipe.SetArgs(ctx, t.key, EncodeDoc(out), redis.SetArgs{KeepTTL: true})
			}
		}
	}
	if attempts != nil {
		n, err := attempts(ctx, sc, ids)
		if err != nil {
			return nil, fmt.Errorf("scrub webhook attempts: %w", err)
		}
		for i := range ids {
			counts[i].WebhookAttempts = n[i]
		}
	}
	for _, id := range ids {
		pipe.Del(ctx, s.submissionKey(sc, id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("write scrubbed objects: %w", err)
	}
	return counts, nil
}

// scrubTargets reads the indexes of ids in one pipeline and returns every object tied to them that a scrub
// rewrites (reports, events, request logs, cached responses), each once, with the sessions it belongs to.
func (s *Store) scrubTargets(ctx context.Context, sc Scope, ids []string) ([]*scrubTarget, error) {
	type indexCmds struct {
		reports, logs *redis.StringSliceCmd
		events, idem  *redis.StringSliceCmd
	}
	cmds := make([]indexCmds, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = indexCmds{
				reports: pipe.ZRange(ctx, s.sessionReportsKey(sc, id), 0, -1),
				events:  pipe.ZRange(ctx, s.sessionEventsKey(sc, id), 0, -1),
				logs:    pipe.ZRange(ctx, s.objectLogsKey(sc, id), 0, -1),
				idem:    pipe.SMembers(ctx, s.objectIdemKey(sc, id)),
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read scrub indexes: %w", err)
	}
	var targets []*scrubTarget
	byKey := map[string]*scrubTarget{}
	add := func(key string, kind, i int) {
		t, ok := byKey[key]
		if !ok {
			t = &scrubTarget{key: key, kind: kind}
			byKey[key] = t
			targets = append(targets, t)
		}
		t.sessions = append(t.sessions, i)
	}
	for i, c := range cmds {
		for _, m := range c.reports.Val() {
			add(s.reportKey(sc, memberID(m)), targetReport, i)
		}
		for _, id := range c.events.Val() {
			add(s.eventKey(sc, id), targetEvent, i)
		}
		for _, m := range c.logs.Val() {
			add(s.requestLogKey(sc, memberID(m)), targetLog, i)
		}
		for _, k := range c.idem.Val() {
			add(k, targetIdem, i)
		}
	}
	return targets, nil
}

// RedactionKeys returns every key the redaction of ids rewrites: the sessions, their audit records, and the
// reports, events, request logs and cached responses tied to them. It is for measuring (identityd bench's
// I/O floor of a bulk redaction), not part of a redaction.
func (s *Store) RedactionKeys(ctx context.Context, sc Scope, ids []string) ([]string, error) {
	targets, err := s.scrubTargets(ctx, sc, ids)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(targets)+2*len(ids))
	for _, id := range ids {
		keys = append(keys, s.sessionKey(sc, id), s.redactionRecordKey(sc, id))
	}
	for _, t := range targets {
		keys = append(keys, t.key)
	}
	return keys, nil
}

func keyKind(kind int) string {
	return [...]string{"reports", "events", "request logs", "idempotent responses"}[kind]
}

// scrubFor applies the scrub rules of every owning session to one object, counting it for each of them.
func scrubFor(kind int, raw []byte, ids []string, owners []int, counts []ScrubCounts) ([]byte, error) {
	for _, i := range owners {
		switch kind {
		case targetReport:
			counts[i].VerificationReports++
		case targetEvent:
			counts[i].Events++
		case targetLog:
			counts[i].RequestLogs++
		case targetIdem:
			counts[i].IdempotencyEntries++
		}
	}
	owned := make([]string, len(owners))
	for n, i := range owners {
		owned[n] = ids[i]
	}
	switch kind {
	case targetLog:
		return scrubLogMany(raw, owned)
	case targetIdem:
		return scrubIdemMany(raw, owned)
	case targetEvent:
		return scrubEventMany(raw, owned), nil
	default:
		return scrubJSONMany(raw, owned), nil
	}
}

// CompleteRedactions is CompleteRedaction for many sessions of one scope (run ScrubCascadeMany first): one
// optimistic transaction marks every one redacted, completes its audit record and emits its single
// `.redacted` event, and settles the bulk jobs that asked for them. The result has one entry per id, nil for a
// session that does not exist; New is false for one already redacted. A session with no redaction request
// fails the whole call with ErrInvalidTransition, as the single path does.
func (s *Store) CompleteRedactions(ctx context.Context, sc Scope, ids []string, counts []ScrubCounts) ([]*RedactionCompletion, error) {
	recordKeys := make([]string, len(ids))
	for i, id := range ids {
		recordKeys[i] = s.redactionRecordKey(sc, id)
	}
	var requestedAt []int64
	b, err := s.mutateMany(ctx, sc, ids, Origin{}, recordKeys, func(tx *redis.Tx, b *batchTx) error {
		requestedAt = make([]int64, len(ids))
		scores := make([]*redis.FloatCmd, len(ids))
		_, err := tx.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for i, id := range ids {
				scores[i] = pipe.ZScore(ctx, s.pendingRedactionsKey(sc), id)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("load pending scores: %w", err)
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
			ms := int64(-1)
			if score, err := scores[i].Result(); err == nil {
				ms = int64(score)
			}
			stx.unchanged = false
			if requestedAt[i], err = stx.completeRedaction(rec, ms, counts[i]); err != nil {
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
