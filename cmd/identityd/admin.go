package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
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
)

// adminUser is the dashboard's basic-auth user name (DESIGN §3).
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
	mux.HandleFunc("GET "+pathHealthz, func(w http.ResponseWriter, r *http.Request) {
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
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := c.Store.Ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("redis unavailable\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET "+pathMetrics, promhttp.HandlerFor(c.Gatherer, promhttp.HandlerOpts{}))
	if c.Dashboard != nil {
		var h http.Handler = c.Dashboard
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
