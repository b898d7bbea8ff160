package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store/storetest"
)

// requireCut waits for the server to end a connection whose client stalled: it answers (an error, say) and
// closes, or just closes. A server that keeps waiting for the client fails the test at the deadline.
func requireCut(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(15*time.Second)))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the server still holds the connection after 15s", what)
	}
}

func TestHTTPLimits_SlowClientsAreCut(t *testing.T) {
	t.Parallel()
	short := func(m *Main) {
		m.limits = httpLimits{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond,
			IdleTimeout: 300 * time.Millisecond, MaxConns: 16, AdminMaxConns: 16}
	}
	d := startDaemonWith(t, storetest.New(t), short, "serve")

	t.Run("SlowBody", func(t *testing.T) {
		t.Parallel()
		conn, err := net.Dial("tcp", d.main.APIAddr)
		require.NoError(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, "POST /v1/identity/verification_sessions HTTP/1.1\r\nHost: identityd\r\n"+
			"Authorization: Bearer "+secretOf(testKeyA)+"\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
			"Content-Length: 1000\r\n\r\ntype=docu")
		require.NoError(t, err)
		requireCut(t, conn, "a body that never finishes")
	})
	t.Run("SlowHeadersOnAdmin", func(t *testing.T) {
		t.Parallel()
		conn, err := net.Dial("tcp", d.main.AdminAddr)
		require.NoError(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: identityd\r\n")
		require.NoError(t, err)
		requireCut(t, conn, "headers that never finish")
	})
	t.Run("IdleKeepAlive", func(t *testing.T) {
		t.Parallel()
		conn, err := net.Dial("tcp", d.main.AdminAddr)
		require.NoError(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: identityd\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		_, _ = io.Copy(io.Discard, resp.Body)
		requireCut(t, conn, "an idle keep-alive connection")
	})
}

func TestHTTPLimits_ConnectionCap(t *testing.T) {
	t.Parallel()
	one := func(m *Main) { m.limits.MaxConns = 1 }
	d := startDaemonWith(t, storetest.New(t), one, "serve")
	get := func(timeout time.Duration) error {
		req, err := http.NewRequest(http.MethodGet, d.url()+"/v1/identity/verification_sessions", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+secretOf(testKeyA))
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Do(req.WithContext(ctx))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	}
	require.NoError(t, get(10*time.Second), "served while no other connection is open")

	hog, err := net.Dial("tcp", d.main.APIAddr)
	require.NoError(t, err)
	// The hog's connection is accepted (it takes the one slot) before a later one: it is first in the backlog.
	require.Error(t, get(500*time.Millisecond), "a second connection waits while the first is open")
	require.NoError(t, hog.Close())
	var last error
	eventually(t, 15*time.Second, "a request once the slot is free", func() bool {
		last = get(2 * time.Second)
		return last == nil
	})
}

func TestListen_BusyPortPrintsNoKey(t *testing.T) { // not parallel: t.Setenv
	t.Setenv("IDENTITYD_API_KEYS", "")
	t.Setenv("REDIS_URL", "")
	t.Setenv("REDIS_CLUSTER_ADDRS", "")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	for _, tc := range []struct{ flag, args string }{
		{"--admin-addr", "--addr 127.0.0.1:0 --admin-addr " + busy.Addr().String()},
		{"--addr", "--addr " + busy.Addr().String() + " --admin-addr 127.0.0.1:0"},
	} {
		var stdout, stderr bytes.Buffer
		m := NewMain(&stdout, &stderr)
		require.NoError(t, m.ParseFlags(append([]string{"serve", "--log-level", "error"}, strings.Fields(tc.args)...)))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := m.Run(ctx)
		cancel()
		require.Error(t, err, tc.flag)
		require.Equal(t, tc.flag+" "+busy.Addr().String()+": the address is already in use (another identityd?)", err.Error())
		require.NoError(t, m.Close())
		require.NotContains(t, stdout.String(), "sk_test_", "no key is shown for a process that exits")
		require.Empty(t, stdout.String())
	}
}
