package worker_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
	"github.com/identityd/identityd/worker"
)

// BenchmarkWebhookRedelivery measures the redelivery of everything an endpoint missed: N events were stored
// while it could not take them, it is re-enabled, and one redelivery job sends them all to a local receiver
// that answers 200. The clock runs from the job's creation until the job has succeeded (every event delivered
// and acknowledged), in the daemon's own layout: the walk runs in the main pool (the default 20 workers), the
// deliveries in the webhook pool (the default 16 workers) under the default per-endpoint and per-account limits
// of 8 attempts in flight, so the figure includes the deferrals those limits cause.
//
// REDELIVERY_BENCH_ENDPOINT_SLOTS sets the per-endpoint and per-account limits (default: the daemon's).
//
//	TEST_REDIS_URL=redis://127.0.0.1:6379/3 go test -run '^$' -bench WebhookRedelivery -benchtime 1x ./worker/
//
// REDELIVERY_BENCH_EVENTS sets N (default 10000).
func BenchmarkWebhookRedelivery(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("REDELIVERY_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	const concurrency, webhookConcurrency = 20, 16
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		r := storetest.New(b)
		st := r.Store(nil)
		queues := worker.NewQueues(r.QueuePrefix)
		ac := asynq.NewClientFromRedisClient(r.Client)
		var got atomic.Int64
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			got.Add(1)
			w.WriteHeader(http.StatusOK)
		}))
		w := &worker.Worker{Store: st, Client: &worker.Client{Asynq: ac, Queues: queues},
			Inspector: asynq.NewInspectorFromRedisClient(r.Client), Emitter: &events.Emitter{}, Metrics: events.NewMetrics(nil),
			Webhooks: &events.Webhooks{Store: st, Asynq: ac, Queue: queues.Webhook, Limits: benchLimits(), HTTP: events.NewHTTPClient(events.AddressPolicy{AllowPrivate: true})}}
		sc := store.Scope{Account: "acct_redeliverbench"}
		since := time.Now().Add(-time.Minute).Unix()
		seedEvents(b, st, sc, n)
		ep, err := st.CreateEndpoint(ctx, sc, store.EndpointCreate{URL: recv.URL, EnabledEvents: []string{"*"}}, events.NewSecret())
		if err != nil {
			b.Fatal(err)
		}
		cfg := worker.ServerConfig{Concurrency: concurrency, WebhookConcurrency: webhookConcurrency, Queues: queues}
		srv, hooks := worker.NewServer(r.Client, cfg), worker.NewWebhookServer(r.Client, cfg)
		if err := srv.Start(w.Mux()); err != nil {
			b.Fatal(err)
		}
		if err := hooks.Start(w.Mux()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		start := time.Now()
		job, err := st.CreateRedelivery(ctx, sc, ep.ID, since)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Client.EnqueueWebhookRedelivery(ctx, sc, job.ID); err != nil {
			b.Fatal(err)
		}
		for {
			job, err = st.GetRedelivery(ctx, sc, job.ID)
			if err != nil {
				b.Fatal(err)
			}
			if job.Done() {
				break
			}
			if time.Since(start) > 10*time.Minute {
				b.Fatalf("redelivery not done after 10 minutes: %+v", job)
			}
			time.Sleep(10 * time.Millisecond)
		}
		elapsed := time.Since(start)

		b.StopTimer()
		srv.Shutdown()
		hooks.Shutdown()
		recv.Close()
		if job.Status != store.RedeliverySucceeded || job.Delivered != int64(n) || got.Load() != int64(n) {
			b.Fatalf("want %d events delivered once each, got job %+v and %d requests", n, job, got.Load())
		}
		rate := float64(n) / elapsed.Seconds()
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(elapsed.Seconds(), "s/redelivery")
		b.Logf("events=%d concurrency=%d GOMAXPROCS=%d real_redis=%v: redelivered in %.2fs, %.0f events/s",
			n, concurrency, runtime.GOMAXPROCS(0), storetest.Real(), elapsed.Seconds(), rate)
		b.StartTimer()
	}
}

// seedEvents stores n `.created` events of sc, eight writers at a time, and fans them out to no endpoint.
func seedEvents(b *testing.B, st *store.Store, sc store.Scope, n int) {
	b.Helper()
	var next atomic.Int64
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for next.Add(1) <= int64(n) {
				_, evs, err := st.CreateSession(context.Background(), sc, store.SessionCreate{Type: "document"}, store.Origin{})
				if err == nil { // fanned out when stored, to no endpoint
					err = st.ClearOutbox(context.Background(), sc, evs[0].ID)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

// benchLimits reads REDELIVERY_BENCH_ENDPOINT_SLOTS; unset, the zero Limits take the daemon's defaults.
func benchLimits() events.Limits {
	n, _ := strconv.Atoi(os.Getenv("REDELIVERY_BENCH_ENDPOINT_SLOTS"))
	return events.Limits{EndpointConcurrency: n, AccountConcurrency: n}
}
