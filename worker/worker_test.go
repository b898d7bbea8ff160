package worker_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
	"github.com/identityd/identityd/worker"
)

// testBundle is a worker on the test's own Redis namespace and queues; no asynq server runs, so the tests
// call the handlers directly.
type testBundle struct {
	redis     *storetest.Redis
	store     *store.Store
	worker    *worker.Worker
	metrics   *events.Metrics
	inspector *asynq.Inspector
	queues    worker.Queues
	scope     store.Scope
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	r := storetest.New(t)
	st := r.Store(nil)
	metrics := events.NewMetrics(nil)
	queues := worker.NewQueues(r.QueuePrefix)
	client := &worker.Client{Asynq: asynq.NewClientFromRedisClient(r.Client), Queues: queues}
	inspector := asynq.NewInspectorFromRedisClient(r.Client)
	w := &worker.Worker{Store: st, Client: client, Inspector: inspector, Emitter: &events.Emitter{Metrics: metrics},
		Metrics: metrics}
	return &testBundle{redis: r, store: st, worker: w, metrics: metrics, inspector: inspector, queues: queues,
		scope: store.Scope{Account: "acct_worker", Livemode: false}}
}

// createSession makes a document session with personal data in metadata and provided details.
func (b *testBundle) createSession(t *testing.T) *store.Session {
	t.Helper()
	sess, _, err := b.store.CreateSession(context.Background(), b.scope, store.SessionCreate{Type: "document",
		Metadata:        map[string]string{"customer": "Ada Lovelace"},
		ProvidedDetails: &store.ProvidedDetails{Email: new("ada@example.com")}}, store.Origin{})
	require.NoError(t, err)
	return sess
}

// submit stores a verified-outcome submission and returns its id.
func (b *testBundle) submit(t *testing.T, id string) string {
	t.Helper()
	sub := &store.Submission{Outcome: store.OutcomeVerified, VerifiedOutputs: store.VerifiedOutputs{
		FirstName: new("Ada"), LastName: new("Lovelace"), IDNumber: new("123-45-6789"),
		Dob: &store.Date{Day: new(int64(10)), Month: new(int64(12)), Year: new(int64(1815))}},
		Document: store.SubmittedDoc{Type: new("passport"), Number: new("P123"), Files: []string{"file_a"}}}
	_, _, err := b.store.Submit(context.Background(), b.scope, id, sub, store.Origin{})
	require.NoError(t, err)
	return sub.ID
}

func (b *testBundle) verifyTask(t *testing.T, sessionID, submissionID string) *asynq.Task {
	t.Helper()
	payload, err := json.Marshal(worker.VerifyPayload{
		ScopePayload: worker.ScopePayload{Account: b.scope.Account, Livemode: b.scope.Livemode},
		SessionID:    sessionID, SubmissionID: submissionID})
	require.NoError(t, err)
	return asynq.NewTask(worker.TypeVerifySession, payload)
}

func (b *testBundle) redactTask(t *testing.T, sessionID string) *asynq.Task {
	t.Helper()
	payload, err := json.Marshal(worker.RedactPayload{
		ScopePayload: worker.ScopePayload{Account: b.scope.Account, Livemode: b.scope.Livemode}, SessionID: sessionID})
	require.NoError(t, err)
	return asynq.NewTask(worker.TypeRedactSession, payload)
}

// eventTypes counts the session's events by type.
func (b *testBundle) eventTypes(t *testing.T, sessionID string) map[string]int {
	t.Helper()
	ctx := context.Background()
	ids, err := b.store.SessionEventIDs(ctx, b.scope, sessionID)
	require.NoError(t, err)
	out := map[string]int{}
	for _, id := range ids {
		ev, err := b.store.GetEvent(ctx, b.scope, id)
		require.NoError(t, err)
		out[ev.Type]++
	}
	return out
}

func (b *testBundle) sessionJSON(t *testing.T, id string) string {
	t.Helper()
	sess, err := b.store.GetSession(context.Background(), b.scope, id)
	require.NoError(t, err)
	body, err := json.Marshal(sess)
	require.NoError(t, err)
	return string(body)
}

func TestHandleVerify_TwiceMakesOneReport(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	sess := b.createSession(t)
	subID := b.submit(t, sess.ID)

	task := b.verifyTask(t, sess.ID, subID)
	require.NoError(t, b.worker.HandleVerify(ctx, task))
	first := b.sessionJSON(t, sess.ID)
	require.NoError(t, b.worker.HandleVerify(ctx, task))
	require.Equal(t, first, b.sessionJSON(t, sess.ID), "a second run changes nothing")

	got, err := b.store.GetSession(ctx, b.scope, sess.ID)
	require.NoError(t, err)
	require.Equal(t, store.StatusVerified, got.Status)
	require.Equal(t, "Ada", *got.VerifiedOutputs.FirstName)
	reports, err := b.store.SessionReportIDs(ctx, b.scope, sess.ID)
	require.NoError(t, err)
	require.Len(t, reports, 1)
	require.Equal(t, reports[0], *got.LastVerificationReport)
	require.Equal(t, map[string]int{store.EventSessionCreated: 1, store.EventSessionProcessing: 1,
		store.EventSessionVerified: 1}, b.eventTypes(t, sess.ID))
	require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.EventsEmitted.WithLabelValues(store.EventSessionVerified)))
}

func TestHandleVerify_StaleSubmissionChangesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	sess := b.createSession(t)
	subID := b.submit(t, sess.ID)
	require.NoError(t, b.worker.HandleVerify(ctx, b.verifyTask(t, sess.ID, "vsub_other")))
	got, err := b.store.GetSession(ctx, b.scope, sess.ID)
	require.NoError(t, err)
	require.Equal(t, store.StatusProcessing, got.Status)
	require.NoError(t, b.worker.HandleVerify(ctx, b.verifyTask(t, sess.ID, subID)))
	got, err = b.store.GetSession(ctx, b.scope, sess.ID)
	require.NoError(t, err)
	require.Equal(t, store.StatusVerified, got.Status)
}

func TestHandleVerify_UnknownSessionSkipsRetry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	err := b.worker.HandleVerify(context.Background(), b.verifyTask(t, "vs_missing", "vsub_x"))
	require.ErrorIs(t, err, asynq.SkipRetry)
	err = b.worker.HandleVerify(context.Background(), asynq.NewTask(worker.TypeVerifySession, []byte("{")))
	require.ErrorIs(t, err, asynq.SkipRetry)
}

// verifiedAndRedactionRequested returns a verified session whose redaction was requested (not yet scrubbed).
func (b *testBundle) verifiedAndRedactionRequested(t *testing.T) *store.Session {
	t.Helper()
	ctx := context.Background()
	sess := b.createSession(t)
	subID := b.submit(t, sess.ID)
	require.NoError(t, b.worker.HandleVerify(ctx, b.verifyTask(t, sess.ID, subID)))
	res, err := b.store.RequestRedaction(ctx, b.scope, sess.ID, store.Requester{Type: store.RequestedByRequest, ID: "req_test"}, store.Origin{})
	require.NoError(t, err)
	require.True(t, res.New)
	return res.Session
}

func (b *testBundle) requireRedactedOnce(t *testing.T, id string) {
	t.Helper()
	ctx := context.Background()
	rec := requireRedacted(t, b, id)
	got, err := b.store.GetSession(ctx, b.scope, id)
	require.NoError(t, err)
	require.Nil(t, got.VerifiedOutputs.Dob)
	require.Equal(t, store.Requester{Type: store.RequestedByRequest, ID: "req_test"}, rec.RequestedBy)
	require.Equal(t, 1, rec.Scrubbed.VerificationReports)

	pending, err := b.store.PendingRedactions(ctx, b.scope, b.store.Now().UnixMilli()+1000, 100)
	require.NoError(t, err)
	require.NotContains(t, pending, id)

	reports, err := b.store.SessionReportIDs(ctx, b.scope, id)
	require.NoError(t, err)
	r, err := b.store.GetReport(ctx, b.scope, reports[0])
	require.NoError(t, err)
	require.Equal(t, store.Redacted, *r.Document.Number)
	require.Equal(t, []string{store.Redacted}, r.Document.Files)

	require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.RedactionsCompleted))
	require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.EventsEmitted.WithLabelValues(store.EventSessionRedacted)))
	require.Equal(t, uint64(1), histogramCount(t, b.metrics))
}

// histogramCount is how many durations the redaction histogram observed.
func histogramCount(t *testing.T, m *events.Metrics) uint64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(m.RedactionDuration))
	families, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, families, 1)
	return families[0].GetMetric()[0].GetHistogram().GetSampleCount()
}

func TestHandleRedact_TwiceIsIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	sess := b.verifiedAndRedactionRequested(t)
	task := b.redactTask(t, sess.ID)

	require.NoError(t, b.worker.HandleRedact(ctx, task))
	first := b.sessionJSON(t, sess.ID)
	firstRec, err := b.store.RedactionRecord(ctx, b.scope, sess.ID)
	require.NoError(t, err)
	require.NoError(t, b.worker.HandleRedact(ctx, task))
	require.Equal(t, first, b.sessionJSON(t, sess.ID))
	rec, err := b.store.RedactionRecord(ctx, b.scope, sess.ID)
	require.NoError(t, err)
	require.Equal(t, firstRec, rec)
	b.requireRedactedOnce(t, sess.ID)
}

func TestHandleRedact_ConcurrentRunsEmitOneEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	sess := b.verifiedAndRedactionRequested(t)
	task := b.redactTask(t, sess.ID)

	const n = 8
	errs := make(chan error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			errs <- b.worker.HandleRedact(ctx, task)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	b.requireRedactedOnce(t, sess.ID)
	after := b.sessionJSON(t, sess.ID)
	require.NoError(t, b.worker.HandleRedact(ctx, task))
	require.Equal(t, after, b.sessionJSON(t, sess.ID))
	b.requireRedactedOnce(t, sess.ID)
}

func TestHandleRedact_RefusesWhatItCannotDo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	sess := b.createSession(t)
	require.ErrorIs(t, b.worker.HandleRedact(ctx, b.redactTask(t, sess.ID)), asynq.SkipRetry, "no redaction requested")
	got := b.sessionJSON(t, sess.ID)
	require.Contains(t, got, "Ada Lovelace", "a session without a redaction request is left alone")
	require.ErrorIs(t, b.worker.HandleRedact(ctx, b.redactTask(t, "vs_missing")), asynq.SkipRetry)
	require.ErrorIs(t, b.worker.HandleRedact(ctx, asynq.NewTask(worker.TypeRedactSession, []byte("nope"))), asynq.SkipRetry)
	require.Equal(t, 0.0, testutil.ToFloat64(b.metrics.RedactionsCompleted))
}

// redactTasks lists the redaction queue's tasks in the given state.
func (b *testBundle) redactTasks(t *testing.T, list func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error)) []*asynq.TaskInfo {
	t.Helper()
	tasks, err := list(b.queues.Redact)
	if err != nil {
		require.ErrorIs(t, err, asynq.ErrQueueNotFound)
		return nil
	}
	return tasks
}

func payloadSession(t *testing.T, info *asynq.TaskInfo) string {
	t.Helper()
	var p worker.RedactPayload
	require.NoError(t, json.Unmarshal(info.Payload, &p))
	return p.SessionID
}

func TestReconcile_EnqueuesMissingTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	sess := b.verifiedAndRedactionRequested(t) // requested, but nothing was enqueued (as if the API died)
	require.Empty(t, b.redactTasks(t, b.inspector.ListPendingTasks))

	n, err := b.worker.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	pending := b.redactTasks(t, b.inspector.ListPendingTasks)
	require.Len(t, pending, 1)
	require.Equal(t, sess.ID, payloadSession(t, pending[0]))
	require.NotContains(t, string(pending[0].Payload), "Ada", "payloads carry ids only")

	n, err = b.worker.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, n, "an existing task is left alone")
	require.Len(t, b.redactTasks(t, b.inspector.ListPendingTasks), 1)

	// Once the session is redacted it leaves the pending index and the reconciler has nothing to do.
	require.NoError(t, b.worker.HandleRedact(ctx, b.redactTask(t, sess.ID)))
	require.NoError(t, b.inspector.DeleteTask(b.queues.Redact, pending[0].ID))
	n, err = b.worker.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, n)
	require.Empty(t, b.redactTasks(t, b.inspector.ListPendingTasks))
}

func TestReconcile_ArchivedTaskIsRecordedAndRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	sess := b.verifiedAndRedactionRequested(t)
	require.NoError(t, b.worker.Client.EnqueueRedact(ctx, b.scope, sess.ID))
	pending := b.redactTasks(t, b.inspector.ListPendingTasks)
	require.Len(t, pending, 1)
	taskID := pending[0].ID

	for round := range 2 {
		// The task exhausted its retries: asynq archived it.
		require.NoError(t, b.inspector.ArchiveTask(b.queues.Redact, taskID))
		require.Len(t, b.redactTasks(t, b.inspector.ListArchivedTasks), 1)

		n, err := b.worker.Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		failed, err := b.store.FailedRedactions(ctx, b.scope)
		require.NoError(t, err)
		require.Contains(t, failed, sess.ID)
		require.NotContains(t, failed[sess.ID], "Ada")
		require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.RedactionsFailed), "counted once per session, round %d", round)
		require.Empty(t, b.redactTasks(t, b.inspector.ListArchivedTasks))
		pending = b.redactTasks(t, b.inspector.ListPendingTasks)
		require.Len(t, pending, 1, "re-enqueued")
		require.Equal(t, taskID, pending[0].ID, "with the same deterministic id")
	}

	// The retried task succeeds: the failure record goes away, the counter stays.
	require.NoError(t, b.worker.HandleRedact(ctx, b.redactTask(t, sess.ID)))
	failed, err := b.store.FailedRedactions(ctx, b.scope)
	require.NoError(t, err)
	require.Empty(t, failed)
	require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.RedactionsFailed))
	b.requireRedactedOnce(t, sess.ID)
}

// A verification whose task was archived (retries exhausted during a long Redis outage) would leave the
// session in processing for good — and a processing session cannot be redacted. The reconciler runs it again.
func TestReconcile_ArchivedVerificationIsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	sess := b.createSession(t)
	subID := b.submit(t, sess.ID)
	require.NoError(t, b.worker.Client.EnqueueVerify(ctx, b.scope, sess.ID, subID))
	pending, err := b.inspector.ListPendingTasks(b.queues.Verify)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	require.NoError(t, b.inspector.ArchiveTask(b.queues.Verify, pending[0].ID))

	_, err = b.worker.Reconcile(ctx)
	require.NoError(t, err)
	archived, err := b.inspector.ListArchivedTasks(b.queues.Verify)
	require.NoError(t, err)
	require.Empty(t, archived)
	again, err := b.inspector.ListPendingTasks(b.queues.Verify)
	require.NoError(t, err)
	require.Len(t, again, 1)
	require.Equal(t, pending[0].ID, again[0].ID)

	require.NoError(t, b.worker.HandleVerify(ctx, asynq.NewTask(again[0].Type, again[0].Payload)))
	got, err := b.store.GetSession(ctx, b.scope, sess.ID)
	require.NoError(t, err)
	require.Equal(t, store.StatusVerified, got.Status)
	// Verified: nothing is pending any more, so the reconciler leaves the queue alone.
	require.NoError(t, b.inspector.DeleteTask(b.queues.Verify, again[0].ID))
	_, err = b.worker.Reconcile(ctx)
	require.NoError(t, err)
	left, err := b.inspector.ListPendingTasks(b.queues.Verify)
	require.NoError(t, err)
	require.Empty(t, left)
}
