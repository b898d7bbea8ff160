package api_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/identityd/identityd/store"
)

// BenchmarkServer_Redact times `POST /v1/identity/verification_sessions/{id}/redact` through the whole HTTP
// edge (auth, form, the store's redaction request with its event, request log) from 16 clients, one canceled
// session per call; the queue is a fake, so the figure is the API's side of a redaction alone. b.N sessions
// are seeded before the timer starts.
//
//	TEST_REDIS_URL=redis://127.0.0.1:6379/12 go test -run '^$' -bench Server_Redact -benchtime 2000x ./api/
func BenchmarkServer_Redact(b *testing.B) {
	bench := newBenchServer(b)
	ctx := context.Background()
	sc := store.Scope{Account: "acct_alpha"}
	ids := make([]string, b.N)
	for i := range ids {
		email := fmt.Sprintf("person%d@example.com", i)
		sess, _, err := bench.st.CreateSession(ctx, sc, store.SessionCreate{Type: "document",
			ProvidedDetails: &store.ProvidedDetails{Email: &email}}, store.Origin{RequestID: "req_seed"})
		if err == nil {
			_, _, err = bench.st.CancelSession(ctx, sc, sess.ID, store.Origin{RequestID: "req_seed"})
		}
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = sess.ID
	}
	rtts := &roundTrips{}
	bench.redis.Client.AddHook(rtts)
	tr := bench.srv.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	client := &http.Client{Transport: tr}
	b.Cleanup(tr.CloseIdleConnections)
	redact := func(id string) error {
		return benchCall(client, http.MethodPost, bench.srv.URL+"/v1/identity/verification_sessions/"+id+"/redact")
	}
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(ids)) && failed.Load() == nil; i = next.Add(1) - 1 {
				if err := redact(ids[i]); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(rtts.n.Load())/float64(b.N), "rtt/req")
	for _, id := range []string{ids[0], ids[len(ids)-1]} {
		sess, err := bench.st.GetSession(ctx, sc, id)
		if err != nil || sess.Redaction == nil || sess.Redaction.Status != store.RedactionProcessing {
			b.Fatalf("session %s: redaction not requested (%v)", id, err)
		}
	}
	if got := len(bench.queue.redact); got != b.N {
		b.Fatalf("%d redactions enqueued, want %d", got, b.N)
	}
}
