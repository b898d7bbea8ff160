package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/worker"
)

// Client references that split the seeded sessions into the ones each measurement consumes.
const (
	benchRefSingle = "bench-single"
	benchRefBulk   = "bench-bulk"
	benchRefRest   = "bench-rest"
)

func benchRef(i, redactions int) string {
	switch {
	case i < redactions:
		return benchRefSingle
	case i < 2*redactions:
		return benchRefBulk
	}
	return benchRefRest
}

// seedSessions writes sessions [from, to) through the API handler and the store's verification, as a client
// and the worker would: created, submitted, verified (a report), read once — three events and three request
// logs each.
func seedSessions(ctx context.Context, env *benchEnv, from, to, redactions int) error {
	return ParallelRange(from, to, 32, func(i int) error { return seedOne(ctx, env, i, benchRef(i, redactions)) })
}

// ParallelRange calls fn for every i in [from, to) on at most workers goroutines and returns the first error;
// once one call failed, the calls not started yet are skipped.
func ParallelRange(from, to, workers int, fn func(i int) error) error {
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(workers)
	for i := from; i < to && ctx.Err() == nil; i++ {
		g.Go(func() error {
			if ctx.Err() == nil {
				return fn(i)
			}
			return nil // another call failed: this one is skipped, and Wait returns that call's error
		})
	}
	return g.Wait()
}

func seedOne(ctx context.Context, env *benchEnv, i int, ref string) error {
	form := url.Values{"type": {"document"}, "client_reference_id": {ref}, "metadata[order]": {strconv.Itoa(i)},
		"provided_details[email]": {fmt.Sprintf("person%d@example.com", i)}, "provided_details[phone]": {fmt.Sprintf("+1555%07d", i)}}
	var sess struct {
		ID string `json:"id"`
	}
	if err := env.seedCall(http.MethodPost, "/v1/identity/verification_sessions", form, &sess); err != nil {
		return fmt.Errorf("seed create: %w", err)
	}
	submit := url.Values{"verified_outputs[first_name]": {"Jenny"}, "verified_outputs[last_name]": {fmt.Sprintf("Rosen%d", i)},
		"verified_outputs[email]": {fmt.Sprintf("person%d@example.com", i)}, "verified_outputs[dob][day]": {strconv.Itoa(1 + i%28)},
		"verified_outputs[dob][month]": {strconv.Itoa(1 + i%12)}, "verified_outputs[dob][year]": {strconv.Itoa(1980 + i%30)},
		"document[number]": {fmt.Sprintf("D%08d", i)}, "document[files][]": {"file_" + store.RandomString(12)}}
	if err := env.seedCall(http.MethodPost, "/v1/test_helpers/identity/verification_sessions/"+sess.ID+"/submit", submit, nil); err != nil {
		return fmt.Errorf("seed submit: %w", err)
	}
	if _, _, _, err := env.st.CompleteVerification(ctx, env.scope, sess.ID, ""); err != nil {
		return fmt.Errorf("seed verify: %w", err)
	}
	if err := env.seedCall(http.MethodGet, "/v1/identity/verification_sessions/"+sess.ID, nil, nil); err != nil {
		return fmt.Errorf("seed read: %w", err)
	}
	return nil
}

// seedCall sends one request to the seeding API handler in process (no listener: seeding is not measured)
// and decodes its answer into out when out is not nil.
func (env *benchEnv) seedCall(method, path string, form url.Values, out any) error {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequestWithContext(context.Background(), method, path, body)
	req.Header.Set("Authorization", "Bearer "+env.key)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	rec := httptest.NewRecorder()
	env.seeder.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, path, rec.Code, rec.Body.String())
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(rec.Body.Bytes(), out)
}

// listResult is one list measurement.
type listResult struct {
	rps      float64
	p50, p99 time.Duration
}

// listLoad runs `clients` concurrent loops of GET /v1/identity/verification_sessions?limit=10&status=verified.
func (env *benchEnv) listLoad(ctx context.Context, clients int, d time.Duration) (listResult, error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer hc.CloseIdleConnections()
	u := env.apiURL + "/v1/identity/verification_sessions?limit=10&status=verified"
	deadline := time.Now().Add(d)
	lat := make([][]time.Duration, clients)
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if !env.call(ctx, hc, http.MethodGet, u) {
					failed.Add(1)
					continue
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if failed.Load() > 0 || len(all) == 0 {
		return listResult{}, fmt.Errorf("list benchmark: %d requests failed, %d succeeded", failed.Load(), len(all))
	}
	slices.Sort(all)
	return listResult{rps: float64(len(all)) / elapsed.Seconds(), p50: all[len(all)/2], p99: all[len(all)*99/100]}, nil
}

// noopThroughput measures asynq's own ceiling on this Redis: tasks/s of a server running no-op handlers.
func (env *benchEnv) noopThroughput(ctx context.Context, tasks, concurrency int) (float64, error) {
	queue := env.queues.Default[:len(env.queues.Default)-len("-default")] + "-bench"
	client := asynq.NewClientFromRedisClient(env.rdb)
	for range tasks {
		if _, err := client.EnqueueContext(ctx, asynq.NewTask("bench:noop", nil), asynq.Queue(queue), asynq.MaxRetry(0)); err != nil {
			return 0, fmt.Errorf("enqueue no-op: %w", err)
		}
	}
	var done atomic.Int64
	finished := make(chan struct{})
	srv := asynq.NewServerFromRedisClient(env.rdb, asynq.Config{Concurrency: concurrency, Queues: map[string]int{queue: 1},
		Logger: worker.AsynqLogger(slog.New(slog.DiscardHandler)), LogLevel: asynq.ErrorLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:noop", func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(tasks) {
			close(finished)
		}
		return nil
	})
	start := time.Now()
	if err := srv.Start(mux); err != nil {
		return 0, err
	}
	defer srv.Shutdown()
	select {
	case <-finished:
	case <-time.After(10 * time.Minute):
		return 0, errors.New("no-op baseline did not finish")
	}
	return float64(tasks) / time.Since(start).Seconds(), nil
}

// sessionIDs lists every session with the given client_reference_id.
func (env *benchEnv) sessionIDs(ctx context.Context, ref string) ([]string, error) {
	var ids []string
	page := store.Page{Limit: 100}
	for {
		batch, more, err := env.st.ListSessions(ctx, env.scope, store.SessionFilter{ClientReferenceID: ref}, page)
		if err != nil {
			return nil, err
		}
		for _, s := range batch {
			ids = append(ids, s.ID)
		}
		if !more || len(batch) == 0 {
			return ids, nil
		}
		page.StartingAfter = batch[len(batch)-1].ID
	}
}

// startWorker runs the real worker pool on the bench's queues.
func (env *benchEnv) startWorker(concurrency int) (stop func(), err error) {
	client := &worker.Client{Asynq: asynq.NewClientFromRedisClient(env.rdb), Queues: env.queues}
	w := &worker.Worker{Store: env.st, Client: client, Inspector: asynq.NewInspectorFromRedisClient(env.rdb),
		Emitter: nil, Metrics: env.metrics}
	w.Emitter = eventsEmitter(env)
	srv := worker.NewServer(env.rdb, worker.ServerConfig{Concurrency: concurrency, Queues: env.queues})
	if err := srv.Start(w.Mux()); err != nil {
		return nil, err
	}
	return srv.Shutdown, nil
}

// singleRedactions redacts the bench-single sessions with one API call each and returns sessions/s from the
// first request to the last `.redacted` event, and the rate at which the redact calls were answered.
func (env *benchEnv) singleRedactions(ctx context.Context, n, concurrency int) (perSec, answeredPerSec float64, err error) {
	ids, err := env.sessionIDs(ctx, benchRefSingle)
	if err != nil {
		return 0, 0, err
	}
	if len(ids) < n {
		return 0, 0, fmt.Errorf("only %d sessions to redact", len(ids))
	}
	stop, err := env.startWorker(concurrency)
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	base := env.redacts.Load()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchRedactClients}}
	defer hc.CloseIdleConnections()
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range benchRedactClients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if !env.call(ctx, hc, http.MethodPost, env.apiURL+"/v1/identity/verification_sessions/"+url.PathEscape(ids[i])+"/redact") {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	answeredPerSec = float64(n) / time.Since(start).Seconds()
	if failed.Load() > 0 {
		return 0, 0, fmt.Errorf("%d redact calls failed", failed.Load())
	}
	deadline := time.Now().Add(10 * time.Minute)
	for env.redacts.Load()-base < int64(n) {
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("only %d of %d redactions finished", env.redacts.Load()-base, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return float64(n) / time.Since(start).Seconds(), answeredPerSec, nil
}

// bulkRedaction redacts the bench-bulk sessions with one bulk job and returns sessions/s from the job's
// creation until it is completed (every requested session scrubbed).
func (env *benchEnv) bulkRedaction(ctx context.Context, n, concurrency int) (float64, error) {
	stop, err := env.startWorker(concurrency)
	if err != nil {
		return 0, err
	}
	defer stop()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, env.apiURL+"/v1/identity/bulk_redactions",
		strings.NewReader("client_reference_id="+benchRefBulk))
	req.Header.Set("Authorization", "Bearer "+env.key)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	var job struct {
		ID string `json:"id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&job)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("start bulk redaction: status %d: %w", resp.StatusCode, err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		b, err := env.st.GetBulkRedaction(ctx, env.scope, job.ID)
		if err != nil {
			return 0, err
		}
		if b.Done() {
			if b.Status != store.BulkCompleted || b.Redacted != int64(n) {
				return 0, fmt.Errorf("bulk job ended %s with %d of %d redacted", b.Status, b.Redacted, n)
			}
			return float64(n) / time.Since(start).Seconds(), nil
		}
		if time.Now().After(deadline) {
			return 0, errors.New("bulk job not done after 10 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// call sends one authenticated request with no body and reports whether it answered 200 (the body is drained
// so the connection is reused).
func (env *benchEnv) call(ctx context.Context, hc *http.Client, method, u string) bool {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+env.key)
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// benchRedactClients is how many clients send the redact calls of (b) at once.
const benchRedactClients = 16
