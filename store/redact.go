package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Who asked for a redaction.
const (
	RequestedByRequest       = "request"
	RequestedByBulkRedaction = "bulk_redaction"
	RequestedByRetention     = "retention"
)

// Requester names what asked for a redaction; the id is a request, bulk job or retention run id.
type Requester struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// ScrubCounts counts what a redaction scrubbed.
type ScrubCounts struct {
	VerificationReports int `json:"verification_reports"`
	Events              int `json:"events"`
	RequestLogs         int `json:"request_logs"`
	IdempotencyEntries  int `json:"idempotency_entries"`
	WebhookAttempts     int `json:"webhook_attempts"`
}

// RedactionRecord is the audit record of one redaction. It holds no personal data.
type RedactionRecord struct {
	Object              string      `json:"object"`
	VerificationSession string      `json:"verification_session"`
	Livemode            bool        `json:"livemode"`
	RequestedAt         int64       `json:"requested_at"`
	CompletedAt         *int64      `json:"completed_at"`
	RequestedBy         Requester   `json:"requested_by"`
	Scrubbed            ScrubCounts `json:"scrubbed"`
}

// RedactionRequest is the result of RequestRedaction.
type RedactionRequest struct {
	Session *Session
	Events  []*Event
	// New is true when this call put the session into redaction (false when it already was).
	New bool
}

// RequestRedaction puts a session into redaction in one atomic step: auto-cancel from requires_input,
// redaction.status=processing, credentials dropped, the pending-redaction index and the audit record.
// Calling it again changes nothing. The caller enqueues the scrub task after it returns.
func (s *Store) RequestRedaction(ctx context.Context, sc Scope, id string, by Requester, o Origin) (*RedactionRequest, error) {
	fresh := false
	sess, events, err := s.mutate(ctx, sc, id, o, func(stx *sessionTx) error {
		var err error
		fresh, err = stx.requestRedaction(by)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &RedactionRequest{Session: sess, Events: events, New: fresh}, nil
}

// requestRedaction is the redaction request transition, shared by RequestRedaction and the batched paths
// (bulk jobs, retention). It reports whether it put the session into redaction; a session already in
// redaction is left unchanged.
func (stx *sessionTx) requestRedaction(by Requester) (bool, error) {
	s, sc, sess := stx.store, stx.scope, stx.sess
	id := sess.ID
	if sess.Redacting() {
		stx.unchanged = true
		return false, nil
	}
	switch sess.Status {
	case StatusProcessing:
		return false, ErrInvalidTransition
	case StatusRequiresInput:
		stx.cancel()
	}
	sess.Redaction = &Redaction{Status: RedactionProcessing}
	sess.ClientSecret, sess.URL = nil, nil
	now := s.clock.Now()
	record, _ := json.Marshal(RedactionRecord{Object: "identity.redaction_record", VerificationSession: id,
		Livemode: sc.Livemode, RequestedAt: now.Unix(), RequestedBy: by})
	stx.later(func(ctx context.Context, pipe redis.Pipeliner) {
		pipe.ZAdd(ctx, s.pendingRedactionsKey(sc), redis.Z{Score: float64(now.UnixMilli()), Member: id})
		pipe.Set(ctx, s.redactionRecordKey(sc, id), EncodeDoc(record), 0)
		pipe.Del(ctx, s.returnURLKey(sc, id))
	})
	return true, nil
}

// RedactionRecord returns a session's audit record; ErrNotFound when it was never redacted.
func (s *Store) RedactionRecord(ctx context.Context, sc Scope, id string) (*RedactionRecord, error) {
	raw, err := s.rdb.Get(ctx, s.redactionRecordKey(sc, id)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get redaction record: %w", err)
	}
	return decodeRedactionRecord(raw)
}

// decodeRedactionRecord decodes a stored redaction record.
func decodeRedactionRecord(stored string) (*RedactionRecord, error) {
	raw, err := decodeDocString(stored)
	if err != nil {
		return nil, fmt.Errorf("decode redaction record: %w", err)
	}
	var r RedactionRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("decode redaction record: %w", err)
	}
	return &r, nil
}

// RedactionCompletion is the result of CompleteRedaction.
type RedactionCompletion struct {
	Session *Session
	Events  []*Event
	// New is true when this call finished the redaction (false when it was already finished).
	New bool
	// RequestedAtMillis is when the redaction was requested (unix milliseconds).
	RequestedAtMillis int64
}

// CompleteRedaction finishes a requested redaction in one optimistic transaction: it scrubs the session's
// personal-data record (every version, every request's personal part), its reports and the session itself
// with the table's rules, drops an unverified submission, marks the session redacted, removes it from the
// pending index, completes the audit record (with the counts of what refers to the session) and emits the
// single `.redacted` event. Events, request logs and cached responses refer to the record, so they render
// scrubbed from the commit on with nothing to rewrite: the work is a constant number of keys plus the
// session's reports. Running it again changes nothing.
func (s *Store) CompleteRedaction(ctx context.Context, sc Scope, id string) (*RedactionCompletion, error) {
	res := &RedactionCompletion{}
	recordKey := s.redactionRecordKey(sc, id)
	sess, events, err := s.mutate(ctx, sc, id, Origin{}, func(stx *sessionTx) error {
		res.New = false
		if stx.sess.Redaction != nil && stx.sess.Redaction.Status == RedactionRedacted {
			stx.unchanged = true
			return nil
		}
		var rec *RedactionRecord
		var err error
		if stored, ok := stx.watched[0].(string); ok { // the record, read under WATCH with the session
			if rec, err = decodeRedactionRecord(stored); err != nil {
				return err
			}
		}
		targets, err := s.readRedactionTargets(ctx, stx.tx, sc, []string{id})
		if err != nil {
			return err
		}
		if res.RequestedAtMillis, err = stx.completeRedaction(rec, targets[0]); err != nil {
			return err
		}
		res.New = !stx.unchanged
		return nil
	}, recordKey)
	if err != nil {
		return nil, err
	}
	res.Session, res.Events = sess, events
	return res, nil
}

// redactionTargets is what a redaction rewrites besides the session, and the counts for its audit record.
type redactionTargets struct {
	requestedAtMillis int64 // the pending-index score, -1 when absent
	reportKeys        []string
	reports           []string // as stored, "" where missing
	counts            ScrubCounts
}

// readRedactionTargets reads, through tx (the transaction's connection), the reports and reference counts of
// sessions (their personal-data records were read with them): one pipeline, and one MGET for the reports.
func (s *Store) readRedactionTargets(ctx context.Context, tx redis.Cmdable, sc Scope, ids []string) ([]*redactionTargets, error) {
	type cmds struct {
		score                     *redis.FloatCmd
		reports                   *redis.StringSliceCmd
		events, logs, idem, hooks *redis.IntCmd
	}
	all := make([]cmds, len(ids))
	_, err := tx.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, id := range ids {
			all[i] = cmds{
				score:   pipe.ZScore(ctx, s.pendingRedactionsKey(sc), id),
				reports: pipe.ZRange(ctx, s.sessionReportsKey(sc, id), 0, -1),
				events:  pipe.ZCard(ctx, s.sessionEventsKey(sc, id)),
				logs:    pipe.ZCard(ctx, s.objectLogsKey(sc, id)),
				idem:    pipe.SCard(ctx, s.objectIdemKey(sc, id)),
				hooks:   pipe.SCard(ctx, s.sessionAttemptsKey(sc, id)),
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read redaction targets: %w", err)
	}
	out := make([]*redactionTargets, len(ids))
	var reportKeys []string
	for i, c := range all {
		t := &redactionTargets{requestedAtMillis: -1}
		if score, err := c.score.Result(); err == nil {
			t.requestedAtMillis = int64(score)
		}
		for _, m := range c.reports.Val() {
			t.reportKeys = append(t.reportKeys, s.reportKey(sc, memberID(m)))
		}
		reportKeys = append(reportKeys, t.reportKeys...)
		t.counts = ScrubCounts{VerificationReports: len(t.reportKeys), Events: int(c.events.Val()),
			RequestLogs: int(c.logs.Val()), IdempotencyEntries: int(c.idem.Val()), WebhookAttempts: int(c.hooks.Val())}
		out[i] = t
	}
	if len(reportKeys) == 0 {
		return out, nil
	}
	vals, err := tx.MGet(ctx, reportKeys...).Result()
	if err != nil {
		return nil, fmt.Errorf("read reports to scrub: %w", err)
	}
	for _, t := range out {
		for range t.reportKeys {
			str, _ := vals[0].(string)
			t.reports = append(t.reports, str)
			vals = vals[1:]
		}
	}
	return out, nil
}

// completeRedaction is the redaction completion transition, shared by CompleteRedaction and the batched path:
// scrub the personal-data record, the reports and the session, mark it redacted, drop it from the pending
// index, complete the audit record (rec is nil when none was found), settle the bulk job that asked for it,
// and emit `.redacted`. It returns when the redaction was requested, in unix milliseconds.
func (stx *sessionTx) completeRedaction(rec *RedactionRecord, t *redactionTargets) (int64, error) {
	s, sc, sess := stx.store, stx.scope, stx.sess
	id := sess.ID
	if sess.Redaction == nil {
		return 0, ErrInvalidTransition
	}
	if sess.Redaction.Status == RedactionRedacted {
		stx.unchanged = true
		return 0, nil
	}
	if err := stx.personal.scrub(id); err != nil {
		return 0, err
	}
	stx.personalChanged = true
	reports := make([]any, 0, 2*len(t.reports))
	for i, stored := range t.reports {
		if stored == "" {
			continue
		}
		raw, err := decodeDocString(stored)
		if err != nil {
			return 0, fmt.Errorf("report of %s: %w", id, err)
		}
		scrubbed, err := scrubRaw(KindReport, raw)
		if err != nil {
			return 0, fmt.Errorf("report of %s: %w", id, err)
		}
		reports = append(reports, t.reportKeys[i], EncodeDoc(scrubbed))
	}
	if err := ScrubSession(sess); err != nil {
		return 0, err
	}
	sess.Redaction.Status = RedactionRedacted
	if rec == nil {
		rec = &RedactionRecord{Object: "identity.redaction_record", VerificationSession: id, Livemode: sc.Livemode,
			RequestedAt: s.clock.Now().Unix(), RequestedBy: Requester{Type: RequestedByRequest}}
	}
	now := s.clock.Now().Unix()
	rec.CompletedAt = &now
	rec.Scrubbed = t.counts
	requestedAtMillis := t.requestedAtMillis
	if requestedAtMillis < 0 {
		requestedAtMillis = rec.RequestedAt * 1000
	}
	body, _ := json.Marshal(rec)
	by := rec.RequestedBy
	if by.Type == RequestedByBulkRedaction && by.ID != "" && stx.batch != nil {
		stx.batch.settle(by.ID, id) // one accounting step per job, ahead of every session's writes
	}
	stx.later(func(ctx context.Context, pipe redis.Pipeliner) {
		if by.Type == RequestedByBulkRedaction && by.ID != "" && stx.batch == nil {
			s.settleBulk(ctx, pipe, sc, by.ID, id) // before the failure record is dropped: it reads it
		}
		if len(reports) > 0 {
			pipe.MSet(ctx, reports...)
		}
		pipe.Del(ctx, s.submissionKey(sc, id))
		pipe.ZRem(ctx, s.pendingRedactionsKey(sc), id)
		pipe.HDel(ctx, s.failedRedactionsKey(sc), id)
		pipe.HDel(ctx, s.batchedRedactionsKey(sc), id)
		pipe.Set(ctx, s.redactionRecordKey(sc, id), EncodeDoc(body), 0)
	})
	stx.emit(EventSessionRedacted)
	return requestedAtMillis, nil
}

// PendingRedactions returns up to limit session ids whose redaction was requested at or before beforeMillis
// (unix milliseconds) and is not finished, oldest first.
func (s *Store) PendingRedactions(ctx context.Context, sc Scope, beforeMillis int64, limit int64) ([]string, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.pendingRedactionsKey(sc), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(beforeMillis, 10), Count: limit}).Result()
	if err != nil {
		return nil, fmt.Errorf("pending redactions: %w", err)
	}
	return ids, nil
}

// registerScope adds sc to the global registry the reconciler walks. The registry lives in another cluster
// slot than the account's keys, so it is written before the transaction, idempotently.
func (s *Store) registerScope(ctx context.Context, sc Scope) error {
	if err := s.rdb.SAdd(ctx, s.accountsKey(), sc.String()).Err(); err != nil {
		return fmt.Errorf("register scope: %w", err)
	}
	return nil
}

// Scopes lists every account and mode that ever created a session, requested a redaction or started a bulk
// redaction.
func (s *Store) Scopes(ctx context.Context) ([]Scope, error) {
	raw, err := s.rdb.SMembers(ctx, s.accountsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("list scopes: %w", err)
	}
	out := make([]Scope, 0, len(raw))
	for _, r := range raw {
		acct, mode, ok := strings.Cut(r, "|")
		if ok {
			out = append(out, Scope{Account: acct, Livemode: mode == "live"})
		}
	}
	return out, nil
}

// RecordRedactionFailure durably records that a redaction exhausted its retries (asynq's archive is capped).
// reason must hold ids only. It returns true the first time for a session.
// A failure of a session a bulk job asked for is also counted on the job.
func (s *Store) RecordRedactionFailure(ctx context.Context, sc Scope, id, reason string) (bool, error) {
	keys := []string{s.failedRedactionsKey(sc), s.pendingRedactionsKey(sc), s.failedRedactionsKey(sc)}
	isJob := "0"
	rec, err := s.RedactionRecord(ctx, sc, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false, fmt.Errorf("record redaction failure: %w", err)
	}
	if rec != nil && rec.RequestedBy.Type == RequestedByBulkRedaction && rec.RequestedBy.ID != "" {
		keys[2], isJob = s.bulkKey(sc, rec.RequestedBy.ID), "1"
	}
	n, err := recordFailureScript.Run(ctx, s.rdb, keys, id, reason, s.clock.Now().Unix(), isJob).Int()
	if err != nil {
		return false, fmt.Errorf("record redaction failure: %w", err)
	}
	return n == 1, nil
}

// FailedRedactions returns the recorded failures of a scope: session id → reason.
func (s *Store) FailedRedactions(ctx context.Context, sc Scope) (map[string]string, error) {
	m, err := s.rdb.HGetAll(ctx, s.failedRedactionsKey(sc)).Result()
	if err != nil {
		return nil, fmt.Errorf("failed redactions: %w", err)
	}
	return m, nil
}

// FailedRedaction is one redaction that exhausted its retries and is not finished yet (ids only).
type FailedRedaction struct {
	Account             string `json:"account"`
	Livemode            bool   `json:"livemode"`
	VerificationSession string `json:"verification_session"`
	Reason              string `json:"reason"`
}

// UnresolvedFailedRedactions lists, across every scope, the redactions recorded as failed that have not
// completed since (a later success clears the record), at most limit of them, and how many there are in all.
func (s *Store) UnresolvedFailedRedactions(ctx context.Context, limit int) ([]FailedRedaction, int, error) {
	scopes, err := s.Scopes(ctx)
	if err != nil {
		return nil, 0, err
	}
	var out []FailedRedaction
	total := 0
	for _, sc := range scopes {
		m, err := s.FailedRedactions(ctx, sc)
		if err != nil {
			return nil, 0, err
		}
		total += len(m)
		for id, reason := range m {
			if len(out) < limit {
				out = append(out, FailedRedaction{Account: sc.Account, Livemode: sc.Livemode, VerificationSession: id, Reason: reason})
			}
		}
	}
	return out, total, nil
}
