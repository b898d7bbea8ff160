package worker_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
	"github.com/identityd/identityd/worker"
)

// TestWebhookPool_DeferralsUseNoRetry: a delivery whose endpoint has no free slot is deferred more often than
// its task may be retried, and is still delivered, as its first attempt, once the slot is free.
func TestWebhookPool_DeferralsUseNoRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := storetest.New(t)
	st := r.Store(nil)
	queues := worker.NewQueues(r.QueuePrefix)
	metrics := events.NewMetrics(nil)
	var received atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { received.Add(1) }))
	t.Cleanup(rcv.Close)
	backoff := []time.Duration{time.Second} // two attempts: the task may run 1 + 1 + SpareRetries times
	wh := &events.Webhooks{Store: st, Asynq: asynq.NewClientFromRedisClient(r.Client), Queue: queues.Webhook,
		Backoff: backoff, Metrics: metrics, Limits: events.Limits{EndpointConcurrency: 1},
		HTTP: events.NewHTTPClient(events.AddressPolicy{AllowPrivate: true})} // the receiver listens on loopback
	w := &worker.Worker{Store: st, Metrics: metrics, Webhooks: wh}
	srv := worker.NewWebhookServer(r.Client, worker.ServerConfig{WebhookConcurrency: 2, Queues: queues,
		ShutdownTimeout: 5 * time.Second, WebhookBackoff: backoff})
	require.NoError(t, srv.Start(w.Mux()))
	t.Cleanup(srv.Shutdown)

	sc := store.Scope{Account: "acct_pool"}
	ep, err := st.CreateEndpoint(ctx, sc, store.EndpointCreate{URL: rcv.URL, EnabledEvents: []string{"*"}}, events.NewSecret())
	require.NoError(t, err)
	held, err := st.AdmitDelivery(ctx, sc, ep.ID, store.DeliveryLimits{EndpointSlots: 1, AccountSlots: 100, Lease: time.Hour})
	require.NoError(t, err)
	require.Equal(t, store.Admitted, held.Code)
	_, evs, err := st.CreateSession(ctx, sc, store.SessionCreate{Type: "document"}, store.Origin{})
	require.NoError(t, err)
	require.NoError(t, wh.Fanout(ctx, sc, evs))

	busy := metrics.WebhookDeferrals.WithLabelValues(store.EndpointBusy.String())
	require.Eventually(t, func() bool { return testutil.ToFloat64(busy) >= 4 }, time.Minute, 50*time.Millisecond,
		"deferred more often than the task may be retried")
	require.Zero(t, received.Load(), "a busy endpoint is not dialled")

	_, err = st.ReleaseDelivery(ctx, sc, ep.ID, held, store.Answered, store.DeliveryLimits{})
	require.NoError(t, err)
	var as []*store.WebhookAttempt
	require.Eventually(t, func() bool { // the attempt is recorded once the receiver's answer is in
		as, _, err = st.ListAttempts(ctx, sc, ep.ID, "", store.Page{Limit: 10})
		require.NoError(t, err)
		return len(as) > 0
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, int32(1), received.Load())
	require.Len(t, as, 1)
	require.Equal(t, 1, as[0].Attempt, "deferrals are not attempts")
	require.Equal(t, store.AttemptDelivered, as[0].Outcome)
}
