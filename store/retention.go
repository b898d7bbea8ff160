package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// RetentionStep is what one page of a retention run did.
type RetentionStep struct {
	// Requested lists the sessions this page put into redaction.
	Requested []string
	// Batches splits Requested into scrub batches; each session's batch is recorded for the reconciler.
	Batches []RedactionBatch
	// Events are the events the page emitted (`.canceled` for sessions canceled on the way into redaction).
	Events []*Event
	// SkippedProcessing counts sessions in verification, left for a later run.
	SkippedProcessing int
	// Cursor is where the next page starts; Advance stays true while the watermark may still move (it stops
	// before the first skipped session).
	Cursor  string
	Advance bool
	// Done is true when no session created before the cutoff is left after Cursor.
	Done bool
}

// RetentionStart returns where a retention run of the scope starts: just after the watermark.
func (s *Store) RetentionStart(ctx context.Context, sc Scope) (string, error) {
	w, err := s.rdb.Get(ctx, s.retentionWatermarkKey(sc)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("retention watermark: %w", err)
	}
	return w, nil
}

// RetentionPage requests redaction, in one transaction, of the next page (after cursor, oldest first) of the
// scope's sessions created before cutoff (unix seconds), skipping sessions in verification (`processing`)
// and those already in redaction. by names the retention run in the audit records. Start a run with the
// cursor from RetentionStart and advance=true, then pass each step's Cursor and Advance on until Done.
func (s *Store) RetentionPage(ctx context.Context, sc Scope, cutoff int64, cursor string, advance bool, by Requester, opt WalkOptions) (*RetentionStep, error) {
	opt = opt.withDefaults()
	minLex, maxLex := "-", "("+fmt.Sprintf("%012d:", cutoff)
	if cursor != "" {
		minLex = "(" + cursor
	}
	size := opt.PageSize
	for {
		members, err := s.rdb.ZRangeByLex(ctx, s.sessionIndexKey(sc), &redis.ZRangeBy{Min: minLex, Max: maxLex, Count: int64(size)}).Result()
		if err != nil {
			return nil, fmt.Errorf("read session index: %w", err)
		}
		step, err := s.retentionPage(ctx, sc, members, cursor, advance, by, opt.BatchSize)
		if errors.Is(err, ErrConflict) && size > 1 {
			size /= 2
			continue
		}
		if err != nil {
			return nil, err
		}
		step.Done = len(members) < size
		return step, nil
	}
}

func (s *Store) retentionPage(ctx context.Context, sc Scope, members []string, cursor string, advance bool, by Requester, batchSize int) (*RetentionStep, error) {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = memberID(m)
	}
	if len(members) == 0 {
		return &RetentionStep{Cursor: cursor, Advance: advance}, nil
	}
	var st *RetentionStep
	b, err := s.mutateMany(ctx, sc, ids, Origin{}, nil, func(_ *redis.Tx, b *batchTx) error {
		st = &RetentionStep{Cursor: cursor, Advance: advance}
		watermark := ""
		for i, stx := range b.txs {
			switch {
			case stx == nil || stx.sess.Redacting():
			case stx.sess.Status == StatusProcessing:
				st.SkippedProcessing++
				st.Advance = false
			default:
				stx.unchanged = false
				if _, err := stx.requestRedaction(by); err != nil {
					return fmt.Errorf("request redaction of %s: %w", ids[i], err)
				}
				st.Requested = append(st.Requested, ids[i])
			}
			if st.Advance {
				watermark = members[i]
			}
		}
		if len(members) > 0 {
			st.Cursor = members[len(members)-1]
			st.Batches = splitBatches(by.ID+"."+ids[len(ids)-1], st.Requested, batchSize)
		}
		b.later(func(ctx context.Context, pipe redis.Pipeliner) {
			if watermark != "" {
				pipe.Set(ctx, s.retentionWatermarkKey(sc), watermark, 0)
			}
			s.recordBatches(ctx, pipe, sc, st.Batches)
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	st.Events = b.events()
	return st, nil
}

// registerCreator adds a scope that creates sessions to the registry Scopes lists, so retention runs reach
// every account that has sessions, not only those that ever asked for a redaction. One write per scope and
// process: the registry is never trimmed.
func (s *Store) registerCreator(ctx context.Context, sc Scope) error {
	if _, ok := s.registered.Load(sc); ok {
		return nil
	}
	if err := s.registerScope(ctx, sc); err != nil {
		return err
	}
	s.registered.Store(sc, true)
	return nil
}
