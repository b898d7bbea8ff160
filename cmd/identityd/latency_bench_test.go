package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/identityd/identityd/cmd/identityd/bench"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// BenchmarkRedactionLatency measures, for b.N verified sessions (each with a report, events and request
// logs), the time from the HTTP answer to a redact call until the `.redacted` event appears on the
// account's event stream, which is written in the same transaction as redaction.status=redacted. One
// in-process `identityd serve` with the default concurrency and no redaction delay; the redact calls are
// sent back to back by one client. It reports p50_ms, p99_ms and max_ms. On real Redis set TEST_REDIS_URL;
// the figure in docs/performance.md comes from -benchtime=1000x.
func BenchmarkRedactionLatency(b *testing.B) {
	r := storetest.New(b)
	d := startDaemon(b, r, "serve", "--concurrency", "20", "--log-level", "error")
	client := newRawClient(d.url(), testKeyA)
	sc := store.Scope{Account: "acct_alpha"}
	n := b.N

	ids := make([]string, n)
	err := bench.ParallelRange(0, n, 8, func(i int) error {
		code, out, err := client.do(http.MethodPost, "/v1/identity/verification_sessions", url.Values{
			"type": {"document"}, "metadata[order]": {strconv.Itoa(i)}, "provided_details[email]": {fmt.Sprintf("p%d@example.com", i)}})
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("create: %d %v %w", code, out, err)
		}
		ids[i] = out["id"].(string)
		code, out, err = client.do(http.MethodPost, "/v1/test_helpers/identity/verification_sessions/"+ids[i]+"/submit",
			url.Values{"verified_outputs[first_name]": {"Bench"}, "verified_outputs[last_name]": {strconv.Itoa(i)}})
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("submit: %d %v %w", code, out, err)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Wait on the store, not the list API: a list call's request log is tied to every session it shows,
	// and would add work to each redaction.
	st := r.Store(nil)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		left, err := st.PendingVerifications(ctx, sc, time.Now().Add(time.Hour).UnixMilli(), 1)
		if err != nil {
			b.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("sessions not verified within 5 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	stream := st.StreamKey(sc)
	start := "0-0"
	if last, err := r.Client.XRevRangeN(ctx, stream, "+", "-", 1).Result(); err == nil && len(last) == 1 {
		start = last[0].ID
	}
	seen := make(chan map[string]time.Time, 1)
	go func() { seen <- watchRedacted(ctx, r.Client, stream, start, n) }()

	b.ResetTimer()
	answered := make(map[string]time.Time, n)
	for _, id := range ids {
		code, out, err := client.do(http.MethodPost, redactPath(id), nil)
		if err != nil || code != http.StatusOK {
			b.Fatalf("redact %s: %d %v %v", id, code, out, err)
		}
		answered[id] = time.Now()
	}
	var redacted map[string]time.Time
	select {
	case redacted = <-seen:
	case <-time.After(10 * time.Minute):
		b.Fatal("redactions not observed within 10 minutes")
	}
	b.StopTimer()
	if len(redacted) < n {
		b.Fatalf("observed %d of %d redactions", len(redacted), n)
	}

	lat := make([]float64, 0, n)
	for id, at := range answered {
		lat = append(lat, max(redacted[id].Sub(at).Seconds()*1000, 0))
	}
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.50), "p50_ms")
	b.ReportMetric(percentile(lat, 0.99), "p99_ms")
	b.ReportMetric(lat[len(lat)-1], "max_ms")
}

// watchRedacted follows the event stream from after start and returns when it has seen n `.redacted`
// entries (or ctx ends), with the time each session's entry was read.
func watchRedacted(ctx context.Context, rdb redis.UniversalClient, stream, start string, n int) map[string]time.Time {
	seen := make(map[string]time.Time, n)
	last := start
	for len(seen) < n && ctx.Err() == nil {
		res, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{stream, last}, Count: 1000, Block: 500 * time.Millisecond}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		now := time.Now()
		for _, s := range res {
			for _, m := range s.Messages {
				last = m.ID
				if m.Values["type"] == store.EventSessionRedacted {
					if id, _ := m.Values["object"].(string); id != "" {
						if _, dup := seen[id]; !dup {
							seen[id] = now
						}
					}
				}
			}
		}
	}
	return seen
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
