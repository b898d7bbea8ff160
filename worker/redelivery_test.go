package worker_test

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
	"github.com/identityd/identityd/worker"
)

// redeliveryBundle is a worker with webhook delivery on the test's Redis, an asynq server running its tasks
// once started, and a receiver that counts what it got per event.
type redeliveryBundle struct {
	store    *store.Store
	worker   *worker.Worker
	scope    store.Scope
	endpoint *store.WebhookEndpoint
	clock    *storetest.FakeClock
	redis    *storetest.Redis
	queues   worker.Queues

	mu     sync.Mutex
	got    map[string]int
	status int
}

func setupRedelivery(t *testing.T, backoff ...time.Duration) *redeliveryBundle {
	t.Helper()
	r := storetest.New(t)
	b := &redeliveryBundle{clock: storetest.NewFakeClock(time.Now()), redis: r, queues: worker.NewQueues(r.QueuePrefix),
		scope: store.Scope{Account: "acct_redeliver"}, got: map[string]int{}, status: http.StatusOK}
	b.store = r.Store(b.clock)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		b.mu.Lock()
		b.got[req.Header.Get("webhook-id")]++
		status := b.status
		b.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(recv.Close)
	ac := asynq.NewClientFromRedisClient(r.Client)
	b.worker = &worker.Worker{Store: b.store, Client: &worker.Client{Asynq: ac, Queues: b.queues},
		Inspector: asynq.NewInspectorFromRedisClient(r.Client), Emitter: &events.Emitter{}, Metrics: events.NewMetrics(nil),
		Webhooks: &events.Webhooks{Store: b.store, Asynq: ac, Queue: b.queues.Default, Backoff: backoff, HTTP: events.NewHTTPClient(events.AddressPolicy{AllowPrivate: true})}}
	ep, err := b.store.CreateEndpoint(context.Background(), b.scope, store.EndpointCreate{URL: recv.URL,
		EnabledEvents: []string{store.EventSessionCreated, store.EventSessionCanceled}}, events.NewSecret())
	require.NoError(t, err)
	b.endpoint = ep
	return b
}

// startServer runs the worker's tasks until the test ends.
func (b *redeliveryBundle) startServer(t *testing.T, backoff ...time.Duration) {
	t.Helper()
	srv := worker.NewServer(b.redis.Client, worker.ServerConfig{Concurrency: 8, Queues: b.queues, WebhookBackoff: backoff})
	require.NoError(t, srv.Start(b.worker.Mux()))
	t.Cleanup(srv.Shutdown)
}

func (b *redeliveryBundle) setEndpoint(t *testing.T, status string) {
	t.Helper()
	_, err := b.store.UpdateEndpoint(context.Background(), b.scope, b.endpoint.ID, func(ep *store.WebhookEndpoint) error {
		ep.Status = status
		return nil
	})
	require.NoError(t, err)
}

// newEvents creates n sessions, each with its `.created` event, and returns the events' ids.
func (b *redeliveryBundle) newEvents(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		_, evs, err := b.store.CreateSession(context.Background(), b.scope, store.SessionCreate{Type: "document"}, store.Origin{})
		require.NoError(t, err)
		ids = append(ids, evs[0].ID)
	}
	return ids
}

func (b *redeliveryBundle) received() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	maps.Copy(out, b.got)
	return out
}

func (b *redeliveryBundle) job(t *testing.T, id string) *store.WebhookRedelivery {
	t.Helper()
	job, err := b.store.GetRedelivery(context.Background(), b.scope, id)
	require.NoError(t, err)
	return job
}

// TestWebhookRedelivery covers the job from its walk to its outcome: it selects exactly the events created since
// `since` that the endpoint subscribes to and did not acknowledge (delivered ones, older ones and other types
// are left out), a run that died after committing a page resumes without losing or doubling anything, each
// selected event is delivered once, and the job ends succeeded with exact counts.
func TestWebhookRedelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupRedelivery(t)
	b.newEvents(t, 3) // before since
	b.clock.Advance(time.Hour)
	since := b.clock.Now().Unix()
	b.setEndpoint(t, store.EndpointDisabled) // what it misses from here on it is never sent
	missed := b.newEvents(t, 12)
	// Two were acknowledged before the endpoint went down; two failed for good; one is still pending.
	for i, state := range []string{store.DeliveryDelivered, store.DeliveryDelivered, store.DeliveryFailed, store.DeliveryFailed} {
		_, err := b.store.CreateDeliveries(ctx, b.scope, missed[i], []string{b.endpoint.ID}, time.Hour)
		require.NoError(t, err)
		_, err = b.store.FinishDelivery(ctx, b.scope, missed[i], b.endpoint.ID, state)
		require.NoError(t, err)
	}
	_, err := b.store.CreateDeliveries(ctx, b.scope, missed[4], []string{b.endpoint.ID}, time.Hour)
	require.NoError(t, err)
	// A `.processing` event (a type the endpoint does not subscribe to) is left out too.
	sess, _, err := b.store.CreateSession(ctx, b.scope, store.SessionCreate{Type: "document"}, store.Origin{})
	require.NoError(t, err)
	_, _, err = b.store.Submit(ctx, b.scope, sess.ID, &store.Submission{Outcome: store.OutcomeVerified}, store.Origin{})
	require.NoError(t, err)
	want := append(append([]string{}, missed[2:]...), b.createdEvent(t, sess.ID))

	b.setEndpoint(t, store.EndpointEnabled)
	job, err := b.store.CreateRedelivery(ctx, b.scope, b.endpoint.ID, since)
	require.NoError(t, err)
	// A first run commits one page of four events and dies before enqueueing anything.
	done, err := b.store.RedeliveryStep(ctx, b.scope, job.ID, store.RedeliveryWalk{PageSize: 4, TTL: time.Hour,
		Match: func(typ string) bool { return events.Matches(b.endpoint.EnabledEvents, typ) }})
	require.NoError(t, err)
	require.False(t, done)
	require.Equal(t, int64(2), b.job(t, job.ID).Total, "the page's two unacknowledged events")
	require.Equal(t, int64(0), b.job(t, job.ID).Enqueued)

	require.NoError(t, b.worker.RunWebhookRedelivery(ctx, b.scope, job.ID), "the next run resumes")
	require.NoError(t, b.worker.RunWebhookRedelivery(ctx, b.scope, job.ID), "a duplicate run changes nothing")
	got := b.job(t, job.ID)
	require.Equal(t, int64(len(want)), got.Total)
	require.Equal(t, int64(len(want)), got.Enqueued)
	require.Equal(t, store.RedeliveryRunning, got.Status)
	walking, err := b.store.WalkingRedeliveries(ctx, b.scope)
	require.NoError(t, err)
	require.Empty(t, walking)

	b.startServer(t)
	deadline := time.Now().Add(60 * time.Second)
	for !b.job(t, job.ID).Done() {
		require.False(t, time.Now().After(deadline), "job not done: %+v", b.job(t, job.ID))
		time.Sleep(20 * time.Millisecond)
	}
	got = b.job(t, job.ID)
	require.Equal(t, store.RedeliverySucceeded, got.Status)
	require.Equal(t, int64(len(want)), got.Delivered)
	require.Zero(t, got.Failed)
	require.NotNil(t, got.CompletedAt)
	rec := b.received()
	require.Len(t, rec, len(want))
	for _, id := range want {
		require.Equal(t, 1, rec[id], "%s delivered once", id)
	}
	for _, id := range want {
		ev, err := b.store.GetEvent(ctx, b.scope, id)
		require.NoError(t, err)
		require.Zero(t, ev.PendingWebhooks, id)
	}
}

// createdEvent returns the id of the session's `.created` event.
func (b *redeliveryBundle) createdEvent(t *testing.T, sessionID string) string {
	t.Helper()
	ids, err := b.store.SessionEventIDs(context.Background(), b.scope, sessionID)
	require.NoError(t, err)
	for _, id := range ids {
		ev, err := b.store.GetEvent(context.Background(), b.scope, id)
		require.NoError(t, err)
		if ev.Type == store.EventSessionCreated {
			return id
		}
	}
	t.Fatalf("no .created event for %s", sessionID)
	return ""
}

// TestWebhookRedelivery_FailuresEndTheJobFailed: a receiver that keeps failing makes every redelivered
// delivery fail for good; the job counts them and ends failed. A job on a deleted endpoint fails at once.
func TestWebhookRedelivery_FailuresEndTheJobFailed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	backoff := []time.Duration{time.Millisecond}
	b := setupRedelivery(t, backoff...)
	b.status = http.StatusInternalServerError
	since := b.clock.Now().Unix()
	b.newEvents(t, 3)
	job, err := b.store.CreateRedelivery(ctx, b.scope, b.endpoint.ID, since)
	require.NoError(t, err)
	require.NoError(t, b.worker.RunWebhookRedelivery(ctx, b.scope, job.ID))
	b.startServer(t, backoff...)
	deadline := time.Now().Add(60 * time.Second)
	for !b.job(t, job.ID).Done() {
		require.False(t, time.Now().After(deadline), "job not done: %+v", b.job(t, job.ID))
		time.Sleep(20 * time.Millisecond)
	}
	got := b.job(t, job.ID)
	require.Equal(t, store.RedeliveryFailed, got.Status)
	require.Equal(t, int64(3), got.Total)
	require.Equal(t, int64(3), got.Failed)

	require.NoError(t, b.store.DeleteEndpoint(ctx, b.scope, b.endpoint.ID))
	gone, err := b.store.CreateRedelivery(ctx, b.scope, b.endpoint.ID, since)
	require.NoError(t, err)
	require.NoError(t, b.worker.RunWebhookRedelivery(ctx, b.scope, gone.ID))
	require.Equal(t, store.RedeliveryFailed, b.job(t, gone.ID).Status)
	require.Zero(t, b.job(t, gone.ID).Total)
}
