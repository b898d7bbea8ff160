package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// bulkBundle is one test's store with a fake clock, in scope acct_bulk (test mode).
type bulkBundle struct {
	st    *store.Store
	clock *storetest.FakeClock
	sc    store.Scope
	ctx   context.Context
}

func setupBulk(t *testing.T) *bulkBundle {
	t.Helper()
	clock := storetest.NewFakeClock(time.Unix(1_700_000_000, 0))
	return &bulkBundle{st: storetest.New(t).Store(clock), clock: clock, sc: store.Scope{Account: "acct_bulk"},
		ctx: context.Background()}
}

// create makes n sessions with the given client_reference_id, each carrying personal data.
func (b *bulkBundle) create(t *testing.T, n int, ref string) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		email := "person@example.com"
		sess, _, err := b.st.CreateSession(b.ctx, b.sc, store.SessionCreate{Type: "document", ClientReferenceID: &ref,
			Metadata: map[string]string{"name": "Jane Roe"}, ProvidedDetails: &store.ProvidedDetails{Email: &email}}, store.Origin{})
		require.NoError(t, err)
		ids[i] = sess.ID
	}
	return ids
}

// walk runs a job's steps until its walk is done and returns every step.
func (b *bulkBundle) walk(t *testing.T, id string, opt store.WalkOptions) []*store.BulkStep {
	t.Helper()
	var steps []*store.BulkStep
	for i := 0; ; i++ {
		require.Less(t, i, 1000, "walk does not end")
		step, err := b.st.BulkRedactionStep(b.ctx, b.sc, id, opt)
		require.NoError(t, err)
		steps = append(steps, step)
		if step.Done {
			return steps
		}
	}
}

// finish scrubs and completes the requested sessions through the batched path.
func (b *bulkBundle) finish(t *testing.T, steps []*store.BulkStep) []*store.Event {
	t.Helper()
	var evs []*store.Event
	for _, step := range steps {
		for _, batch := range step.Batches {
			res, err := b.st.CompleteRedactions(b.ctx, b.sc, batch.SessionIDs)
			require.NoError(t, err)
			for _, r := range res {
				evs = append(evs, r.Events...)
			}
		}
	}
	return evs
}

func (b *bulkBundle) snapshot(t *testing.T, ids []string) []string {
	t.Helper()
	sessions, err := b.st.GetSessions(b.ctx, b.sc, ids)
	require.NoError(t, err)
	out := make([]string, len(sessions))
	for i, s := range sessions {
		body, err := json.Marshal(s)
		require.NoError(t, err)
		out[i] = string(body)
	}
	return out
}

func TestBulkRedaction_DryRunThenRealRun(t *testing.T) {
	t.Parallel()
	b := setupBulk(t)
	alpha := b.create(t, 150, "cust-alpha")
	beta := b.create(t, 20, "cust-beta")
	// Make some alpha sessions ineligible: two in verification, three already in redaction.
	for _, id := range alpha[:2] {
		_, _, err := b.st.Submit(b.ctx, b.sc, id, &store.Submission{Outcome: store.OutcomeVerified}, store.Origin{})
		require.NoError(t, err)
	}
	for _, id := range alpha[2:5] {
		_, err := b.st.RequestRedaction(b.ctx, b.sc, id, store.Requester{Type: store.RequestedByRequest, ID: "req_x"}, store.Origin{})
		require.NoError(t, err)
	}
	b.clock.Advance(time.Second)
	before := b.snapshot(t, append(append([]string{}, alpha...), beta...))
	filter := store.BulkFilter{ClientReferenceID: "cust-alpha"}
	opt := store.WalkOptions{PageSize: 40, BatchSize: 25}

	dry, err := b.st.CreateBulkRedaction(b.ctx, b.sc, filter, true)
	require.NoError(t, err)
	require.Equal(t, store.BulkQueued, dry.Status)
	for _, step := range b.walk(t, dry.ID, opt) {
		require.Empty(t, step.Requested)
		require.Empty(t, step.Events)
	}
	dry, err = b.st.GetBulkRedaction(b.ctx, b.sc, dry.ID)
	require.NoError(t, err)
	require.Equal(t, store.BulkCompleted, dry.Status)
	require.NotNil(t, dry.CompletedAt)
	require.Equal(t, int64(150), dry.Matched)
	require.Equal(t, int64(145), dry.Requested)
	require.Equal(t, store.BulkSkipped{Processing: 2, AlreadyRedacted: 3}, dry.Skipped)
	require.Equal(t, before, b.snapshot(t, append(append([]string{}, alpha...), beta...)), "a dry run changes nothing")

	job, err := b.st.CreateBulkRedaction(b.ctx, b.sc, filter, false)
	require.NoError(t, err)
	steps := b.walk(t, job.ID, opt)
	got, err := b.st.GetBulkRedaction(b.ctx, b.sc, job.ID)
	require.NoError(t, err)
	require.Equal(t, store.BulkRunning, got.Status, "running until every requested session is scrubbed")
	require.Equal(t, dry.Matched, got.Matched)
	require.Equal(t, dry.Requested, got.Requested)
	require.Equal(t, dry.Skipped, got.Skipped)
	require.Zero(t, got.Redacted)

	evs := b.finish(t, steps)
	redactedEvents := map[string]int{}
	for _, ev := range evs {
		if ev.Type == store.EventSessionRedacted {
			redactedEvents[ev.ObjectID()]++
		}
	}
	require.Len(t, redactedEvents, 145)
	got, err = b.st.GetBulkRedaction(b.ctx, b.sc, job.ID)
	require.NoError(t, err)
	require.Equal(t, store.BulkCompleted, got.Status)
	require.Equal(t, int64(145), got.Redacted)
	require.NotNil(t, got.CompletedAt)

	for _, id := range alpha[5:] {
		sess, err := b.st.GetSession(b.ctx, b.sc, id)
		require.NoError(t, err)
		require.Equal(t, store.RedactionRedacted, sess.Redaction.Status)
		require.Empty(t, sess.Metadata)
		require.Equal(t, 1, redactedEvents[id])
		rec, err := b.st.RedactionRecord(b.ctx, b.sc, id)
		require.NoError(t, err)
		require.Equal(t, store.Requester{Type: store.RequestedByBulkRedaction, ID: job.ID}, rec.RequestedBy)
		require.NotNil(t, rec.CompletedAt)
		require.Equal(t, 2, rec.Scrubbed.Events, "created and canceled")
	}
	require.Equal(t, before[150:], b.snapshot(t, beta), "sessions outside the filter are untouched")
}

func TestBulkRedaction_CreatedAndStatusFilters(t *testing.T) {
	t.Parallel()
	b := setupBulk(t)
	old := b.create(t, 12, "r")
	b.clock.Advance(time.Hour)
	cut := b.clock.Now().Unix()
	young := b.create(t, 7, "r")
	_, _, err := b.st.CancelSession(b.ctx, b.sc, young[0], store.Origin{})
	require.NoError(t, err)

	job, err := b.st.CreateBulkRedaction(b.ctx, b.sc, store.BulkFilter{Created: &store.CreatedBounds{LT: &cut}}, true)
	require.NoError(t, err)
	b.walk(t, job.ID, store.WalkOptions{PageSize: 5})
	job, err = b.st.GetBulkRedaction(b.ctx, b.sc, job.ID)
	require.NoError(t, err)
	require.Equal(t, int64(len(old)), job.Matched)

	job, err = b.st.CreateBulkRedaction(b.ctx, b.sc, store.BulkFilter{Status: store.StatusRequiresInput, Created: &store.CreatedBounds{GTE: &cut}}, false)
	require.NoError(t, err)
	b.finish(t, b.walk(t, job.ID, store.WalkOptions{PageSize: 2}))
	job, err = b.st.GetBulkRedaction(b.ctx, b.sc, job.ID)
	require.NoError(t, err)
	require.Equal(t, int64(6), job.Requested, "walking the status index while redaction empties it")
	require.Equal(t, store.BulkCompleted, job.Status)
	for _, id := range old {
		sess, err := b.st.GetSession(b.ctx, b.sc, id)
		require.NoError(t, err)
		require.Nil(t, sess.Redaction)
	}
}

func TestBulkRedaction_CountsFailuresAndLaterSuccess(t *testing.T) {
	t.Parallel()
	b := setupBulk(t)
	ids := b.create(t, 3, "r")
	job, err := b.st.CreateBulkRedaction(b.ctx, b.sc, store.BulkFilter{ClientReferenceID: "r"}, false)
	require.NoError(t, err)
	steps := b.walk(t, job.ID, store.WalkOptions{})
	first, err := b.st.RecordRedactionFailure(b.ctx, b.sc, ids[0], "boom")
	require.NoError(t, err)
	require.True(t, first)
	again, err := b.st.RecordRedactionFailure(b.ctx, b.sc, ids[0], "boom")
	require.NoError(t, err)
	require.False(t, again)
	for _, id := range ids[1:] {
		_, err := b.st.CompleteRedaction(b.ctx, b.sc, id)
		require.NoError(t, err)
	}
	got, err := b.st.GetBulkRedaction(b.ctx, b.sc, job.ID)
	require.NoError(t, err)
	require.Equal(t, store.BulkCompleted, got.Status, "redacted + failed == requested")
	require.Equal(t, int64(2), got.Redacted)
	require.Equal(t, int64(1), got.Failed)

	b.finish(t, steps) // the reconciler's retry finally succeeds
	got, err = b.st.GetBulkRedaction(b.ctx, b.sc, job.ID)
	require.NoError(t, err)
	require.Equal(t, int64(3), got.Redacted)
	require.Zero(t, got.Failed)
}

func TestBulkRedaction_ListAndGet(t *testing.T) {
	t.Parallel()
	b := setupBulk(t)
	var ids []string
	for range 3 {
		job, err := b.st.CreateBulkRedaction(b.ctx, b.sc, store.BulkFilter{RelatedCustomer: "cus_1"}, true)
		require.NoError(t, err)
		ids = append(ids, job.ID)
		b.clock.Advance(time.Second)
	}
	page, more, err := b.st.ListBulkRedactions(b.ctx, b.sc, store.Page{Limit: 2})
	require.NoError(t, err)
	require.True(t, more)
	require.Equal(t, []string{ids[2], ids[1]}, []string{page[0].ID, page[1].ID})
	page, more, err = b.st.ListBulkRedactions(b.ctx, b.sc, store.Page{Limit: 2, StartingAfter: ids[1]})
	require.NoError(t, err)
	require.False(t, more)
	require.Len(t, page, 1)
	require.Equal(t, "cus_1", page[0].Filter.RelatedCustomer)

	_, err = b.st.GetBulkRedaction(b.ctx, store.Scope{Account: "acct_other"}, ids[0])
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = b.st.BulkRedactionStep(b.ctx, store.Scope{Account: "acct_bulk", Livemode: true}, ids[0], store.WalkOptions{})
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestRetention_RedactsOldSessionsOnly(t *testing.T) {
	t.Parallel()
	b := setupBulk(t)
	old := b.create(t, 9, "")
	_, _, err := b.st.Submit(b.ctx, b.sc, old[4], &store.Submission{Outcome: store.OutcomeVerified}, store.Origin{})
	require.NoError(t, err)
	b.clock.Advance(2 * time.Hour)
	young := b.create(t, 4, "")

	scopes, err := b.st.Scopes(b.ctx)
	require.NoError(t, err)
	require.Contains(t, scopes, b.sc, "creating a session registers the scope")

	run := func(runID string) (requested []string, skipped int) {
		cutoff := b.clock.Now().Add(-time.Hour).Unix()
		cursor, err := b.st.RetentionStart(b.ctx, b.sc)
		require.NoError(t, err)
		advance := true
		for {
			step, err := b.st.RetentionPage(b.ctx, b.sc, cutoff, cursor, advance, store.Requester{Type: store.RequestedByRetention, ID: runID}, store.WalkOptions{PageSize: 3})
			require.NoError(t, err)
			requested = append(requested, step.Requested...)
			skipped += step.SkippedProcessing
			cursor, advance = step.Cursor, step.Advance
			if step.Done {
				return requested, skipped
			}
		}
	}
	requested, skipped := run("ret_1")
	require.ElementsMatch(t, append(append([]string{}, old[:4]...), old[5:]...), requested)
	require.Equal(t, 1, skipped, "the session in verification is left for a later run")
	rec, err := b.st.RedactionRecord(b.ctx, b.sc, old[0])
	require.NoError(t, err)
	require.Equal(t, store.Requester{Type: store.RequestedByRetention, ID: "ret_1"}, rec.RequestedBy)
	for _, id := range young {
		sess, err := b.st.GetSession(b.ctx, b.sc, id)
		require.NoError(t, err)
		require.Nil(t, sess.Redaction)
	}

	// The verification finishes; the next run picks the session up, and nothing else.
	sess, err := b.st.GetSession(b.ctx, b.sc, old[4])
	require.NoError(t, err)
	pending, err := b.st.PendingVerifications(b.ctx, b.sc, b.clock.Now().UnixMilli()+1, 10)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	_, _, _, err = b.st.CompleteVerification(b.ctx, b.sc, sess.ID, pending[0].SubmissionID)
	require.NoError(t, err)
	requested, skipped = run("ret_2")
	require.Equal(t, []string{old[4]}, requested)
	require.Zero(t, skipped)
	requested, _ = run("ret_3")
	require.Empty(t, requested)
}
