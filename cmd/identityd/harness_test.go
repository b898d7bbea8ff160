package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// Test keys: two accounts in test mode, one in live mode.
const (
	testKeyA = "sk_test_alpha0000000000000000000=acct_alpha"
	testKeyB = "sk_test_bravo0000000000000000000=acct_bravo"
	liveKeyA = "sk_live_alpha0000000000000000000=acct_alpha"
)

func secretOf(spec string) string { return spec[:len("sk_test_alpha0000000000000000000")] }

// daemon is an in-process identityd (the real Main and wiring) on the test's Redis namespace.
type daemon struct {
	main   *Main
	redis  *storetest.Redis
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startDaemon runs `identityd <role>` in-process with the test keys, fast delays, webhooks allowed to
// loopback receivers and the given extra flags.
func startDaemon(t testing.TB, r *storetest.Redis, role string, extra ...string) *daemon {
	t.Helper()
	return startDaemonAt(t, r, nil, role, extra...)
}

// startDaemonAt is startDaemon with the store on clock (nil: wall clock), for tests that control `created`.
func startDaemonAt(t testing.TB, r *storetest.Redis, clock store.Clock, role string, extra ...string) *daemon {
	t.Helper()
	return startDaemonWith(t, r, func(m *Main) { m.Clock = clock }, role, extra...)
}

// startDaemonWith is startDaemon with setup applied to the Main before it runs.
func startDaemonWith(t testing.TB, r *storetest.Redis, setup func(*Main), role string, extra ...string) *daemon {
	t.Helper()
	logs := &syncBuffer{}
	m := NewMain(logs, logs)
	setup(m)
	args := []string{role, "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}
	args = append(args, redisFlags(r)...)
	args = append(args, "--key-prefix", r.KeyPrefix, "--queue-prefix", r.QueuePrefix, "--api-key", testKeyA, "--api-key", testKeyB,
		"--api-key", liveKeyA, "--verification-delay", "0s", "--concurrency", "4", "--log-level", "warn",
		"--webhook-allow-private") // test receivers listen on loopback; a later --webhook-allow-private=false wins
	if err := m.ParseFlags(append(args, extra...)); err != nil {
		t.Fatalf("parse flags: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{main: m, redis: r, cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { d.done <- m.Run(ctx) }()
	select {
	case <-m.Ready:
	case err := <-d.done:
		t.Fatalf("daemon exited before ready: %v\n%s", err, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon not ready\n%s", logs.String())
	}
	t.Cleanup(d.stop)
	return d
}

// redisFlags point a daemon at the test's Redis: a URL, or a cluster with its password and CA when it has them.
func redisFlags(r *storetest.Redis) []string {
	if len(r.ClusterAddrs) == 0 {
		return []string{"--redis-url", r.URL}
	}
	flags := []string{"--redis-cluster", strings.Join(r.ClusterAddrs, ",")}
	if r.ClusterPassword != "" {
		flags = append(flags, "--redis-cluster-password", r.ClusterPassword)
	}
	if r.ClusterCAFile != "" {
		flags = append(flags, "--redis-cluster-ca-file", r.ClusterCAFile)
	}
	return flags
}

func (d *daemon) stop() {
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	<-d.done
	_ = d.main.Close()
}

func (d *daemon) url() string { return "http://" + d.main.APIAddr }

// client returns a stripe-go client for key (a spec from the constants above), pointed at the daemon.
func (d *daemon) client(spec string) *stripe.Client {
	backends := stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL:               stripe.String(d.url()),
		MaxNetworkRetries: stripe.Int64(0),
		HTTPClient:        &http.Client{Timeout: 30 * time.Second},
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	return stripe.NewClient(secretOf(spec), stripe.WithBackends(backends))
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
