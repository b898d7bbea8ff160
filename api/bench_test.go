package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/identityd/identityd/api"
	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// createBody is what stripe-go v85 sends for a VerificationSessionCreateParams with a client reference,
// metadata, document options, provided details and one expansion: bracket keys unescaped, values
// url.QueryEscape'd, slices indexed.
const createBody = "client_reference_id=user_42" +
	"&expand[0]=last_verification_report" +
	"&metadata[customer_name]=Jenny+Rosen&metadata[order_id]=6735&metadata[plan]=premium+annual" +
	"&options[document][allowed_types][0]=driving_license&options[document][allowed_types][1]=passport" +
	"&options[document][allowed_types][2]=id_card&options[document][require_id_number]=true" +
	"&options[document][require_live_capture]=true&options[document][require_matching_selfie]=true" +
	"&provided_details[email]=jenny.rosen%40example.com&provided_details[phone]=%2B15555550123" +
	"&return_url=https%3A%2F%2Fexample.com%2Fdone%3Forder%3D6735&type=document"

// BenchmarkParseForm decodes a realistic create body. "Parse" is the decoder alone; "ParseAndRead" adds what
// the create handler does with it: every parameter read through the typed Form methods, then the
// unknown-parameter check.
//
//	go test -run '^$' -bench ParseForm -benchmem ./api/
func BenchmarkParseForm(b *testing.B) {
	b.Run("Parse", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(createBody)))
		for b.Loop() {
			f, err := api.ParseForm(createBody)
			if err != nil {
				b.Fatal(err)
			}
			if len(f.Params()) != 15 {
				b.Fatalf("decoded %d parameters, want 15", len(f.Params()))
			}
		}
	})
	b.Run("ParseAndRead", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(createBody)))
		for b.Loop() {
			f, err := api.ParseForm(createBody)
			if err != nil {
				b.Fatal(err)
			}
			if err := readCreate(f); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// readCreate reads a create body the way the session create handler does and fails on anything left unread.
func readCreate(f *api.Form) error {
	if _, err := f.Enum("type", "document", "id_number"); err != nil {
		return err
	}
	if _, err := f.String("client_reference_id"); err != nil {
		return err
	}
	if m, _, err := f.Metadata(); err != nil {
		return err
	} else if len(m) != 3 {
		return fmt.Errorf("metadata has %d keys, want 3", len(m))
	}
	if types, _, err := f.Values("options[document][allowed_types]"); err != nil {
		return err
	} else if len(types) != 3 {
		return fmt.Errorf("allowed_types has %d values, want 3", len(types))
	}
	for _, k := range []string{"require_id_number", "require_live_capture", "require_matching_selfie"} {
		if _, err := f.Bool("options[document][" + k + "]"); err != nil {
			return err
		}
	}
	for _, k := range []string{"provided_details[email]", "provided_details[phone]", "return_url"} {
		if _, err := f.String(k); err != nil {
			return err
		}
	}
	if _, _, err := f.Values("expand"); err != nil {
		return err
	}
	if u := f.Unknown(); u != "" {
		return fmt.Errorf("unread parameter %s", u)
	}
	return nil
}

// listPath is the list call of issue 8's target: one page of ten, filtered by status.
const listPath = "/v1/identity/verification_sessions?limit=10&status=requires_input"

// BenchmarkServer_ListSessions times `GET /v1/identity/verification_sessions?limit=10&status=requires_input`
// through the whole HTTP edge (auth, form, store list, render, request log) of an httptest server over 2,000
// sessions, a quarter of them canceled. "Serial" is one client; "Parallel" is 32 clients, like `wrk -c32`.
// Allocations count the client side too (the server runs in this process).
//
//	TEST_REDIS_URL=redis://127.0.0.1:6379/12 go test -run '^$' -bench Server_ListSessions -benchmem ./api/
func BenchmarkServer_ListSessions(b *testing.B) {
	const sessions = 2000
	bench := newBenchServer(b)
	start := time.Now()
	seedSessions(b, bench.st, store.Scope{Account: "acct_alpha"}, sessions)
	ix := bench.redis.KeyPrefix + ":{acct_alpha}:test:ix:vs:status:" + store.StatusRequiresInput
	if n, err := bench.redis.Client.ZCard(context.Background(), ix).Result(); err != nil || n != sessions*3/4 {
		b.Fatalf("seeded %d requires_input sessions (%v), want %d", n, err, sessions*3/4)
	}
	b.Logf("seeded %d sessions in %v", sessions, time.Since(start).Round(time.Millisecond))
	rtts := &roundTrips{}
	bench.redis.Client.AddHook(rtts)
	client := bench.srv.Client()
	tr := client.Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64 // keep-alive for every parallel client, as wrk does
	client = &http.Client{Transport: tr}
	b.Cleanup(tr.CloseIdleConnections)
	get := func() error { return benchCall(client, http.MethodGet, bench.srv.URL+listPath) }
	// One checked call first, so a broken list fails the benchmark rather than timing error pages.
	checkList(b, bench, client)

	b.Run("Serial", func(b *testing.B) {
		b.ReportAllocs()
		rtts.n.Store(0)
		cpu := processCPU()
		for b.Loop() {
			if err := get(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		b.ReportMetric(float64(rtts.n.Load())/float64(b.N), "rtt/req")
		b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/req")
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16) // × GOMAXPROCS goroutines: 32 on two cores
		rtts.n.Store(0)
		cpu := processCPU()
		var failed atomic.Pointer[error]
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := get(); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
		if err := failed.Load(); err != nil {
			b.Fatal(*err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		b.ReportMetric(float64(rtts.n.Load())/float64(b.N), "rtt/req")
		b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/req")
	})
}

// processCPU is the CPU time (user and system) this process has used: client, server and go-redis alike,
// not Redis's. Per request, it moves less than req/s when other work shares the machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// roundTrips is a go-redis hook that counts round trips to Redis (one per command, one per pipeline or
// MULTI/EXEC).
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// checkList fails b unless the list answers ten requires_input sessions and more to come.
func checkList(b *testing.B, bench *apiBundle, client *http.Client) {
	b.Helper()
	req, err := http.NewRequest(http.MethodGet, bench.srv.URL+listPath, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+keyA)
	res, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	var page struct {
		Data []struct {
			Status string `json:"status"`
		} `json:"data"`
		HasMore bool `json:"has_more"`
	}
	if err := json.NewDecoder(res.Body).Decode(&page); err != nil {
		b.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || len(page.Data) != 10 || !page.HasMore {
		b.Fatalf("list answered %d with %d sessions (has_more %v)", res.StatusCode, len(page.Data), page.HasMore)
	}
	for _, s := range page.Data {
		if s.Status != store.StatusRequiresInput {
			b.Fatalf("status filter let %q through", s.Status)
		}
	}
}

// newBenchServer is setupAPI for benchmarks (any testing.TB).
func newBenchServer(tb testing.TB) *apiBundle {
	tb.Helper()
	r := storetest.New(tb)
	clock := storetest.NewFakeClock(time.Unix(1_700_000_000, 0))
	st := r.Store(clock)
	k, err := api.ParseAPIKey(keyA + "=acct_alpha")
	if err != nil {
		tb.Fatal(err)
	}
	ring, err := api.NewKeyring([]api.APIKey{k})
	if err != nil {
		tb.Fatal(err)
	}
	q := &fakeQueue{}
	metrics := events.NewMetrics(nil)
	srv := httptest.NewServer(api.NewServer(api.Config{Store: st, Keys: ring, Queue: q,
		Emitter: &events.Emitter{Metrics: metrics}, Metrics: metrics}))
	tb.Cleanup(srv.Close)
	return &apiBundle{srv: srv, st: st, redis: r, queue: q, clock: clock}
}

// seedSessions creates n sessions with personal data in sc from 16 goroutines and cancels every fourth.
func seedSessions(tb testing.TB, st *store.Store, sc store.Scope, n int) {
	tb.Helper()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range 16 {
		wg.Go(func() {
			ref, email := "user_42", "jenny.rosen@example.com"
			for i := next.Add(1); i <= int64(n) && failed.Load() == nil; i = next.Add(1) {
				sess, _, err := st.CreateSession(ctx, sc, store.SessionCreate{Type: "document", ClientReferenceID: &ref,
					Metadata:        map[string]string{"customer_name": "Jenny Rosen", "order_id": "6735"},
					ProvidedDetails: &store.ProvidedDetails{Email: &email}}, store.Origin{RequestID: "req_seed"})
				if err == nil && i%4 == 0 {
					_, _, err = st.CancelSession(ctx, sc, sess.ID, store.Origin{RequestID: "req_seed"})
				}
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		tb.Fatal(*err)
	}
}

// benchCall sends one request with key A and no body, reads the whole answer, and fails unless it is 200.
func benchCall(client *http.Client, method, url string) error {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+keyA)
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", res.StatusCode, raw)
	}
	return nil
}
