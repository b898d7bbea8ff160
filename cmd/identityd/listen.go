package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// httpLimits bound what one client can hold on a listener: a connection that sends its headers or its body too
// slowly is cut, an idle keep-alive connection is closed, and past a number of open connections new ones wait
// in the kernel's backlog instead of costing a goroutine each.
type httpLimits struct {
	ReadHeaderTimeout time.Duration
	// ReadTimeout covers the whole request, headers and body: identityd's requests are small forms.
	ReadTimeout time.Duration
	IdleTimeout time.Duration
	// MaxConns and AdminMaxConns cap the open connections of the public and the admin listener.
	MaxConns, AdminMaxConns int
}

// defaultHTTPLimits apply to both listeners. No WriteTimeout: a slow reader of a large list page is bounded by
// the connection cap, and a write deadline would cut the drain of a long request at shutdown.
var defaultHTTPLimits = httpLimits{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
	IdleTimeout: 2 * time.Minute, MaxConns: 4096, AdminMaxConns: 64}

// newHTTPServer serves h with the limits' timeouts (the connection cap is the listener's, see listen).
func (l httpLimits) newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: l.ReadHeaderTimeout, ReadTimeout: l.ReadTimeout,
		IdleTimeout: l.IdleTimeout}
}

// listen binds addr for the listener named by flag, with at most maxConns open connections. Its error names
// the flag.
func listen(flag, addr string, maxConns int) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr) //nolint:noctx // binding a local address does not wait on the network
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("--%s %s: the address is already in use (another identityd?)", flag, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("--%s %s: %w", flag, addr, err)
	}
	return newLimitListener(ln, maxConns), nil
}

// limitListener accepts at most cap(slots) connections at a time: Accept waits until one of them is closed.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), closed: make(chan struct{})}
}

// Accept takes a slot, then a connection; the slot is given back when the connection is closed.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close stops the listener and wakes an Accept waiting for a slot.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	releaseOnce sync.Once
	release     func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.releaseOnce.Do(c.release)
	return err
}
