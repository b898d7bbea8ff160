package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/identityd/identityd/store"
)

// Admin listener paths. deploy/deploy_test.go reads these patterns to check the probes of the manifests.
const (
	pathHealthz   = "/healthz"
	pathReadyz    = "/readyz"
	pathMetrics   = "/metrics"
	pathDashboard = "/dashboard/"
	// pathFailedRedactions lists redactions that exhausted their retries and are not finished, so failures stay
	// visible: asynq's archive is capped and the reconciler re-enqueues archived tasks, so identityd keeps its
	// own list.
	pathFailedRedactions = "/failed-redactions"
)

// readyzTimeout bounds /readyz's PING: a Redis that does not answer within it makes the process not ready.
const readyzTimeout = 2 * time.Second

// adminUser is the dashboard's basic-auth user name.
const adminUser = "admin"

// adminConfig wires the admin listener.
type adminConfig struct {
	Store    *store.Store
	Gatherer prometheus.Gatherer
	// Dashboard is asynqmon (nil: none). It is mounted under pathDashboard.
	Dashboard http.Handler
	// Password, when set, guards the dashboard with basic auth (user admin).
	Password string
	// Draining is set once shutdown began: /readyz then answers 503 so load balancers stop sending traffic.
	Draining *atomic.Bool
}

// newAdminHandler serves the admin listener (never the public one): liveness, readiness, metrics and the
// dashboard. Probes and metrics need no password, so orchestrators and Prometheus can reach them.
func newAdminHandler(c adminConfig) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathHealthz, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET "+pathReadyz, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if c.Draining != nil && c.Draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("draining\n"))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), readyzTimeout)
		defer cancel()
		if err := c.Store.Ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("redis unavailable\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET "+pathMetrics, promhttp.HandlerFor(c.Gatherer, promhttp.HandlerOpts{}))
	var failed http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, total, err := c.Store.UnresolvedFailedRedactions(r.Context(), 1000)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "redis unavailable"})
			return
		}
		if list == nil {
			list = []store.FailedRedaction{}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"total": total, "data": list})
	})
	if c.Password != "" {
		failed = basicAuth(adminUser, c.Password, failed)
	}
	mux.Handle("GET "+pathFailedRedactions, failed)
	if c.Dashboard != nil {
		h := c.Dashboard
		if c.Password != "" {
			h = basicAuth(adminUser, c.Password, h)
		}
		mux.Handle(pathDashboard, h)
	}
	return mux
}

// basicAuth lets a request through only with the right user and password (compared in constant time).
func basicAuth(user, password string, next http.Handler) http.Handler {
	wantUser, wantPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		gotUser, gotPass := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:]) == 1
		passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:]) == 1
		if !ok || !userOK || !passOK {
			w.Header().Set("WWW-Authenticate", `Basic realm="identityd admin", charset="UTF-8"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// newFailedRedactionsGauge exports how many redactions are recorded as failed and not finished since, read from
// Redis at most every five seconds however often Prometheus scrapes.
func newFailedRedactionsGauge(st *store.Store) prometheus.Collector {
	var (
		mu     sync.Mutex
		last   time.Time
		cached float64
	)
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "identityd_redactions_failed_unresolved",
		Help: "Redactions that exhausted their retries and have not completed since (see /failed-redactions).",
	}, func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 5*time.Second {
			return cached
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, total, err := st.UnresolvedFailedRedactions(ctx, 0); err == nil {
			cached, last = float64(total), time.Now()
		}
		return cached
	})
}
