package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/api"
	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// Keys of two test-mode accounts and the live mode of the first.
const (
	keyA     = "sk_test_alpha0000000000000000"
	keyB     = "sk_test_bravo0000000000000000"
	liveKeyA = "sk_live_alpha0000000000000000"
)

// fakeQueue records what the API enqueues. When gate is set, EnqueueRedact signals entered and then waits for
// gate to close, so a test can hold a request in flight.
type fakeQueue struct {
	mu      sync.Mutex
	verify  []string
	redact  []string
	bulk    []string
	entered chan struct{}
	// redeliveries lists the webhook redelivery jobs enqueued.
	redeliveries []string
	gate         chan struct{}
}

func (q *fakeQueue) EnqueueVerify(_ context.Context, _ store.Scope, sessionID, submissionID string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.verify = append(q.verify, sessionID+"|"+submissionID)
	return nil
}

func (q *fakeQueue) EnqueueRedact(_ context.Context, _ store.Scope, sessionID string) error {
	q.mu.Lock()
	q.redact = append(q.redact, sessionID)
	entered, gate := q.entered, q.gate
	q.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		<-gate
	}
	return nil
}

func (q *fakeQueue) EnqueueBulkRedaction(_ context.Context, _ store.Scope, id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bulk = append(q.bulk, id)
	return nil
}

func (q *fakeQueue) EnqueueWebhookRedelivery(_ context.Context, _ store.Scope, id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.redeliveries = append(q.redeliveries, id)
	return nil
}

func (q *fakeQueue) calls() (verify, redact []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.verify...), append([]string(nil), q.redact...)
}

// apiBundle is one test's API server, on its own Redis namespace.
type apiBundle struct {
	srv   *httptest.Server
	st    *store.Store
	redis *storetest.Redis
	queue *fakeQueue
	clock *storetest.FakeClock
}

func setupAPI(t *testing.T) *apiBundle {
	t.Helper()
	r := storetest.New(t)
	clock := storetest.NewFakeClock(time.Unix(1_700_000_000, 0))
	st := r.Store(clock)
	var keys []api.APIKey
	for _, spec := range []string{keyA + "=acct_alpha", keyB + "=acct_bravo", liveKeyA + "=acct_alpha"} {
		k, err := api.ParseAPIKey(spec)
		require.NoError(t, err)
		keys = append(keys, k)
	}
	ring, err := api.NewKeyring(keys)
	require.NoError(t, err)
	q := &fakeQueue{}
	metrics := events.NewMetrics(nil)
	srv := httptest.NewServer(api.NewServer(api.Config{Store: st, Keys: ring, Queue: q,
		Emitter: &events.Emitter{Metrics: metrics}, Metrics: metrics}))
	t.Cleanup(srv.Close)
	return &apiBundle{srv: srv, st: st, redis: r, queue: q, clock: clock}
}

// response is what a test looks at in an HTTP answer.
type response struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// errField returns error.<name> as a string ("" when absent).
func (r *response) errField(name string) string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e[name].(string)
	return s
}

// str returns a top-level string field.
func (r *response) str(name string) string {
	s, _ := r.body[name].(string)
	return s
}

// request is one HTTP call; key "" sends no Authorization.
type request struct {
	method, path, key, body string
	header                  map[string]string
}

func (b *apiBundle) do(t *testing.T, rq request) *response {
	t.Helper()
	res, err := b.tryDo(rq)
	require.NoError(t, err)
	require.Regexp(t, `^req_[0-9A-Za-z]{24}$`, res.header.Get("Request-Id"), "Request-Id on every response")
	return res
}

// tryDo is do without assertions, for goroutines (require must not stop a test from another goroutine).
func (b *apiBundle) tryDo(rq request) (*response, error) {
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	req, err := http.NewRequest(rq.method, b.srv.URL+rq.path, body)
	if err != nil {
		return nil, err
	}
	if rq.key != "" {
		req.Header.Set("Authorization", "Bearer "+rq.key)
	}
	if rq.method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	res, err := b.srv.Client().Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	out := &response{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		return nil, fmt.Errorf("answer is not JSON (%w): %s", err, raw)
	}
	return out, nil
}

// post sends a form POST with key A.
func (b *apiBundle) post(t *testing.T, path, form string) *response {
	t.Helper()
	return b.do(t, request{method: http.MethodPost, path: path, key: keyA, body: form})
}

// get sends a GET with key A.
func (b *apiBundle) get(t *testing.T, path string) *response {
	t.Helper()
	return b.do(t, request{method: http.MethodGet, path: path, key: keyA})
}

// createSession makes a session with key and returns its id.
func (b *apiBundle) createSession(t *testing.T, key, form string) string {
	t.Helper()
	res := b.do(t, request{method: http.MethodPost, path: "/v1/identity/verification_sessions", key: key, body: form})
	require.Equal(t, http.StatusOK, res.status, res.raw)
	return res.str("id")
}

// snapshot returns every key of the test's namespace with its contents, except request logs and idempotency
// entries (which every authenticated request may write by design).
func (b *apiBundle) snapshot(t *testing.T) map[string]string {
	t.Helper()
	all, err := storetest.ScanAll(context.Background(), b.redis.Client)
	require.NoError(t, err)
	out := map[string]string{}
	for k, v := range all {
		if !strings.HasPrefix(k, b.redis.KeyPrefix+":") || strings.Contains(k, ":req:") ||
			strings.Contains(k, ":ix:req") || strings.Contains(k, ":idem:") {
			continue
		}
		out[k] = v
	}
	return out
}

// requireUnchanged fails with the names of the keys that appeared, vanished or changed (not their contents,
// which would bury the message).
func requireUnchanged(t *testing.T, before, after map[string]string, what string) {
	t.Helper()
	var diff []string
	for k, v := range after {
		if old, ok := before[k]; !ok {
			diff = append(diff, "+"+k)
		} else if old != v {
			diff = append(diff, "~"+k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			diff = append(diff, "-"+k)
		}
	}
	sort.Strings(diff)
	require.Empty(t, diff, "%s changed the store", what)
}
