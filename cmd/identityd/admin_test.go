package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
	"github.com/identityd/identityd/worker"
)

// get fetches url (with basic auth when user is set) and returns the status and body.
func get(t *testing.T, method, url, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func (d *daemon) adminURL(path string) string { return "http://" + d.main.AdminAddr + path }

// scrape reads the admin /metrics.
func scrape(t *testing.T, d *daemon) map[string]*dto.MetricFamily {
	t.Helper()
	status, body := get(t, http.MethodGet, d.adminURL("/metrics"), "", "")
	require.Equal(t, http.StatusOK, status)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	return fams
}

// sample returns the value of the series of name whose labels include want (counter, gauge or histogram
// count), and whether it exists.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func TestAdmin_Probes(t *testing.T) {
	t.Parallel()
	t.Run("HealthyAndReady", func(t *testing.T) {
		t.Parallel()
		d := startDaemon(t, storetest.New(t), "serve")
		for _, path := range []string{"/healthz", "/readyz"} {
			status, _ := get(t, http.MethodGet, d.adminURL(path), "", "")
			require.Equal(t, http.StatusOK, status, path)
		}
	})
	t.Run("NotReadyWhenRedisIsDown", func(t *testing.T) {
		t.Parallel()
		dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: time.Second})
		t.Cleanup(func() { _ = dead.Close() })
		h := newAdminHandler(adminConfig{Store: store.New(dead, store.Config{}), Gatherer: prometheus.NewRegistry()})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		require.Equal(t, http.StatusOK, rec.Code, "liveness does not depend on Redis")
	})
	t.Run("NotReadyWhileDraining", func(t *testing.T) {
		t.Parallel()
		r := storetest.New(t)
		var draining atomic.Bool
		h := newAdminHandler(adminConfig{Store: r.Store(nil), Gatherer: prometheus.NewRegistry(), Draining: &draining})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		require.Equal(t, http.StatusOK, rec.Code)
		draining.Store(true)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	})
}

func TestAdmin_PublicListenerServesNoAdminPaths(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--admin-password", "s3cret")
	for _, path := range []string{"/metrics", "/dashboard/", "/dashboard/api/queues", "/healthz", "/readyz"} {
		status, body := get(t, http.MethodGet, d.url()+path, "admin", "s3cret")
		require.Equal(t, http.StatusNotFound, status, path)
		require.NotContains(t, body, "identityd_http_requests_total")
		require.NotContains(t, body, "<html", path)
	}
}

func TestAdmin_Metrics(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve")

	fams := scrape(t, d)
	for _, name := range []string{"identityd_redactions_requested_total", "identityd_redactions_completed_total",
		"identityd_redactions_failed_total", "identityd_redaction_duration_seconds", "identityd_webhook_deliveries_total",
		"identityd_events_emitted_total", "asynq_queue_size", "asynq_queue_latency_seconds", "asynq_tasks_enqueued_total",
		"identityd_queue_stats_up", "go_goroutines", "go_memstats_heap_alloc_bytes"} {
		require.Contains(t, fams, name, "present from start")
	}
	v, ok := sample(fams, "identityd_redactions_requested_total", nil)
	require.True(t, ok)
	require.Zero(t, v)
	v, _ = sample(fams, "identityd_queue_stats_up", nil)
	require.Equal(t, 1.0, v)
	for _, q := range []string{"-redact", "-verify", "-default"} {
		_, ok := sample(fams, "asynq_queue_size", map[string]string{"queue": d.redis.QueuePrefix + q})
		require.True(t, ok, "queue depth of %s", q)
	}

	sc := d.client(testKeyA)
	ctx := context.Background()
	vs, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
	require.NoError(t, err)
	_, err = sc.V1IdentityVerificationSessions.Redact(ctx, vs.ID, nil)
	require.NoError(t, err)
	_, err = sc.V1IdentityVerificationSessions.Retrieve(ctx, "vs_missing", nil)
	require.Error(t, err)

	eventually(t, 30*time.Second, "redaction counted", func() bool {
		v, _ := sample(scrape(t, d), "identityd_redactions_completed_total", nil)
		return v == 1
	})
	fams = scrape(t, d)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"identityd_http_requests_total", map[string]string{"route": "POST /v1/identity/verification_sessions", "code": "200"}, 1},
		{"identityd_http_requests_total", map[string]string{"route": "POST /v1/identity/verification_sessions/{id}/redact", "code": "200"}, 1},
		{"identityd_http_requests_total", map[string]string{"route": "GET /v1/identity/verification_sessions/{id}", "code": "404"}, 1},
		{"identityd_http_request_duration_seconds", map[string]string{"route": "POST /v1/identity/verification_sessions"}, 1},
		{"identityd_redactions_requested_total", nil, 1},
		{"identityd_redactions_completed_total", nil, 1},
		{"identityd_redaction_duration_seconds", nil, 1},
		{"identityd_events_emitted_total", map[string]string{"type": "identity.verification_session.created"}, 1},
		{"identityd_events_emitted_total", map[string]string{"type": "identity.verification_session.redacted"}, 1},
	} {
		got, ok := sample(fams, c.name, c.labels)
		require.True(t, ok, "%s%v", c.name, c.labels)
		require.Equal(t, c.want, got, "%s%v", c.name, c.labels)
	}
	// Queue statistics are cached for a few seconds; within a generous window they show the processed task.
	eventually(t, 30*time.Second, "queue throughput visible", func() bool {
		v, _ := sample(scrape(t, d), "asynq_tasks_processed_total", map[string]string{"queue": d.redis.QueuePrefix + "-redact"})
		return v >= 1
	})
}

func TestAdmin_Dashboard(t *testing.T) {
	t.Parallel()
	t.Run("ReadOnlyWithoutPassword", func(t *testing.T) {
		t.Parallel()
		d := startDaemon(t, storetest.New(t), "serve", "--redaction-delay", "1h")
		status, body := get(t, http.MethodGet, d.adminURL("/dashboard/"), "", "")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, "<html")
		require.Contains(t, strings.ToLower(body), "asynq")
		requireAssetsServed(t, d, body, "", "")

		// A redaction waiting out its grace period sits in the scheduled set; the dashboard shows its ids only.
		sc := d.client(testKeyA)
		vs, err := sc.V1IdentityVerificationSessions.Create(context.Background(), &stripe.IdentityVerificationSessionCreateParams{
			Type: stripe.String("document"), ClientReferenceID: stripe.String("jane.doe@example.com")})
		require.NoError(t, err)
		_, err = sc.V1IdentityVerificationSessions.Redact(context.Background(), vs.ID, nil)
		require.NoError(t, err)
		queue := d.redis.QueuePrefix + "-redact"
		status, body = get(t, http.MethodGet, d.adminURL("/dashboard/api/queues/"+queue+"/scheduled_tasks"), "", "")
		require.Equal(t, http.StatusOK, status, body)
		var list struct {
			Tasks []struct {
				Type    string `json:"type"`
				Payload string `json:"payload"`
			} `json:"tasks"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &list))
		require.Len(t, list.Tasks, 1)
		require.Equal(t, worker.TypeRedactSession, list.Tasks[0].Type)
		require.Equal(t, "account=acct_alpha livemode=false session_id="+vs.ID, list.Tasks[0].Payload)
		require.NotContains(t, body, "jane.doe")

		status, _ = get(t, http.MethodPost, d.adminURL("/dashboard/api/queues/"+queue+":pause"), "", "")
		require.Equal(t, http.StatusMethodNotAllowed, status, "read-only without a password")
		info, err := asynq.NewInspectorFromRedisClient(d.redis.Client).GetQueueInfo(queue)
		require.NoError(t, err)
		require.False(t, info.Paused)
	})
	t.Run("PasswordRequiredAndWritable", func(t *testing.T) {
		t.Parallel()
		d := startDaemon(t, storetest.New(t), "serve", "--admin-password", "s3cret", "--redaction-delay", "1h")
		for _, creds := range [][2]string{{"", ""}, {"admin", "wrong"}, {"root", "s3cret"}} {
			status, body := get(t, http.MethodGet, d.adminURL("/dashboard/"), creds[0], creds[1])
			require.Equal(t, http.StatusUnauthorized, status, creds)
			require.NotContains(t, body, "<html")
			status, _ = get(t, http.MethodGet, d.adminURL("/dashboard/api/queues"), creds[0], creds[1])
			require.Equal(t, http.StatusUnauthorized, status, creds)
		}
		status, body := get(t, http.MethodGet, d.adminURL("/dashboard/"), "admin", "s3cret")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, "<html")
		requireAssetsServed(t, d, body, "admin", "s3cret")
		// Probes and metrics stay open for orchestrators and Prometheus.
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			status, _ := get(t, http.MethodGet, d.adminURL(path), "", "")
			require.Equal(t, http.StatusOK, status, path)
		}

		sc := d.client(testKeyA)
		vs, err := sc.V1IdentityVerificationSessions.Create(context.Background(), &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
		require.NoError(t, err)
		_, err = sc.V1IdentityVerificationSessions.Redact(context.Background(), vs.ID, nil)
		require.NoError(t, err)
		queue := d.redis.QueuePrefix + "-redact"
		status, _ = get(t, http.MethodPost, d.adminURL("/dashboard/api/queues/"+queue+":pause"), "", "")
		require.Equal(t, http.StatusUnauthorized, status)
		status, body = get(t, http.MethodPost, d.adminURL("/dashboard/api/queues/"+queue+":pause"), "admin", "s3cret")
		require.Equal(t, http.StatusNoContent, status, body)
		info, err := asynq.NewInspectorFromRedisClient(d.redis.Client).GetQueueInfo(queue)
		require.NoError(t, err)
		require.True(t, info.Paused)
	})
}

// requireAssetsServed fetches the scripts the dashboard page loads: they live under the mount path, too.
func requireAssetsServed(t *testing.T, d *daemon, page, user, password string) {
	t.Helper()
	scripts := regexp.MustCompile(`src="(/dashboard/static/[^"]+\.js)"`).FindAllStringSubmatch(page, -1)
	require.NotEmpty(t, scripts, "the page loads its scripts from /dashboard/static/")
	for _, m := range scripts {
		status, _ := get(t, http.MethodGet, d.adminURL(m[1]), user, password)
		require.Equal(t, http.StatusOK, status, m[1])
	}
}

// TestAdmin_DashboardEmbeddedRedis: with no --redis-url the dashboard reads the embedded Redis.
func TestAdmin_DashboardEmbeddedRedis(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	m := NewMain(&out, &out)
	require.NoError(t, m.ParseFlags([]string{"serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--api-key", testKeyA, "--log-level", "error"}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, m.Close())
	})
	select {
	case <-m.Ready:
	case err := <-done:
		t.Fatalf("exited: %v\n%s", err, out.String())
	}
	d := &daemon{main: m}
	sc := d.client(testKeyA)
	vs, err := sc.V1IdentityVerificationSessions.Create(context.Background(), &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
	require.NoError(t, err)
	_, err = sc.V1IdentityVerificationSessions.Redact(context.Background(), vs.ID, nil)
	require.NoError(t, err)
	eventually(t, 30*time.Second, "the redact queue appears on the dashboard", func() bool {
		status, body := get(t, http.MethodGet, d.adminURL("/dashboard/api/queues"), "", "")
		require.Equal(t, http.StatusOK, status, body)
		return strings.Contains(body, `"identityd-redact"`)
	})
}

// TestDashboard_OwnConnections: closing the dashboard (as Main.Close does) leaves the shared client working.
func TestDashboard_OwnConnections(t *testing.T) {
	t.Parallel()
	r := storetest.New(t)
	opt, err := redis.ParseURL(r.URL)
	require.NoError(t, err)
	dash := newDashboard(asynq.RedisClientOpt{Addr: opt.Addr, DB: opt.DB, Password: opt.Password}, false)
	rec := httptest.NewRecorder()
	dash.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dashboard/api/redis_info", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.NoError(t, dash.Close())
	require.NoError(t, r.Client.Ping(context.Background()).Err())
}
