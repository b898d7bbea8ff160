package worker_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
	"github.com/identityd/identityd/worker"
)

// BenchmarkBulkRedactionVsNoop measures, in the same run on the same Redis and with the same worker
// concurrency, (a) asynq's own throughput on no-op tasks — the ceiling of one task per session — and (b) bulk
// redaction throughput in sessions per second, from the job's creation until it is completed (every session
// scrubbed, redacted and its `.redacted` event written). Issue 6 asks for (b) ≥ 2 × (a). For comparison it
// also times (c) the single-session path (one redact task per session) on up to 10000 sessions.
//
//	TEST_REDIS_URL=redis://127.0.0.1:6379/7 go test -run '^$' -bench BulkRedactionVsNoop -benchtime 1x ./worker/
//
// BULK_BENCH_SESSIONS sets the number of sessions (default 10000).
func BenchmarkBulkRedactionVsNoop(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("BULK_BENCH_SESSIONS")); err == nil && v > 0 {
		n = v
	}
	const concurrency = 20
	for range b.N {
		r := storetest.New(b)
		noop, cpu0, go0, cpu1, go1 := measureNoop(b, r, n, concurrency)
		bulk, heap, cpu2, go2 := measureBulk(b, r, n, concurrency)
		cpu3, go3 := redisCPU(b, r), processCPU()
		single := measureSingle(b, r, min(n, 10000), concurrency) // its rate does not depend on the store's size
		b.ReportMetric(noop, "noop_tasks/s")
		b.ReportMetric(single, "single_sessions/s")
		b.ReportMetric(bulk, "bulk_sessions/s")
		b.ReportMetric(bulk/noop, "bulk/noop")
		b.ReportMetric(heap/(1<<20), "peak_heap_MiB")
		b.Logf("sessions=%d concurrency=%d GOMAXPROCS=%d real_redis=%v: no-op %.0f tasks/s, bulk %.0f sessions/s (ratio %.2f), "+
			"single-session redaction %.0f sessions/s, peak heap during bulk %.1f MiB",
			n, concurrency, runtime.GOMAXPROCS(0), storetest.Real(), noop, bulk, bulk/noop, single, heap/(1<<20))
		b.Logf("this process's CPU: %.0f µs per no-op task, %.0f µs per bulk session",
			(go1-go0)*1e6/float64(n), (go3-go2)*1e6/float64(n))
		if cpu0 >= 0 {
			b.Logf("redis CPU (whole server, includes other clients): %.0f µs per no-op task, %.0f µs per bulk session",
				(cpu1-cpu0)*1e6/float64(n), (cpu3-cpu2)*1e6/float64(n))
		}
	}
}

// measureNoop enqueues n no-op tasks, then times a server draining them (first to last task handled). It also
// returns Redis's and this process's CPU seconds before and after the drain.
func measureNoop(b *testing.B, r *storetest.Redis, n, concurrency int) (rate, redisBefore, goBefore, redisAfter, goAfter float64) {
	b.Helper()
	queues := worker.NewQueues(r.QueuePrefix + "-noop")
	b.Cleanup(func() { forgetQueues(r, queues) })
	client := asynq.NewClientFromRedisClient(r.Client)
	for range n {
		if _, err := client.Enqueue(asynq.NewTask("bench:noop", nil), asynq.Queue(queues.Redact)); err != nil {
			b.Fatal(err)
		}
	}
	var handled atomic.Int64
	var first, last atomic.Int64
	done := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:noop", func(context.Context, *asynq.Task) error {
		now := time.Now().UnixNano()
		first.CompareAndSwap(0, now)
		if handled.Add(1) == int64(n) {
			last.Store(now)
			close(done)
		}
		return nil
	})
	srv := worker.NewServer(r.Client, worker.ServerConfig{Concurrency: concurrency, Queues: queues})
	redisBefore, goBefore = redisCPU(b, r), processCPU()
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("no-op tasks not drained: %d of %d", handled.Load(), n)
	}
	redisAfter, goAfter = redisCPU(b, r), processCPU()
	return float64(n-1) / time.Duration(last.Load()-first.Load()).Seconds(), redisBefore, goBefore, redisAfter, goAfter
}

// measureBulk seeds n sessions (each with its `.created` event and the request log of its creation), then
// times a bulk redaction of all of them; it also samples the peak heap in use while the job runs.
func measureBulk(b *testing.B, r *storetest.Redis, n, concurrency int) (rate, peakHeap, redisBefore, goBefore float64) {
	b.Helper()
	ctx := context.Background()
	st := r.Store(nil)
	sc := store.Scope{Account: "acct_bench"}
	seed(b, st, sc, n)
	redisBefore, goBefore = redisCPU(b, r), processCPU()

	queues := worker.NewQueues(r.QueuePrefix)
	metrics := events.NewMetrics(nil)
	w := &worker.Worker{Store: st, Metrics: metrics, Emitter: &events.Emitter{Metrics: metrics},
		Client:    &worker.Client{Asynq: asynq.NewClientFromRedisClient(r.Client), Queues: queues},
		Inspector: asynq.NewInspectorFromRedisClient(r.Client)}
	srv := worker.NewServer(r.Client, worker.ServerConfig{Concurrency: concurrency, Queues: queues})
	if err := srv.Start(w.Mux()); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()

	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	start := time.Now()
	job, err := st.CreateBulkRedaction(ctx, sc, store.BulkFilter{ClientReferenceID: "bench"}, false)
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Client.EnqueueBulkRedaction(ctx, sc, job.ID); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		job, err = st.GetBulkRedaction(ctx, sc, job.ID)
		if err != nil {
			b.Fatal(err)
		}
		if job.Done() {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("bulk redaction not done: %+v", job)
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	if job.Status != store.BulkCompleted || job.Redacted != int64(n) {
		b.Fatalf("bulk redaction ended %s with %d of %d redacted", job.Status, job.Redacted, n)
	}
	return float64(n) / elapsed.Seconds(), float64(peak.Load()), redisBefore, goBefore
}

// processCPU returns this process's CPU seconds (user + sys).
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// redisCPU returns the Redis server's CPU seconds (user + sys), or -1 on miniredis.
func redisCPU(b *testing.B, r *storetest.Redis) float64 {
	b.Helper()
	if !storetest.Real() {
		return -1
	}
	info, err := r.Client.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	total := 0.0
	for line := range strings.SplitSeq(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return total
}

// measureSingle seeds n sessions in another account and times redacting them one task per session (the
// single redact path: RequestRedaction, then one session:redact task each), for comparison.
func measureSingle(b *testing.B, r *storetest.Redis, n, concurrency int) float64 {
	b.Helper()
	ctx := context.Background()
	st := r.Store(nil)
	sc := store.Scope{Account: "acct_single"}
	seed(b, st, sc, n)
	queues := worker.NewQueues(r.QueuePrefix + "-single")
	b.Cleanup(func() { forgetQueues(r, queues) })
	metrics := events.NewMetrics(nil)
	w := &worker.Worker{Store: st, Metrics: metrics, Emitter: &events.Emitter{Metrics: metrics},
		Client:    &worker.Client{Asynq: asynq.NewClientFromRedisClient(r.Client), Queues: queues},
		Inspector: asynq.NewInspectorFromRedisClient(r.Client)}
	srv := worker.NewServer(r.Client, worker.ServerConfig{Concurrency: concurrency, Queues: queues})
	if err := srv.Start(w.Mux()); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	start := time.Now()
	page := store.Page{Limit: 100}
	for {
		sessions, more, err := st.ListSessions(ctx, sc, store.SessionFilter{}, page)
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range sessions {
			if _, err := st.RequestRedaction(ctx, sc, s.ID, store.Requester{Type: store.RequestedByRequest, ID: "req_bench"}, store.Origin{}); err != nil {
				b.Fatal(err)
			}
			if err := w.Client.EnqueueRedact(ctx, sc, s.ID); err != nil {
				b.Fatal(err)
			}
		}
		if !more {
			break
		}
		page.StartingAfter = sessions[len(sessions)-1].ID
	}
	for {
		pending, err := st.PendingRedactions(ctx, sc, time.Now().Add(time.Hour).UnixMilli(), 1)
		if err != nil {
			b.Fatal(err)
		}
		if len(pending) == 0 {
			break
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatal("single-session redactions not done")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return float64(n) / time.Since(start).Seconds()
}

// seed creates n sessions with personal data and a request log each, from 8 goroutines.
func seed(b *testing.B, st *store.Store, sc store.Scope, n int) {
	b.Helper()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			ref, email := "bench", "jane.roe@example.com"
			for next.Add(1) <= int64(n) {
				sess, _, err := st.CreateSession(ctx, sc, store.SessionCreate{Type: "document", ClientReferenceID: &ref,
					Metadata: map[string]string{"name": "Jane Roe"}, ProvidedDetails: &store.ProvidedDetails{Email: &email}}, store.Origin{})
				if err == nil {
					err = st.SaveRequestLog(ctx, sc, &store.RequestLog{ID: store.NewID("req"), Created: sess.Created,
						Method: "POST", Path: "/v1/identity/verification_sessions", Status: 200,
						Params:   []store.Param{{Key: "provided_details[email]", Value: email}},
						Response: []byte(fmt.Sprintf(`{"id":%q,"object":"identity.verification_session","metadata":{"name":"Jane Roe"}}`, sess.ID)),
						Objects:  []string{sess.ID}})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// forgetQueues drops extra queues from asynq's registry (storetest cleans up the test's own queue names).
func forgetQueues(r *storetest.Redis, q worker.Queues) {
	r.Client.SRem(context.Background(), "asynq:queues", q.Redact, q.Verify, q.Default)
}
