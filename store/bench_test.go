package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// Hot-path benchmarks of the store. They run on miniredis by default and on a real Redis with TEST_REDIS_URL:
//
//	TEST_REDIS_URL=redis://127.0.0.1:6379/12 go test -run '^$' -bench . -benchmem ./store/

// benchStore is a store on its own namespace for a benchmark run, and a counter of its Redis round trips.
func benchStore(b *testing.B) (*store.Store, store.Scope, *roundTrips) {
	b.Helper()
	r := storetest.New(b)
	rtts := &roundTrips{}
	r.Client.AddHook(rtts)
	return r.Store(storetest.NewFakeClock(t0)), store.Scope{Account: "acct_bench"}, rtts
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

// report reports round trips per op (counted since the last reset).
func (h *roundTrips) report(b *testing.B, unit string) {
	b.Helper()
	b.ReportMetric(float64(h.n.Load())/float64(b.N), unit)
}

// createParams are the parameters of a realistic create call.
func createParams() store.SessionCreate {
	return store.SessionCreate{Type: "document", ClientReferenceID: new("user_42"),
		Metadata: map[string]string{"customer_name": "Jenny Rosen", "order_id": "6735"},
		Options: &store.Options{Document: &store.DocumentOptions{AllowedTypes: []string{"driving_license", "passport"},
			RequireMatchingSelfie: new(true)}},
		ProvidedDetails: &store.ProvidedDetails{Email: new("jenny.rosen@example.com"), Phone: new("+15555550123")}}
}

// parallelSeed runs fn(i) for i in [from, to) on 16 goroutines and fails b on the first error.
func parallelSeed(b *testing.B, from, to int, fn func(i int) error) {
	b.Helper()
	next := atomic.Int64{}
	next.Store(int64(from))
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(to) && failed.Load() == nil; i = next.Add(1) - 1 {
				if err := fn(int(i)); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
}

// BenchmarkList times one page of 10 with a status filter, at 1,000 and 10,000 sessions in the account (a
// quarter canceled; the list asks for requires_input): "Decoded" is store.ListSessions (sessions decoded, for
// expansions), "JSON" is store.ListSessionsJSON (stored JSON, what an unexpanded list answers). The index walk is by
// lex range, so the time per page should not grow with the store.
func BenchmarkList(b *testing.B) {
	st, sc, rtts := benchStore(b)
	ctx := context.Background()
	seeded := 0
	filter, page := store.SessionFilter{Status: store.StatusRequiresInput}, store.Page{Limit: 10}
	for _, size := range []int{1000, 10000} {
		parallelSeed(b, seeded, size, func(i int) error {
			sess, _, err := st.CreateSession(ctx, sc, createParams(), store.Origin{RequestID: "req_seed"})
			if err == nil && i%4 == 3 {
				_, _, err = st.CancelSession(ctx, sc, sess.ID, store.Origin{RequestID: "req_seed"})
			}
			return err
		})
		seeded = size
		b.Run(fmt.Sprintf("Decoded/sessions=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			rtts.n.Store(0)
			for b.Loop() {
				page, more, err := st.ListSessions(ctx, sc, filter, page)
				if err != nil {
					b.Fatal(err)
				}
				if len(page) != 10 || !more || page[0].Status != store.StatusRequiresInput {
					b.Fatalf("list gave %d sessions (more %v)", len(page), more)
				}
			}
			rtts.report(b, "rtt/op")
		})
		b.Run(fmt.Sprintf("JSON/sessions=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			rtts.n.Store(0)
			for b.Loop() {
				page, more, err := st.ListSessionsJSON(ctx, sc, filter, page)
				if err != nil {
					b.Fatal(err)
				}
				if len(page) != 10 || !more || !bytes.Contains(page[0].JSON, []byte(`"status":"requires_input"`)) {
					b.Fatalf("list gave %d sessions (more %v)", len(page), more)
				}
			}
			rtts.report(b, "rtt/op")
		})
	}
}

// BenchmarkCreate times store.Create with realistic parameters: the session, its indexes and its `.created`
// event in one MULTI/EXEC.
func BenchmarkCreate(b *testing.B) {
	st, sc, rtts := benchStore(b)
	ctx := context.Background()
	p := createParams()
	if _, _, err := st.CreateSession(ctx, sc, p, store.Origin{}); err != nil { // registers the account once
		b.Fatal(err)
	}
	b.ReportAllocs()
	rtts.n.Store(0)
	for b.Loop() {
		if _, evs, err := st.CreateSession(ctx, sc, p, store.Origin{RequestID: "req_bench"}); err != nil || len(evs) != 1 {
			b.Fatalf("create: %v (%d events)", err, len(evs))
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
	rtts.report(b, "rtt/op")
}

// BenchmarkSaveRequestLog times storing the request log of a create call as the API does: its kept parameters
// and the session as answered, by reference, listed under the session and in the account's logs.
// BenchmarkSaveRequestLog_List is a list's log.
func BenchmarkSaveRequestLog(b *testing.B) {
	st, sc, rtts := benchStore(b)
	ctx := context.Background()
	var ids []string
	var bodies [][]byte
	for range 16 {
		sess, _, err := st.CreateSession(ctx, sc, createParams(), store.Origin{})
		if err != nil {
			b.Fatal(err)
		}
		body := fmt.Appendf(nil, `{"t":"session","id":%q,"v":%d}`, sess.ID, sess.Rev)
		ids, bodies = append(ids, sess.ID), append(bodies, body)
	}
	params := []store.Param{{Key: "client_reference_id", Value: "user_42"},
		{Key: "options[document][allowed_types][0]", Value: "driving_license"},
		{Key: "options[document][allowed_types][1]", Value: "passport"}, {Key: "options[document][require_matching_selfie]", Value: "true"},
		{Key: "type", Value: "document"}}
	b.ReportAllocs()
	rtts.n.Store(0)
	i := 0
	for b.Loop() {
		l := &store.RequestLog{ID: store.NewID("req"), Created: t0.Unix(), Method: "POST",
			Path: "/v1/identity/verification_sessions", Status: 200, Params: params,
			Response: bodies[i%len(ids)], Objects: []string{ids[i%len(ids)]}, Session: ids[i%len(ids)]}
		if err := st.SaveRequestLog(ctx, sc, l); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logs/s")
	rtts.report(b, "rtt/op")
	logs, _, err := st.ListRequestLogs(ctx, sc, ids[0], store.Page{Limit: 1})
	if err != nil || len(logs) != 1 || logs[0].Method != http.MethodPost {
		b.Fatalf("request log not stored: %v", err)
	}
}

// BenchmarkSaveRequestLog_Parallel is BenchmarkSaveRequestLog from 16 × GOMAXPROCS goroutines at once, as
// concurrent API requests of one account save their logs: the logs waiting at the same time share script runs
// (requestlog_group.go), so rtt/op falls below 1.
func BenchmarkSaveRequestLog_Parallel(b *testing.B) {
	st, sc, rtts := benchStore(b)
	ctx := context.Background()
	sess, _, err := st.CreateSession(ctx, sc, createParams(), store.Origin{})
	if err != nil {
		b.Fatal(err)
	}
	body := fmt.Appendf(nil, `{"t":"session","id":%q,"v":%d}`, sess.ID, sess.Rev)
	params := []store.Param{{Key: "client_reference_id", Value: "user_42"}, {Key: "type", Value: "document"}}
	var failed atomic.Pointer[error]
	b.ReportAllocs()
	b.SetParallelism(16)
	rtts.n.Store(0)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l := &store.RequestLog{ID: store.NewID("req"), Created: t0.Unix(), Method: "POST",
				Path: "/v1/identity/verification_sessions", Status: 200, Params: params,
				Response: body, Objects: []string{sess.ID}, Session: sess.ID}
			if err := st.SaveRequestLog(ctx, sc, l); err != nil {
				failed.CompareAndSwap(nil, &err)
				return
			}
		}
	})
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logs/s")
	rtts.report(b, "rtt/op")
}

// BenchmarkSaveRequestLog_List times storing the request log of `GET /v1/identity/verification_sessions?limit=10`:
// the page as answered, as ten (id, version) references, in the account's logs.
func BenchmarkSaveRequestLog_List(b *testing.B) {
	st, sc, rtts := benchStore(b)
	ctx := context.Background()
	var sessions []*store.Session
	for range 10 {
		sess, _, err := st.CreateSession(ctx, sc, createParams(), store.Origin{})
		if err != nil {
			b.Fatal(err)
		}
		sessions = append(sessions, sess)
	}
	items := make([]string, len(sessions))
	for i, sess := range sessions {
		items[i] = fmt.Sprintf("%s.%d", sess.ID, sess.Rev)
	}
	body, err := json.Marshal(map[string]any{"t": "sessions", "url": "/v1/identity/verification_sessions",
		"more": true, "items": items})
	if err != nil {
		b.Fatal(err)
	}
	params := []store.Param{{Key: "limit", Value: "10"}, {Key: "status", Value: "requires_input"}}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	rtts.n.Store(0)
	for b.Loop() {
		l := &store.RequestLog{ID: store.NewID("req"), Created: t0.Unix(), Method: "GET",
			Path: "/v1/identity/verification_sessions", Status: 200, Params: params, Response: body}
		if err := st.SaveRequestLog(ctx, sc, l); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logs/s")
	rtts.report(b, "rtt/op")
	logs, _, err := st.ListRequestLogs(ctx, sc, "", store.Page{Limit: 1})
	if err != nil || len(logs) != 1 || logs[0].Method != http.MethodGet {
		b.Fatalf("request log not stored: %v", err)
	}
}
