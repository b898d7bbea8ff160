package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// WalkOptions sizes the pages of a bulk or retention walk. Zero values pick the defaults.
type WalkOptions struct {
	// PageSize is how many index entries one step reads and commits in one transaction (default 500).
	PageSize int
	// BatchSize is how many requested sessions one scrub batch holds (default 100).
	BatchSize int
}

func (o WalkOptions) withDefaults() WalkOptions {
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	return o
}

// BulkStep is what one page of a bulk redaction's walk did.
type BulkStep struct {
	// Requested lists the sessions this page put into redaction (none in a dry run).
	Requested []string
	// Batches splits Requested into scrub batches; each session's batch is recorded for the reconciler.
	Batches []RedactionBatch
	// Events are the events the page emitted (`.canceled` for sessions canceled on the way into redaction).
	Events []*Event
	// Walked is how many index entries the page covered.
	Walked int
	// Done is true once the walk is finished (by this page or before it).
	Done bool
}

// errStalePage means another runner walked the page first.
var errStalePage = errors.New("bulk page already walked")

// BulkRedactionStep walks the next page of a job's sessions, in (created, id) order from its saved cursor. In
// ONE transaction it requests redaction of every eligible session of the page (the same transition as a
// single redact, requested_by the job), adds the page's counts to the job and saves the new cursor; so a run
// that dies anywhere resumes at the first page not committed, and nothing is counted twice. Sessions created
// after the job are not part of it. A step that finds its page already walked by a concurrent runner returns an
// empty step; call again until Done.
func (s *Store) BulkRedactionStep(ctx context.Context, sc Scope, id string, opt WalkOptions) (*BulkStep, error) {
	opt = opt.withDefaults()
	var fields *redis.SliceCmd
	var cursorCmd *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		fields = pipe.HMGet(ctx, s.bulkKey(sc, id), bfID, bfStatus, bfWalkDone, bfDryRun, bfFilter, bfCreated)
		cursorCmd = pipe.Get(ctx, s.bulkCursorKey(sc, id))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("load bulk redaction: %w", err)
	}
	field := func(i int) string { str, _ := fields.Val()[i].(string); return str }
	if field(0) == "" {
		return nil, ErrNotFound
	}
	cursor := cursorCmd.Val()
	if cursor == walkDoneCursor || field(2) == "1" || field(1) == BulkCompleted || field(1) == BulkFailed {
		return &BulkStep{Done: true}, nil
	}
	dryRun := field(3) == "1"
	var f BulkFilter
	if err := json.Unmarshal([]byte(field(4)), &f); err != nil {
		return nil, fmt.Errorf("decode bulk redaction %s filter: %w", id, err)
	}
	created, _ := strconv.ParseInt(field(5), 10, 64)
	r := f.Created.Range()
	if r.LTE == nil || *r.LTE > created {
		r.LTE = &created
	}
	minLex, maxLex, ok := Page{Created: r}.bounds("")
	if !ok { // an empty created range: the walk finds nothing
		minLex, maxLex = "+", "-"
	}
	if cursor != "" {
		minLex = "(" + cursor
	}
	index := s.bulkIndex(sc, f)
	size := opt.PageSize
	for {
		members, err := s.rdb.ZRangeByLex(ctx, index, &redis.ZRangeBy{Min: minLex, Max: maxLex, Count: int64(size)}).Result()
		if err != nil {
			return nil, fmt.Errorf("read session index: %w", err)
		}
		step, err := s.bulkPage(ctx, sc, id, cursor, members, len(members) < size, f, r, dryRun, opt.BatchSize)
		switch {
		case errors.Is(err, ErrConflict) && size > 1:
			size /= 2 // busy sessions: a smaller page is likelier to commit
			continue
		case errors.Is(err, errStalePage):
			return &BulkStep{}, nil
		}
		return step, err
	}
}

// bulkIndex picks the most selective index for the filter; the rest is checked on the loaded sessions.
func (s *Store) bulkIndex(sc Scope, f BulkFilter) string {
	switch {
	case f.ClientReferenceID != "":
		return s.sessionRefIndexKey(sc, f.ClientReferenceID)
	case f.RelatedCustomer != "":
		return s.sessionCustomerIndexKey(sc, f.RelatedCustomer)
	case f.Status != "":
		return s.sessionStatusIndexKey(sc, f.Status)
	}
	return s.sessionIndexKey(sc)
}

// matches checks a loaded session against the filter (r is the job's effective created range).
func (f BulkFilter) matches(x *Session, r CreatedRange) bool {
	return (f.ClientReferenceID == "" || (x.ClientReferenceID != nil && *x.ClientReferenceID == f.ClientReferenceID)) &&
		(f.RelatedCustomer == "" || (x.RelatedCustomer != nil && *x.RelatedCustomer == f.RelatedCustomer)) &&
		(f.Status == "" || x.Status == f.Status) && r.contains(x.Created)
}

func (r CreatedRange) contains(c int64) bool {
	return (r.GT == nil || c > *r.GT) && (r.GTE == nil || c >= *r.GTE) &&
		(r.LT == nil || c < *r.LT) && (r.LTE == nil || c <= *r.LTE)
}

// bulkPage commits one page: transitions, counters, cursor, batch records and (on the last page) walk_done.
func (s *Store) bulkPage(ctx context.Context, sc Scope, jobID, cursor string, members []string, last bool,
	f BulkFilter, r CreatedRange, dryRun bool, batchSize int) (*BulkStep, error) {
	key, cursorKey := s.bulkKey(sc, jobID), s.bulkCursorKey(sc, jobID)
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = memberID(m)
	}
	by := Requester{Type: RequestedByBulkRedaction, ID: jobID}
	var st *BulkStep
	b, err := s.mutateMany(ctx, sc, ids, Origin{}, []string{cursorKey}, func(_ *redis.Tx, b *batchTx) error {
		st = &BulkStep{Walked: len(ids), Done: last}
		cur, _ := b.watched[0].(string) // read under WATCH with the page's sessions; "" when none yet
		if cur != cursor {
			return errStalePage // another runner committed this page (or finished the walk)
		}
		var matched, processing, already, requested int64
		for i, stx := range b.txs {
			if stx == nil || !f.matches(stx.sess, r) {
				continue
			}
			matched++
			switch {
			case stx.sess.Redacting():
				already++
			case stx.sess.Status == StatusProcessing:
				processing++
			case dryRun:
				requested++
			default:
				stx.unchanged = false
				if _, err := stx.requestRedaction(by); err != nil {
					return fmt.Errorf("request redaction of %s: %w", ids[i], err)
				}
				requested++
				st.Requested = append(st.Requested, ids[i])
			}
		}
		if len(ids) > 0 {
			st.Batches = splitBatches(jobID+"."+ids[len(ids)-1], st.Requested, batchSize)
		}
		now := s.clock.Now().Unix()
		b.later(func(ctx context.Context, pipe redis.Pipeliner) {
			switch {
			case last:
				pipe.Set(ctx, cursorKey, walkDoneCursor, 0)
				pipe.HSet(ctx, key, bfWalkDone, "1")
				pipe.SRem(ctx, s.bulkWalkingKey(sc), jobID)
			case len(members) > 0:
				pipe.Set(ctx, cursorKey, members[len(members)-1], 0)
			}
			s.recordBatches(ctx, pipe, sc, st.Batches)
			pipe.Eval(ctx, bulkAccountSrc, []string{key}, now, bfMatched, matched, bfRequested, requested,
				bfSkippedProcessing, processing, bfSkippedAlreadyRedacted, already)
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	st.Events = b.events()
	return st, nil
}
