package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/worker"
)

// Handlers that run while a shared batch is busy wait for the next one: 30 concurrent tasks end in a few
// batches, every session redacted with its single event, and every handler answered.
func TestHandleRedact_ConcurrentTasksShareBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const n = 30
	tasks := make([]*asynq.Task, n)
	ids := make([]string, n)
	for i := range tasks {
		ids[i] = b.verifiedAndRedactionRequested(t).ID
		tasks[i] = b.redactTask(t, ids[i])
	}
	// One batch at a time, and the first waits until every other handler is waiting: those must share the next.
	worker.SetDrainLimit(b.worker, 1)
	var mu sync.Mutex
	var batches [][]string
	worker.SetBeforeBatch(b.worker, func(batch []string) {
		mu.Lock()
		batches = append(batches, batch)
		first := len(batches) == 1
		mu.Unlock()
		if first {
			require.Eventually(t, func() bool { return worker.WaitingRedactions(b.worker, b.scope) == n-len(batch) },
				10*time.Second, time.Millisecond, "the other handlers wait for a batch")
		}
	})
	errs := make(chan error, n)
	for _, task := range tasks {
		go func() { errs <- b.worker.HandleRedact(ctx, task) }()
	}
	for range tasks {
		require.NoError(t, <-errs)
	}
	for _, id := range ids {
		requireRedacted(t, b, id)
	}
	require.Equal(t, float64(n), testutil.ToFloat64(b.metrics.RedactionsCompleted))
	mu.Lock()
	defer mu.Unlock()
	seen := 0
	for _, batch := range batches {
		seen += len(batch)
	}
	require.Equal(t, n, seen, "each task's session is in exactly one batch")
	require.LessOrEqual(t, len(batches), 2, "the first batch, then all the ones that waited for it together")
	require.Equal(t, 0, worker.WaitingRedactions(b.worker, b.scope))
}

// One batch can mix sessions the single path would treat differently: each handler gets its own session's
// answer, and a session named twice is scrubbed once.
func TestHandleRedact_SharedBatchAnswersEachTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	requested := b.verifiedAndRedactionRequested(t)
	notRequested := b.createSession(t)
	blocker := b.verifiedAndRedactionRequested(t) // its batch runs first and holds the others back
	worker.SetDrainLimit(b.worker, 1)
	hold := make(chan struct{})
	var batches [][]string
	var mu sync.Mutex
	worker.SetBeforeBatch(b.worker, func(batch []string) {
		mu.Lock()
		batches = append(batches, batch)
		mu.Unlock()
		<-hold
	})
	results := map[string]chan error{}
	for _, name := range []string{"blocker", "requested", "again", "notRequested", "missing"} {
		results[name] = make(chan error, 1)
	}
	run := func(name, id string) {
		task := b.redactTask(t, id) // built here: require may stop only the test's own goroutine
		go func() { results[name] <- b.worker.HandleRedact(ctx, task) }()
	}
	run("blocker", blocker.ID)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(batches) == 1 }, 5*time.Second, time.Millisecond)
	run("requested", requested.ID)
	run("again", requested.ID)
	run("notRequested", notRequested.ID)
	run("missing", "vs_missing")
	require.Eventually(t, func() bool { return worker.WaitingRedactions(b.worker, b.scope) == 4 }, 5*time.Second, time.Millisecond)
	close(hold)

	require.NoError(t, <-results["blocker"])
	require.NoError(t, <-results["requested"])
	require.NoError(t, <-results["again"])
	require.ErrorIs(t, <-results["notRequested"], asynq.SkipRetry)
	require.ErrorIs(t, <-results["missing"], asynq.SkipRetry)
	requireRedacted(t, b, blocker.ID)
	requireRedacted(t, b, requested.ID)
	require.Contains(t, b.sessionJSON(t, notRequested.ID), "Ada Lovelace", "a session without a redaction request is left alone")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, batches, 2)
	require.ElementsMatch(t, []string{requested.ID, requested.ID, notRequested.ID, "vs_missing"}, batches[1])
}

// A handler whose context ends while it waits returns at once; its session is still scrubbed by the batch,
// so asynq's retry finds it done.
func TestHandleRedact_CanceledWaitLeavesTheBatchToFinish(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sess := b.verifiedAndRedactionRequested(t)
	hold := make(chan struct{})
	worker.SetBeforeBatch(b.worker, func([]string) { <-hold })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	task := b.redactTask(t, sess.ID)
	go func() { done <- b.worker.HandleRedact(ctx, task) }()
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	close(hold)
	require.Eventually(t, func() bool {
		got, err := b.store.GetSession(context.Background(), b.scope, sess.ID)
		return err == nil && got.Redaction.Status == store.RedactionRedacted
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, b.worker.HandleRedact(context.Background(), b.redactTask(t, sess.ID)), "the retry finds it redacted")
	requireRedacted(t, b, sess.ID)
}

// requireRedacted checks one session of a bundle where several may have been redacted: scrubbed, flagged, one
// `.redacted` event, its audit record completed with its three events counted. It returns the record.
func requireRedacted(t *testing.T, b *testBundle, id string) *store.RedactionRecord {
	t.Helper()
	ctx := context.Background()
	got, err := b.store.GetSession(ctx, b.scope, id)
	require.NoError(t, err)
	require.Equal(t, store.RedactionRedacted, got.Redaction.Status)
	require.Empty(t, got.Metadata)
	require.Equal(t, store.Redacted, *got.ProvidedDetails.Email)
	require.Equal(t, store.Redacted, *got.VerifiedOutputs.FirstName)
	require.Equal(t, 1, b.eventTypes(t, id)[store.EventSessionRedacted])
	rec, err := b.store.RedactionRecord(ctx, b.scope, id)
	require.NoError(t, err)
	require.NotNil(t, rec.CompletedAt)
	require.Equal(t, 3, rec.Scrubbed.Events, "created, processing, verified")
	return rec
}
