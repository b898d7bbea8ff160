package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// trafficRequest is one API call of the traffic generator, kept so that a call whose outcome the client could
// not see can be replayed with its Idempotency-Key.
type trafficRequest struct {
	path, idemKey, kind, sessionID string
	form                           url.Values
}

// traffic drives creates, submissions and redactions against one API until it refuses connections.
type traffic struct {
	t      *testing.T
	client *http.Client
	secret string

	mu        sync.Mutex
	redacted  []string         // redaction accepted (200)
	submitted []string         // submission accepted (200)
	unsure    []trafficRequest // sent, outcome unknown (connection broke): replayed later
	failed    []string         // a response that was not 2xx: the test fails
	ok        int
}

// do sends r to base. It returns false once the API no longer accepts connections.
func (tr *traffic) do(base string, r trafficRequest) (map[string]any, bool) {
	req, err := http.NewRequest(http.MethodPost, base+r.path, strings.NewReader(r.form.Encode()))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tr.secret)
	req.Header.Set("Idempotency-Key", r.idemKey)
	resp, err := tr.client.Do(req)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil, false // never accepted: nothing happened
	}
	if err != nil {
		tr.mu.Lock()
		tr.unsure = append(tr.unsure, r)
		tr.mu.Unlock()
		return nil, false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if resp.StatusCode != http.StatusOK {
		tr.failed = append(tr.failed, fmt.Sprintf("%s %s → %d %s", r.kind, r.path, resp.StatusCode, body))
		return nil, false
	}
	tr.ok++
	var out map[string]any
	_ = json.Unmarshal(body, &out)
	switch r.kind {
	case "redact":
		tr.redacted = append(tr.redacted, r.sessionID)
	case "submit":
		tr.submitted = append(tr.submitted, r.sessionID)
	}
	return out, true
}

// run loops create → (submit | redact) against base until the API refuses or stop closes.
func (tr *traffic) run(base string, worker int, stop <-chan struct{}) {
	pace := time.NewTicker(15 * time.Millisecond) // a steady load, not a flood of a 2-core machine
	defer pace.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-pace.C:
		}
		key := fmt.Sprintf("split-%d-%d", worker, i)
		created, ok := tr.do(base, trafficRequest{path: "/v1/identity/verification_sessions", idemKey: key + "-create",
			kind: "create", form: url.Values{"type": {"document"}}})
		if !ok {
			return
		}
		id, _ := created["id"].(string)
		next := trafficRequest{path: "/v1/identity/verification_sessions/" + id + "/redact", idemKey: key + "-redact",
			kind: "redact", sessionID: id}
		if i%2 == 0 {
			next = trafficRequest{path: "/v1/test_helpers/identity/verification_sessions/" + id + "/submit",
				idemKey: key + "-submit", kind: "submit", sessionID: id}
		}
		if _, ok := tr.do(base, next); !ok {
			return
		}
	}
}

// TestSplit_APIAndTwoWorkers_Drain runs `identityd api` and two `identityd worker` on one Redis under steady
// traffic, stops one worker, then stops the API while a request is in flight (the in-process equivalent of
// SIGTERM: main turns the signal into the cancellation of Run's context). No accepted request fails, the
// in-flight one completes, and every accepted redaction and verification is finished by the remaining worker.
func TestSplit_APIAndTwoWorkers_Drain(t *testing.T) {
	t.Parallel()
	r := storetest.New(t)
	api1 := startDaemon(t, r, "api")
	w1 := startDaemon(t, r, "worker", "--log-level", "info")
	w2 := startDaemon(t, r, "worker", "--log-level", "info")

	tr := &traffic{t: t, secret: secretOf(testKeyA), client: &http.Client{Timeout: 30 * time.Second}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() { ; tr.run(api1.url(), g, stop) })
	}
	t.Cleanup(func() { close(stop); wg.Wait() })

	// Worker 1 takes part, then goes away while traffic continues.
	eventually(t, 30*time.Second, "worker 1 ran tasks", func() bool { return strings.Contains(w1.logs.String(), "msg=task") })
	w1.stop()
	w2Before := strings.Count(w2.logs.String(), "msg=task")
	eventually(t, 30*time.Second, "worker 2 carries on", func() bool { return strings.Count(w2.logs.String(), "msg=task") > w2Before+4 })

	// A request the API is in the middle of when it is told to stop: the handler is reading the body (the
	// server sent 100 Continue), and the rest of the body arrives only after the listener closed.
	conn, err := net.Dial("tcp", api1.main.APIAddr)
	require.NoError(t, err)
	defer conn.Close()
	body := "type=document&client_reference_id=inflight"
	_, err = fmt.Fprintf(conn, "POST /v1/identity/verification_sessions HTTP/1.1\r\nHost: identityd\r\n"+
		"Authorization: Bearer %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n"+
		"Expect: 100-continue\r\nConnection: close\r\n\r\n", secretOf(testKeyA), len(body))
	require.NoError(t, err)
	rd := bufio.NewReader(conn)
	cont, err := http.ReadResponse(rd, nil)
	require.NoError(t, err)
	_ = cont.Body.Close() // a 100 Continue has no body
	require.Equal(t, http.StatusContinue, cont.StatusCode)

	stopped := make(chan struct{})
	go func() { api1.stop(); close(stopped) }()
	eventually(t, 30*time.Second, "api listener closed", func() bool {
		c, err := net.DialTimeout("tcp", api1.main.APIAddr, time.Second)
		if err == nil {
			_ = c.Close()
		}
		return err != nil
	})
	status, _ := get(t, http.MethodGet, api1.adminURL("/readyz"), "", "")
	require.Equal(t, http.StatusServiceUnavailable, status, "a draining process is not ready")
	select {
	case <-stopped:
		t.Fatal("the API stopped before its in-flight request finished")
	default:
	}

	_, err = io.WriteString(conn, body)
	require.NoError(t, err)
	resp, err := http.ReadResponse(rd, nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "in-flight request drained: %s", respBody)
	require.Contains(t, string(respBody), `"client_reference_id":"inflight"`)
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the API did not stop after draining")
	}
	wg.Wait() // the generators stop at the first refused connection

	tr.mu.Lock()
	require.Empty(t, tr.failed, "accepted requests that failed")
	unsure := tr.unsure
	tr.mu.Unlock()
	t.Logf("traffic: %d requests answered, %d redactions and %d submissions accepted, %d outcomes unseen (replayed)",
		tr.ok, len(tr.redacted), len(tr.submitted), len(unsure))
	require.NotEmpty(t, tr.redacted)
	require.NotEmpty(t, tr.submitted)

	// A fresh API on the same Redis answers the calls whose connection broke; Idempotency-Key makes the replay
	// safe whether or not the first attempt ran.
	api2 := startDaemon(t, r, "api")
	for _, u := range unsure {
		_, ok := tr.do(api2.url(), u)
		require.True(t, ok, "replay of %s %s", u.kind, u.path)
	}

	st := r.Store(nil)
	sc := store.Scope{Account: "acct_alpha"}
	ctx := context.Background()
	eventually(t, 60*time.Second, "every accepted redaction and verification finished", func() bool {
		for _, id := range tr.redacted {
			s, err := st.GetSession(ctx, sc, id)
			require.NoError(t, err)
			if s.Redaction == nil || s.Redaction.Status != store.RedactionRedacted {
				return false
			}
		}
		for _, id := range tr.submitted {
			s, err := st.GetSession(ctx, sc, id)
			require.NoError(t, err)
			if s.Status != store.StatusVerified {
				return false
			}
		}
		return true
	})
	for _, id := range tr.redacted {
		evs, err := st.SessionEventIDs(ctx, sc, id)
		require.NoError(t, err)
		n := 0
		for _, evID := range evs {
			ev, err := st.GetEvent(ctx, sc, evID)
			require.NoError(t, err)
			if ev.Type == store.EventSessionRedacted {
				n++
			}
		}
		require.Equal(t, 1, n, "exactly one redacted event for %s", id)
	}
}
