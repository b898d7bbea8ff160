package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store/storetest"
)

// testKeyC is a third test-mode account.
const testKeyC = "sk_test_charlie00000000000000000=acct_charlie"

// hungReceiver accepts webhook requests and never answers them until the test ends. It counts the requests
// in flight, in all and per path, and the highest counts it saw.
type hungReceiver struct {
	*httptest.Server
	release chan struct{}

	mu                    sync.Mutex
	inFlight, maxInFlight int
	perPath, maxPerPath   map[string]int
	ended                 int // requests that ended (the client gave up) before the test did
}

func newHungReceiver(t testing.TB) *hungReceiver {
	t.Helper()
	h := &hungReceiver{release: make(chan struct{}), perPath: map[string]int{}, maxPerPath: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	t.Cleanup(func() { close(h.release) }) // runs first: the handlers return, then the server closes
	return h
}

func (h *hungReceiver) serve(_ http.ResponseWriter, r *http.Request) {
	// Read the body: only then does the server watch the connection, and cancel r.Context() when the client
	// gives up (a timed-out attempt is no longer in flight).
	_, _ = io.Copy(io.Discard, r.Body)
	path := r.URL.Path
	h.mu.Lock()
	h.inFlight++
	h.perPath[path]++
	h.maxInFlight = max(h.maxInFlight, h.inFlight)
	h.maxPerPath[path] = max(h.maxPerPath[path], h.perPath[path])
	h.mu.Unlock()
	ended := false
	select {
	case <-h.release:
	case <-r.Context().Done():
		ended = true
	}
	h.mu.Lock()
	h.inFlight--
	h.perPath[path]--
	if ended {
		h.ended++
	}
	h.mu.Unlock()
}

// snapshot returns the requests in flight now, the most seen at once, the most one path saw at once, and how
// many requests ended before the test.
func (h *hungReceiver) snapshot() (inFlight, maxInFlight, maxPerPath, ended int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.maxPerPath {
		maxPerPath = max(maxPerPath, n)
	}
	return h.inFlight, h.maxInFlight, maxPerPath, h.ended
}

// TestWebhooks_HungReceiverHoldsNoRedactionSlot: one account's 16 endpoints point at a receiver that never
// answers, with many events owed to each. Each endpoint holds at most its limit of delivery slots, the
// account at most half of the delivery pool; once they are all taken, another account's redaction completes
// and a third account's deliveries to a healthy receiver arrive, while the hung account's are still owed.
func TestWebhooks_HungReceiverHoldsNoRedactionSlot(t *testing.T) {
	t.Parallel()
	const endpoints, perEndpoint, pool = 16, 2, 64
	d := startDaemon(t, storetest.New(t), "serve", "--api-key", testKeyC,
		"--webhook-concurrency", strconv.Itoa(pool), "--webhook-endpoint-concurrency", strconv.Itoa(perEndpoint))
	ctx := context.Background()
	hung := newHungReceiver(t)
	alpha := d.client(testKeyA)
	for i := range endpoints {
		whCreateEndpoint(t, alpha, fmt.Sprintf("%s/hook/%d", hung.URL, i), "*")
	}
	for range 10 { // 10 .created events × 16 endpoints
		_, err := alpha.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
			Type: stripe.String("document")})
		require.NoError(t, err)
	}
	eventually(t, whWait, "every hung endpoint holds its limit of slots", func() bool {
		inFlight, _, _, _ := hung.snapshot()
		return inFlight == endpoints*perEndpoint
	})

	// Another account's redaction, start to end, while the hung receiver holds its requests.
	bravo := d.client(testKeyB)
	vs, err := bravo.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
		Type: stripe.String("document")})
	require.NoError(t, err)
	whSubmit(t, d, testKeyB, vs.ID, nil)
	eventually(t, whWait, "verified", func() bool {
		got, err := bravo.V1IdentityVerificationSessions.Retrieve(ctx, vs.ID, nil)
		require.NoError(t, err)
		return got.Status == stripe.IdentityVerificationSessionStatusVerified
	})
	// And a third account's deliveries to a healthy receiver.
	healthy := whNewReceiver(t, nil)
	healthy.setSecret(whCreateEndpoint(t, d.client(testKeyC), healthy.URL, "*").Secret)
	for range 5 {
		_, err := d.client(testKeyC).V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
			Type: stripe.String("document")})
		require.NoError(t, err)
	}
	_, err = bravo.V1IdentityVerificationSessions.Redact(ctx, vs.ID, nil)
	require.NoError(t, err)
	eventually(t, whWait, "redacted and delivered", func() bool {
		got, err := bravo.V1IdentityVerificationSessions.Retrieve(ctx, vs.ID, nil)
		require.NoError(t, err)
		return got.Redaction != nil && got.Redaction.Status == stripe.IdentityVerificationSessionRedactionStatusRedacted &&
			len(healthy.acked()["identity.verification_session.created"]) == 5
	})

	// Each hung attempt ends only when the client gives up after 10 s, so how many are still in flight now
	// depends on the machine's speed; that the hung account's deliveries are all still owed does not.
	require.False(t, whAllAcked(t, d, testKeyA), "nothing waited for the hung endpoints' deliveries")
	_, maxInFlight, maxPerPath, _ := hung.snapshot()
	require.LessOrEqual(t, maxPerPath, perEndpoint, "no endpoint ever held more than its limit of slots")
	require.LessOrEqual(t, maxInFlight, pool/2, "one account never held more than half of the pool")
	require.Empty(t, healthy.bad)
	require.Positive(t, whMetric(t, d, `identityd_webhook_deliveries_deferred_total{reason="endpoint_busy"}`),
		"the hung endpoints' other deliveries were deferred, not dialled")
}
