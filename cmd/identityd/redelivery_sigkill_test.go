package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
	"github.com/identityd/identityd/worker"
)

// TestWebhookRedelivery_SurvivesWorkerSIGKILL kills the worker process while a redelivery job runs. A new
// worker picks the job's task up once asynq finds its lease expired (about a minute), resumes after the last
// committed page, and the job ends succeeded with exact counts: every missed event selected once and delivered.
func TestWebhookRedelivery_SurvivesWorkerSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("waits about a minute for asynq to recover the killed worker's task")
	}
	t.Parallel()
	bin := buildBinary(t)
	r := storetest.New(t)
	st := r.Store(nil)
	sc := store.Scope{Account: "acct_alpha"}
	ctx := context.Background()
	const n = 5000
	since := time.Now().Add(-time.Minute).Unix()
	var mu sync.Mutex
	got := map[string]int{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		got[req.Header.Get("webhook-id")]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(recv.Close)
	for range n { // stored before the endpoint existed: all of them missed
		_, evs, err := st.CreateSession(ctx, sc, store.SessionCreate{Type: "document"}, store.Origin{})
		require.NoError(t, err)
		// Fanned out when they were stored, to no endpoint: the reconciler must not send them now.
		require.NoError(t, st.ClearOutbox(ctx, sc, evs[0].ID))
	}
	ep, err := st.CreateEndpoint(ctx, sc, store.EndpointCreate{URL: recv.URL, EnabledEvents: []string{store.EventSessionCreated}}, events.NewSecret())
	require.NoError(t, err)
	job, err := st.CreateRedelivery(ctx, sc, ep.ID, since)
	require.NoError(t, err)
	client := &worker.Client{Asynq: asynq.NewClientFromRedisClient(r.Client), Queues: worker.NewQueues(r.QueuePrefix)}
	require.NoError(t, client.EnqueueWebhookRedelivery(ctx, sc, job.ID))

	first := startWorker(t, bin, r)
	eventually(t, 60*time.Second, "the walk to start", func() bool {
		job, err = st.GetRedelivery(ctx, sc, job.ID)
		require.NoError(t, err)
		return job.Total > 0
	})
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait()
	mid, err := st.GetRedelivery(ctx, sc, job.ID)
	require.NoError(t, err)
	t.Logf("worker SIGKILLed with %d events selected, %d enqueued, %d delivered", mid.Total, mid.Enqueued, mid.Delivered)
	require.Less(t, mid.Delivered, int64(n), "the kill must land mid-job; raise n if redelivery got faster")

	startWorker(t, bin, r)
	eventually(t, 180*time.Second, "the job to finish", func() bool {
		job, err = st.GetRedelivery(ctx, sc, job.ID)
		require.NoError(t, err)
		return job.Done()
	})
	require.Equal(t, store.RedeliverySucceeded, job.Status, "%+v", job)
	require.Equal(t, int64(n), job.Total, "every missed event selected once")
	require.Equal(t, int64(n), job.Enqueued)
	require.Equal(t, int64(n), job.Delivered)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, n, "every event reached the receiver")
	again := 0
	for _, c := range got {
		again += c - 1
	}
	// A delivery in flight when the worker died is sent again (at least once); nothing else is.
	require.LessOrEqual(t, again, 4, "resent events (the killed worker had at most 4 attempts of the account in flight)")
}
