package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
	"github.com/identityd/identityd/worker"
)

// Benchmarks of the redaction task without the queue: the handler's work on sessions already requested. Each
// session is verified, with its report, its 3 events (created, processing, verified) and 3 request logs
// (create, submit, retrieve with the report expanded); b.N sessions are seeded before the timer starts. They
// run on miniredis by default and on a real Redis with TEST_REDIS_URL:
//
//	TEST_REDIS_URL=redis://127.0.0.1:6379/12 go test -run '^$' -bench 'Redact(Parallel|Batch)?$' -benchtime 2000x ./worker/

// redactBench is a worker over a store holding sessions whose redaction was requested.
type redactBench struct {
	st  *store.Store
	sc  store.Scope
	w   *worker.Worker
	ids []string
	// rtts counts Redis round trips (one per command, one per pipeline or MULTI/EXEC).
	rtts *roundTrips
}

// roundTrips is a go-redis hook that counts round trips to Redis.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// start zeroes the counters once seeding is done.
func (rb *redactBench) start(b *testing.B) {
	b.Helper()
	b.ReportAllocs()
	rb.rtts.n.Store(0)
	b.ResetTimer()
}

// report stops the timer and reports sessions/s and round trips per session.
func (rb *redactBench) report(b *testing.B) {
	b.Helper()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
	b.ReportMetric(float64(rb.rtts.n.Load())/float64(b.N), "rtt/session")
}

// newRedactBench seeds n redactable sessions on a fresh namespace; the worker is wired as cmd/identityd wires
// it, without an asynq server.
func newRedactBench(b testing.TB, n int) *redactBench {
	b.Helper()
	r := storetest.New(b)
	st := r.Store(nil)
	metrics := events.NewMetrics(nil)
	rb := &redactBench{st: st, sc: store.Scope{Account: "acct_bench"}, ids: make([]string, n), rtts: &roundTrips{},
		w: &worker.Worker{Store: st, Metrics: metrics, Emitter: &events.Emitter{Metrics: metrics}}}
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n) && failed.Load() == nil; i = next.Add(1) - 1 {
				id, err := rb.seedOne()
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				rb.ids[i] = id
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	r.Client.AddHook(rb.rtts)
	return rb
}

// seedOne walks one session through the API's store calls: create, submit, verification, a retrieve with
// the report expanded (a request log for each of the three requests), then the redaction request.
func (rb *redactBench) seedOne() (string, error) {
	ctx, st, sc := context.Background(), rb.st, rb.sc
	sess, _, err := st.CreateSession(ctx, sc, store.SessionCreate{Type: "document", ClientReferenceID: new("user_42"),
		Metadata:        map[string]string{"customer_name": "Ada Lovelace", "order_id": "6735"},
		Options:         &store.Options{Document: &store.DocumentOptions{RequireMatchingSelfie: new(true)}},
		ProvidedDetails: &store.ProvidedDetails{Email: new("ada@example.com"), Phone: new("+15555550100")}},
		store.Origin{RequestID: "req_create", Personal: &store.RequestPersonal{Params: []store.Param{
			{Key: "metadata[customer_name]", Value: "Ada Lovelace"}, {Key: "metadata[order_id]", Value: "6735"},
			{Key: "provided_details[email]", Value: "ada@example.com"}, {Key: "provided_details[phone]", Value: "+15555550100"}}}})
	if err != nil {
		return "", err
	}
	id := sess.ID
	if err := saveLog(ctx, st, sc, "req_create", "POST", "/v1/identity/verification_sessions", sess, "", []store.Param{
		{Key: "client_reference_id", Value: "user_42"}, {Key: "options[document][require_matching_selfie]", Value: "true"},
		{Key: "type", Value: "document"}}, id); err != nil {
		return "", err
	}
	vo := store.VerifiedOutputs{FirstName: new("Ada"), LastName: new("Lovelace"), IDNumber: new("123-45-6789"),
		IDNumberType: new("us_ssn"), Email: new("ada@example.com"), Phone: new("+15555550100"), Sex: new("female"),
		Dob:     &store.Date{Day: new(int64(10)), Month: new(int64(12)), Year: new(int64(1815))},
		Address: &store.Address{City: new("London"), Country: new("GB"), Line1: new("1 Lovelace Rd"), PostalCode: new("N1 1AA")}}
	sub := &store.Submission{Outcome: store.OutcomeVerified, VerifiedOutputs: vo, Document: store.SubmittedDoc{
		Type: new("passport"), Number: new("P1234567"), IssuingCountry: new("GB"), Files: []string{"file_front", "file_back"},
		ExpirationDate: &store.Date{Day: new(int64(1)), Month: new(int64(1)), Year: new(int64(2030))}}}
	sess, _, err = st.Submit(ctx, sc, id, sub, store.Origin{RequestID: "req_submit", Personal: &store.RequestPersonal{
		Params: []store.Param{{Key: "verified_outputs[first_name]", Value: "Ada"}, {Key: "verified_outputs[last_name]", Value: "Lovelace"},
			{Key: "verified_outputs[id_number]", Value: "123-45-6789"}, {Key: "document[number]", Value: "P1234567"}}}})
	if err != nil {
		return "", err
	}
	if err := saveLog(ctx, st, sc, "req_submit", "POST", "/v1/test_helpers/identity/verification_sessions/"+id+"/submit", sess, "",
		[]store.Param{{Key: "outcome", Value: "verified"}, {Key: "document[type]", Value: "passport"}}, id); err != nil {
		return "", err
	}
	sess, report, _, err := st.CompleteVerification(ctx, sc, id, sub.ID)
	if err != nil {
		return "", err
	}
	if err := saveLog(ctx, st, sc, store.NewID("req"), "GET", "/v1/identity/verification_sessions/"+id, sess, "last_verification_report",
		[]store.Param{{Key: "expand[0]", Value: "last_verification_report"}}, id, report.ID); err != nil {
		return "", err
	}
	_, err = st.RequestRedaction(ctx, sc, id, store.Requester{Type: store.RequestedByRequest, ID: "req_redact"},
		store.Origin{RequestID: "req_redact"})
	return id, err
}

// saveLog stores a request log as the API does: its kept parameters, and its answer — the session, with the
// expansion — as a reference to the session's version; its personal parameters are in the session's record.
func saveLog(ctx context.Context, st *store.Store, sc store.Scope, id, method, path string, sess *store.Session, expand string,
	params []store.Param, objects ...string) error {
	ref := fmt.Sprintf(`{"t":"session","id":%q,"v":%d}`, sess.ID, sess.Rev)
	if expand != "" {
		ref = fmt.Sprintf(`{"t":"session","id":%q,"v":%d,"x":[%q]}`, sess.ID, sess.Rev, expand)
	}
	return st.SaveRequestLog(ctx, sc, &store.RequestLog{ID: id, Created: st.Now().Unix(), Method: method, Path: path,
		Status: 200, Params: params, Response: json.RawMessage(ref), Objects: objects, Session: sess.ID})
}

// check fails b unless the session is redacted with the whole cascade counted and its report scrubbed.
func (rb *redactBench) check(b *testing.B, id string) {
	b.Helper()
	ctx := context.Background()
	rec, err := rb.st.RedactionRecord(ctx, rb.sc, id)
	if err != nil {
		b.Fatal(err)
	}
	want := store.ScrubCounts{VerificationReports: 1, Events: 3, RequestLogs: 3}
	if rec.CompletedAt == nil || rec.Scrubbed != want {
		b.Fatalf("redaction of %s: completed %v, scrubbed %+v, want %+v", id, rec.CompletedAt != nil, rec.Scrubbed, want)
	}
	sess, err := rb.st.GetSession(ctx, rb.sc, id)
	if err != nil {
		b.Fatal(err)
	}
	r, err := rb.st.GetReport(ctx, rb.sc, *sess.LastVerificationReport)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(r)
	if sess.Redaction.Status != store.RedactionRedacted || strings.Contains(string(body), "Lovelace") {
		b.Fatalf("session %s not redacted (%s) or its report kept personal data", id, sess.Redaction.Status)
	}
}

// BenchmarkRedact times the single-session path, one session per op: Worker.Redact (load, then CompleteRedaction:
// the personal-data record, the report and the session scrubbed in one transaction).
func BenchmarkRedact(b *testing.B) {
	rb := newRedactBench(b, b.N)
	ctx := context.Background()
	rb.start(b)
	for _, id := range rb.ids {
		if err := rb.w.Redact(ctx, rb.sc, id); err != nil {
			b.Fatal(err)
		}
	}
	rb.report(b)
	rb.check(b, rb.ids[0])
	rb.check(b, rb.ids[b.N-1])
}

// BenchmarkRedactParallel is BenchmarkRedact from 5 × GOMAXPROCS goroutines at once: the handler's
// throughput under concurrency, without asynq's fetch loop in front of it. Not 20 (the default worker
// concurrency): go-redis's default pool is 10 × GOMAXPROCS connections and CompleteRedaction holds two at
// once (its WATCH connection, and a pooled one for the audit record and the pending score), so 20
// goroutines on two cores can take the whole pool and stall until "redis: connection pool timeout".
func BenchmarkRedactParallel(b *testing.B) {
	rb := newRedactBench(b, b.N)
	ctx := context.Background()
	var next atomic.Int64
	var failed atomic.Pointer[error]
	b.SetParallelism(5)
	rb.start(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := rb.w.Redact(ctx, rb.sc, rb.ids[next.Add(1)-1]); err != nil {
				failed.CompareAndSwap(nil, &err)
				return
			}
		}
	})
	rb.report(b)
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	rb.check(b, rb.ids[0])
	rb.check(b, rb.ids[b.N-1])
}

// BenchmarkRedactShared is the task handler (HandleRedact) from 20 goroutines at once, asynq's default worker
// concurrency: the handlers running together share batched cascades (coalesce.go), so this is what one worker
// process does per second under a backlog, without asynq's fetch loop in front of it.
func BenchmarkRedactShared(b *testing.B) {
	rb := newRedactBench(b, b.N)
	ctx := context.Background()
	tasks := make([]*asynq.Task, len(rb.ids))
	for i, id := range rb.ids {
		payload, err := json.Marshal(worker.RedactPayload{
			ScopePayload: worker.ScopePayload{Account: rb.sc.Account, Livemode: rb.sc.Livemode}, SessionID: id})
		if err != nil {
			b.Fatal(err)
		}
		tasks[i] = asynq.NewTask(worker.TypeRedactSession, payload)
	}
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	rb.start(b)
	for range 20 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(tasks)); i = next.Add(1) - 1 {
				if err := rb.w.HandleRedact(ctx, tasks[i]); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	rb.report(b)
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	rb.check(b, rb.ids[0])
	rb.check(b, rb.ids[b.N-1])
}

// BenchmarkRedactBatch times the batched path (bulk jobs, retention), reported per session: Worker.RedactBatch
// over batches of 100 (the store's default batch size), one pipelined cascade and one transaction each.
// "size=1" runs the same path one session at a time: what the single path would cost if it reused the
// batched cascade (pipelined index reads, one MGET, typed scrubs) instead of its sequential round trips.
func BenchmarkRedactBatch(b *testing.B) {
	for _, size := range []int{100, 1} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			rb := newRedactBench(b, b.N)
			ctx := context.Background()
			rb.start(b)
			for start := 0; start < len(rb.ids); start += size {
				if err := rb.w.RedactBatch(ctx, rb.sc, rb.ids[start:min(start+size, len(rb.ids))]); err != nil {
					b.Fatal(err)
				}
			}
			rb.report(b)
			rb.check(b, rb.ids[0])
			rb.check(b, rb.ids[b.N-1])
		})
	}
}
