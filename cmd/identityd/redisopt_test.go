package main

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store/storetest"
)

// freezer is a TCP proxy to a Redis that can stop answering without closing its connections, as a Redis
// that hangs (or a network that drops packets) does: writes are accepted, no reply comes back.
type freezer struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &freezer{ln: ln, target: target}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			_ = c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *freezer) addr() string { return f.ln.Addr().String() }

func (f *freezer) serve() {
	defer f.wg.Done()
	for {
		client, err := f.ln.Accept()
		if err != nil {
			return
		}
		upstream, err := net.Dial("tcp", f.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		f.mu.Lock()
		f.conns = append(f.conns, client, upstream)
		f.mu.Unlock()
		f.wg.Add(2)
		go f.pipe(upstream, client)
		go f.pipe(client, upstream)
	}
}

// pipe copies src to dst, dropping what passes while the proxy is frozen; it closes both when src ends.
func (f *freezer) pipe(dst, src net.Conn) {
	defer f.wg.Done()
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !f.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// readyz asks the daemon's /readyz and returns the status, failing the test if no answer comes in 20s.
func readyz(t *testing.T, d *daemon) int {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Get("http://" + d.main.AdminAddr + pathReadyz)
	require.NoError(t, err, "/readyz answers")
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestReadyz_RedisGone(t *testing.T) {
	t.Parallel()
	t.Run("Closed", func(t *testing.T) {
		t.Parallel()
		mini := miniredis.RunT(t)
		r := storetest.New(t)
		r.URL = "redis://" + mini.Addr() + "/0"
		d := startDaemon(t, r, "api")
		require.Equal(t, http.StatusOK, readyz(t, d))
		mini.Close()
		require.Equal(t, http.StatusServiceUnavailable, readyz(t, d))
	})
	// A Redis that hangs: /readyz answers 503 once its own deadline passes, even though the client's read
	// timeout is far longer, because the client honours the context's deadline.
	t.Run("Hangs", func(t *testing.T) {
		t.Parallel()
		mini := miniredis.RunT(t)
		proxy := newFreezer(t, mini.Addr())
		r := storetest.New(t)
		r.URL = "redis://" + proxy.addr() + "/0"
		long := func(m *Main) { m.redisTimeouts.Read, m.redisTimeouts.Write = time.Minute, time.Minute }
		d := startDaemonWith(t, r, long, "api")
		t.Cleanup(func() { proxy.frozen.Store(false) }) // runs before the daemon stops: it drains quickly
		require.Equal(t, http.StatusOK, readyz(t, d))
		proxy.frozen.Store(true)
		require.Equal(t, http.StatusServiceUnavailable, readyz(t, d))
	})
}

func TestRedisTimeouts_EveryCallIsBounded(t *testing.T) {
	t.Parallel()
	opt, err := parseRedisURL("redis://127.0.0.1:6379/0")
	require.NoError(t, err)
	defaultRedisTimeouts.apply(opt)
	require.Equal(t, 5*time.Second, opt.DialTimeout)
	require.Equal(t, 3*time.Second, opt.ReadTimeout)
	require.Equal(t, 3*time.Second, opt.WriteTimeout)
	require.Equal(t, 4*time.Second, opt.PoolTimeout)
	require.True(t, opt.ContextTimeoutEnabled)

	opt, err = parseRedisURL("redis://127.0.0.1:6379/0?read_timeout=10s")
	require.NoError(t, err)
	defaultRedisTimeouts.apply(opt)
	require.Equal(t, 10*time.Second, opt.ReadTimeout, "a timeout the URL sets wins")
}
