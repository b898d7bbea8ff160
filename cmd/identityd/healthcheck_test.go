package main

import (
	"bytes"
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store/storetest"
)

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve")
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		m := NewMain(&out, &out)
		if err := m.ParseFlags(append([]string{"healthcheck"}, args...)); err != nil {
			return out.String(), err
		}
		err := m.Run(context.Background())
		return out.String(), err
	}

	out, err := run("--admin-addr", d.main.AdminAddr)
	require.NoError(t, err)
	require.Equal(t, "ready\n", out)

	_, p, err := net.SplitHostPort(d.main.AdminAddr)
	require.NoError(t, err)
	out, err = run("--admin-addr", "0.0.0.0:"+p, "--path", "/healthz")
	require.NoError(t, err, "a wildcard listen address is asked on loopback")
	require.Equal(t, "ok\n", out)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	require.NoError(t, ln.Close())
	_, err = run("--admin-addr", closed)
	require.Error(t, err, "nothing listens there")

	_, err = run("--path", "/metrics")
	require.Error(t, err)
}
