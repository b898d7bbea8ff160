package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/identityd/identityd/cmd/identityd/bench"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// BenchmarkRedactionBesideHungWebhooks measures what a receiver that never answers costs another account's
// redactions. One in-process `identityd serve` with the default pools; acct_alpha has 13 verified sessions
// whose events (about 620 deliveries) are owed to its endpoints, and acct_bravo then redacts one session,
// and then 200 at once. With hung=16 alpha's 16 endpoints point at a receiver that holds every request
// until the benchmark ends; with hung=0 alpha has no endpoints. It reports single_s (one redaction, from the
// call's answer to its `.redacted` event), batch200_s (from the first of 200 calls to the last event) and
// hung_requests (requests the receiver held when the measurement ended). Run with -benchtime=1x; on real
// Redis set TEST_REDIS_URL.
func BenchmarkRedactionBesideHungWebhooks(b *testing.B) {
	for _, hung := range []int{0, 16} {
		b.Run(fmt.Sprintf("hung=%d", hung), func(b *testing.B) {
			for range b.N {
				redactionBesideHungWebhooks(b, hung)
			}
		})
	}
}

func redactionBesideHungWebhooks(b *testing.B, hungEndpoints int) {
	b.Helper()
	b.StopTimer()
	r := storetest.New(b)
	d := startDaemon(b, r, "serve", "--concurrency", "20", "--log-level", "error")
	bravo := newRawClient(d.url(), testKeyB)
	alpha := newRawClient(d.url(), testKeyA)
	st := r.Store(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// Bravo's sessions are verified before alpha's deliveries start, so only the redactions meet them.
	ids := benchVerifiedSessions(b, d, bravo, store.Scope{Account: "acct_bravo"}, 201)
	hung := newHungReceiver(b)
	for i := range hungEndpoints {
		benchCall(b, alpha, "/v1/webhook_endpoints", url.Values{"url": {fmt.Sprintf("%s/hook/%d", hung.URL, i)},
			"enabled_events[]": {"*"}})
	}
	benchVerifiedSessions(b, d, alpha, store.Scope{Account: "acct_alpha"}, 13)
	if hungEndpoints > 0 { // until the hung requests stop growing: every slot they can take is taken
		held, since := 0, time.Now()
		for deadline := time.Now().Add(time.Minute); time.Since(since) < 2*time.Second; time.Sleep(50 * time.Millisecond) {
			if inFlight, _, _, _ := hung.snapshot(); inFlight > held {
				held, since = inFlight, time.Now()
			}
			if time.Now().After(deadline) {
				b.Fatal("the hung requests still grow after a minute")
			}
		}
	}

	sc := store.Scope{Account: "acct_bravo"}
	stream := st.StreamKey(sc)
	lastID := func() string {
		if last, err := r.Client.XRevRangeN(ctx, stream, "+", "-", 1).Result(); err == nil && len(last) == 1 {
			return last[0].ID
		}
		return "0-0"
	}
	b.StartTimer()
	seen := make(chan map[string]time.Time, 1)
	from := lastID()
	go func() { seen <- watchRedacted(ctx, r.Client, stream, from, 1) }()
	benchCall(b, bravo, redactPath(ids[0]), nil)
	answered := time.Now()
	single := (<-seen)[ids[0]].Sub(answered)

	from = lastID()
	go func() { seen <- watchRedacted(ctx, r.Client, stream, from, 200) }()
	start := time.Now()
	if err := bench.ParallelRange(1, len(ids), 8, func(i int) error {
		code, out, err := bravo.do(http.MethodPost, redactPath(ids[i]), nil)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("redact: %d %v %w", code, out, err)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	done := <-seen
	b.StopTimer()
	if len(done) < 200 || single <= 0 {
		b.Fatalf("observed %d of 200 redactions (single: %s)", len(done), single)
	}
	var last time.Time
	for _, at := range done {
		if at.After(last) {
			last = at
		}
	}
	inFlight, _, _, _ := hung.snapshot()
	b.ReportMetric(single.Seconds(), "single_s")
	b.ReportMetric(last.Sub(start).Seconds(), "batch200_s")
	b.ReportMetric(float64(inFlight), "hung_requests")
}

// benchVerifiedSessions creates n sessions, submits each, and waits until the verifications ran.
func benchVerifiedSessions(b *testing.B, d *daemon, c *rawClient, sc store.Scope, n int) []string {
	b.Helper()
	ids := make([]string, n)
	if err := bench.ParallelRange(0, n, 8, func(i int) error {
		code, out, err := c.do(http.MethodPost, "/v1/identity/verification_sessions", url.Values{"type": {"document"}})
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("create: %d %v %w", code, out, err)
		}
		ids[i] = out["id"].(string)
		code, out, err = c.do(http.MethodPost, "/v1/test_helpers/identity/verification_sessions/"+ids[i]+"/submit",
			url.Values{"verified_outputs[first_name]": {"Bench"}})
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("submit: %d %v %w", code, out, err)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	st := d.redis.Store(nil)
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		left, err := st.PendingVerifications(context.Background(), sc, time.Now().Add(time.Hour).UnixMilli(), 1)
		if err != nil {
			b.Fatal(err)
		}
		if len(left) == 0 {
			return ids
		}
		if time.Now().After(deadline) {
			b.Fatal("sessions not verified within 5 minutes")
		}
	}
}

func benchCall(b *testing.B, c *rawClient, path string, form url.Values) {
	b.Helper()
	if code, out, err := c.do(http.MethodPost, path, form); err != nil || code != http.StatusOK {
		b.Fatalf("POST %s: %d %v %v", path, code, out, err)
	}
}
