package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
	"github.com/identityd/identityd/worker"
)

// workerBundle is a Worker on the test's own Redis namespace, with an asynq server processing its queues.
type workerBundle struct {
	r     *storetest.Redis
	st    *store.Store
	w     *worker.Worker
	clock *storetest.FakeClock
	sc    store.Scope
	ctx   context.Context
}

func setupWorker(t *testing.T, startServer bool) *workerBundle {
	t.Helper()
	r := storetest.New(t)
	clock := storetest.NewFakeClock(time.Now())
	st := r.Store(clock)
	queues := worker.NewQueues(r.QueuePrefix)
	metrics := events.NewMetrics(nil)
	w := &worker.Worker{Store: st, Metrics: metrics, Emitter: &events.Emitter{Metrics: metrics},
		Client:    &worker.Client{Asynq: asynq.NewClientFromRedisClient(r.Client), Queues: queues},
		Inspector: asynq.NewInspectorFromRedisClient(r.Client),
		Walk:      store.WalkOptions{PageSize: 20, BatchSize: 15}}
	if startServer {
		srv := worker.NewServer(r.Client, worker.ServerConfig{Concurrency: 4, Queues: queues, ShutdownTimeout: 5 * time.Second})
		require.NoError(t, srv.Start(w.Mux()))
		t.Cleanup(srv.Shutdown)
	}
	return &workerBundle{r: r, st: st, w: w, clock: clock, sc: store.Scope{Account: "acct_w"}, ctx: context.Background()}
}

func (b *workerBundle) create(t *testing.T, n int, ref string) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		sess, _, err := b.st.CreateSession(b.ctx, b.sc, store.SessionCreate{Type: "document", ClientReferenceID: &ref,
			Metadata: map[string]string{"name": "Jane Roe"}}, store.Origin{})
		require.NoError(t, err)
		ids[i] = sess.ID
	}
	return ids
}

// waitJob polls the job until cond holds.
func (b *workerBundle) waitJob(t *testing.T, id string, cond func(*store.BulkRedaction) bool) *store.BulkRedaction {
	t.Helper()
	var job *store.BulkRedaction
	require.Eventually(t, func() bool {
		var err error
		job, err = b.st.GetBulkRedaction(b.ctx, b.sc, id)
		require.NoError(t, err)
		return cond(job)
	}, 30*time.Second, 20*time.Millisecond, "bulk redaction %s never reached the condition", id)
	return job
}

// redactedEvents counts `.redacted` events per session in the scope.
func (b *workerBundle) redactedEvents(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	page := store.Page{Limit: 100}
	for {
		evs, more, err := b.st.ListEvents(b.ctx, b.sc, store.EventFilter{Types: []string{store.EventSessionRedacted}}, page)
		require.NoError(t, err)
		for _, ev := range evs {
			out[ev.ObjectID()]++
		}
		if !more {
			return out
		}
		page.StartingAfter = evs[len(evs)-1].ID
	}
}

func (b *workerBundle) requireRedacted(t *testing.T, ids []string, want bool) {
	t.Helper()
	sessions, err := b.st.GetSessions(b.ctx, b.sc, ids)
	require.NoError(t, err)
	for _, s := range sessions {
		if want {
			require.NotNil(t, s.Redaction, s.ID)
			require.Equal(t, store.RedactionRedacted, s.Redaction.Status, s.ID)
			require.Empty(t, s.Metadata)
		} else {
			require.Nil(t, s.Redaction, s.ID)
		}
	}
}

func TestBulkRedaction_EndToEnd(t *testing.T) {
	t.Parallel()
	b := setupWorker(t, true)
	alpha := b.create(t, 150, "cust-alpha")
	beta := b.create(t, 20, "cust-beta")

	dry, err := b.st.CreateBulkRedaction(b.ctx, b.sc, store.BulkFilter{ClientReferenceID: "cust-alpha"}, true)
	require.NoError(t, err)
	require.NoError(t, b.w.Client.EnqueueBulkRedaction(b.ctx, b.sc, dry.ID))
	dry = b.waitJob(t, dry.ID, (*store.BulkRedaction).Done)
	require.Equal(t, store.BulkCompleted, dry.Status)
	require.Equal(t, int64(150), dry.Requested)
	b.requireRedacted(t, alpha, false)

	job, err := b.st.CreateBulkRedaction(b.ctx, b.sc, store.BulkFilter{ClientReferenceID: "cust-alpha"}, false)
	require.NoError(t, err)
	require.NoError(t, b.w.Client.EnqueueBulkRedaction(b.ctx, b.sc, job.ID))
	job = b.waitJob(t, job.ID, (*store.BulkRedaction).Done)
	require.Equal(t, store.BulkCompleted, job.Status)
	require.Equal(t, dry.Matched, job.Matched)
	require.Equal(t, dry.Requested, job.Requested)
	require.Equal(t, dry.Skipped, job.Skipped)
	require.Equal(t, int64(150), job.Redacted)
	b.requireRedacted(t, alpha, true)
	b.requireRedacted(t, beta, false)
	events := b.redactedEvents(t)
	require.Len(t, events, 150)
	for _, id := range alpha {
		require.Equal(t, 1, events[id])
	}
	require.Equal(t, 150.0, counterValue(t, b.w.Metrics.RedactionsRequested))
	require.Equal(t, 150.0, counterValue(t, b.w.Metrics.RedactionsCompleted))
}

func TestBulkRedaction_ResumesAfterCrash(t *testing.T) {
	t.Parallel()
	b := setupWorker(t, true)
	ids := b.create(t, 130, "cust-crash")
	job, err := b.st.CreateBulkRedaction(b.ctx, b.sc, store.BulkFilter{ClientReferenceID: "cust-crash"}, false)
	require.NoError(t, err)

	// A worker dies right after committing a page, before enqueueing its scrub batches: the cursor and counts
	// are saved with the page, the batch tasks are lost.
	lost, err := b.st.BulkRedactionStep(b.ctx, b.sc, job.ID, b.w.Walk)
	require.NoError(t, err)
	require.Len(t, lost.Requested, 20)

	// Another worker runs the walk and dies after two more pages (its context ends).
	ctx, cancel := context.WithCancel(b.ctx)
	pages := 0
	worker.SetAfterBulkPage(b.w, func(*store.BulkStep) {
		if pages++; pages == 2 {
			cancel()
		}
	})
	require.ErrorIs(t, b.w.RunBulkRedaction(ctx, b.sc, job.ID), context.Canceled)
	mid, err := b.st.GetBulkRedaction(b.ctx, b.sc, job.ID)
	require.NoError(t, err)
	require.Equal(t, int64(60), mid.Requested, "three pages committed, each counted once")
	require.Equal(t, store.BulkRunning, mid.Status)

	// The task runs again and finishes the walk from the saved cursor.
	worker.SetAfterBulkPage(b.w, nil)
	require.NoError(t, b.w.RunBulkRedaction(b.ctx, b.sc, job.ID))
	// The reconciler hands the sessions of the lost batches to the single-session path.
	require.Eventually(t, func() bool {
		pending, err := b.st.PendingRedactions(b.ctx, b.sc, b.clock.Now().UnixMilli(), 1000)
		require.NoError(t, err)
		if len(pending) == 0 {
			return true
		}
		_, err = b.w.Reconcile(b.ctx)
		require.NoError(t, err)
		return false
	}, 30*time.Second, 50*time.Millisecond)

	job = b.waitJob(t, job.ID, (*store.BulkRedaction).Done)
	require.Equal(t, store.BulkCompleted, job.Status)
	require.Equal(t, int64(130), job.Matched)
	require.Equal(t, int64(130), job.Requested)
	require.Equal(t, int64(130), job.Redacted)
	require.Zero(t, job.Failed)
	b.requireRedacted(t, ids, true)
	events := b.redactedEvents(t)
	require.Len(t, events, 130)
	for _, id := range ids {
		require.Equal(t, 1, events[id], id)
	}
	for _, id := range lost.Requested {
		rec, err := b.st.RedactionRecord(b.ctx, b.sc, id)
		require.NoError(t, err)
		require.Equal(t, store.Requester{Type: store.RequestedByBulkRedaction, ID: job.ID}, rec.RequestedBy)
	}
}

func TestRedactBatch_IdempotentWithSinglePath(t *testing.T) {
	t.Parallel()
	b := setupWorker(t, false)
	ids := b.create(t, 12, "r")
	for _, id := range ids {
		_, err := b.st.RequestRedaction(b.ctx, b.sc, id, store.Requester{Type: store.RequestedByRequest, ID: "req_1"}, store.Origin{})
		require.NoError(t, err)
	}
	require.NoError(t, b.w.Redact(b.ctx, b.sc, ids[0]))
	require.NoError(t, b.w.RedactBatch(b.ctx, b.sc, ids))
	require.NoError(t, b.w.RedactBatch(b.ctx, b.sc, ids))
	require.NoError(t, b.w.Redact(b.ctx, b.sc, ids[1]))
	b.requireRedacted(t, ids, true)
	events := b.redactedEvents(t)
	require.Len(t, events, 12)
	for _, id := range ids {
		require.Equal(t, 1, events[id])
	}
	require.Equal(t, 12.0, counterValue(t, b.w.Metrics.RedactionsCompleted))
}

func TestRetention_Sweep(t *testing.T) {
	t.Parallel()
	b := setupWorker(t, true)
	b.w.Retention = time.Hour
	old := b.create(t, 45, "")
	b.clock.Advance(90 * time.Minute)
	young := b.create(t, 5, "")

	n, err := b.w.RunRetention(b.ctx)
	require.NoError(t, err)
	require.Equal(t, 45, n)
	require.Eventually(t, func() bool { return len(b.redactedEvents(t)) == 45 }, 30*time.Second, 20*time.Millisecond)
	b.requireRedacted(t, old, true)
	b.requireRedacted(t, young, false)
	rec, err := b.st.RedactionRecord(b.ctx, b.sc, old[0])
	require.NoError(t, err)
	require.Equal(t, store.RequestedByRetention, rec.RequestedBy.Type)
	require.Regexp(t, `^ret_`, rec.RequestedBy.ID)

	n, err = b.w.RunRetention(b.ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a second sweep finds nothing new")
	require.Equal(t, 45.0, counterValue(t, b.w.Metrics.RedactionsRequested))

	b.w.Retention = 0
	b.clock.Advance(24 * time.Hour)
	n, err = b.w.RunRetention(b.ctx)
	require.NoError(t, err)
	require.Zero(t, n, "retention off")
}

func TestRetentionInterval(t *testing.T) {
	t.Parallel()
	require.Equal(t, time.Hour, worker.RetentionInterval(720*time.Hour))
	require.Equal(t, time.Minute, worker.RetentionInterval(10*time.Minute))
	require.Equal(t, time.Second, worker.RetentionInterval(2*time.Second))
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}

func TestBulkRedaction_ReconcilerStartsLostJob(t *testing.T) {
	t.Parallel()
	b := setupWorker(t, true)
	ids := b.create(t, 7, "lost")
	// The API stored the job but its enqueue failed.
	job, err := b.st.CreateBulkRedaction(b.ctx, b.sc, store.BulkFilter{ClientReferenceID: "lost"}, false)
	require.NoError(t, err)
	_, err = b.w.Reconcile(b.ctx)
	require.NoError(t, err)
	job = b.waitJob(t, job.ID, (*store.BulkRedaction).Done)
	require.Equal(t, store.BulkCompleted, job.Status)
	require.Equal(t, int64(7), job.Redacted)
	b.requireRedacted(t, ids, true)
	walking, err := b.st.WalkingBulkRedactions(b.ctx, b.sc)
	require.NoError(t, err)
	require.Empty(t, walking)
}
