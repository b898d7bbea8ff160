package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"
)

// whDelivery is one request a test receiver got, after verifying it.
type whDelivery struct {
	event  stripe.Event
	body   string
	status int
}

// whReceiver is a merchant's webhook endpoint on loopback. It verifies every request with stripe-go's
// webhook.ConstructEvent and with the Standard Webhooks rules, answers with status(n, event) (n counts
// requests from 1), and keeps what it got. A request that fails verification is answered 400 and recorded
// in bad.
type whReceiver struct {
	*httptest.Server
	t      *testing.T
	mu     sync.Mutex
	secret string
	status func(n int, ev stripe.Event) int
	got    []whDelivery
	bad    []string
}

func whNewReceiver(t *testing.T, status func(n int, ev stripe.Event) int) *whReceiver {
	t.Helper()
	if status == nil {
		status = func(int, stripe.Event) int { return http.StatusOK }
	}
	r := &whReceiver{t: t, status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *whReceiver) setSecret(secret string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = secret
}

func (r *whReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		err = whVerifyStandard(r.secret, req.Header, body, time.Now())
	}
	var ev stripe.Event
	if err == nil {
		ev, err = webhook.ConstructEvent(body, req.Header.Get("Stripe-Signature"), r.secret)
	}
	if err != nil {
		r.bad = append(r.bad, err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	status := r.status(len(r.got)+1, ev)
	r.got = append(r.got, whDelivery{event: ev, body: string(body), status: status})
	w.WriteHeader(status)
}

func (r *whReceiver) deliveries() []whDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Empty(r.t, r.bad, "every request must verify")
	return append([]whDelivery(nil), r.got...)
}

// acked returns the events acknowledged with a 2xx, by type.
func (r *whReceiver) acked() map[string][]whDelivery {
	out := map[string][]whDelivery{}
	for _, d := range r.deliveries() {
		if d.status >= 200 && d.status < 300 {
			out[string(d.event.Type)] = append(out[string(d.event.Type)], d)
		}
	}
	return out
}

// whVerifyStandard verifies a request as a Standard Webhooks receiver does: webhook-id, webhook-timestamp
// within five minutes, and a "v1,<base64>" signature over "id.timestamp.body" keyed with the base64-decoded
// part of the secret after "whsec_". Written from that spec, not with identityd's signer.
func whVerifyStandard(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("standard webhooks headers missing")
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(t, 0)).Abs() > 5*time.Minute {
		return errors.New("webhook-timestamp invalid or out of tolerance")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		return errors.New("secret is not whsec_<base64>")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for s := range strings.FieldsSeq(sigs) {
		version, sig, _ := strings.Cut(s, ",")
		got, err := base64.StdEncoding.DecodeString(sig)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching webhook-signature")
}

// whCreateEndpoint registers url for events through stripe-go and returns it (with its secret).
func whCreateEndpoint(t *testing.T, sc *stripe.Client, url string, events ...string) *stripe.WebhookEndpoint {
	t.Helper()
	ep, err := sc.V1WebhookEndpoints.Create(context.Background(), &stripe.WebhookEndpointCreateParams{
		URL: stripe.String(url), EnabledEvents: stripe.StringSlice(events)})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(ep.Secret, "whsec_"))
	return ep
}

// whCall makes a raw API request with key spec and decodes a 2xx JSON answer into out.
func whCall(t *testing.T, d *daemon, spec, method, path string, form url.Values, out any) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, d.url()+path, body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+secretOf(spec))
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Less(t, resp.StatusCode, 300, "%s %s: %s", method, path, raw)
	if out != nil {
		require.NoError(t, json.Unmarshal(raw, out))
	}
}

// whAttempt is a webhook attempt as GET /v1/webhook_endpoints/{id}/attempts shows it.
type whAttempt struct {
	ID         string  `json:"id"`
	Object     string  `json:"object"`
	Event      string  `json:"event"`
	EventType  string  `json:"event_type"`
	Attempt    int     `json:"attempt"`
	Outcome    string  `json:"outcome"`
	StatusCode *int    `json:"status_code"`
	LatencyMS  int64   `json:"latency_ms"`
	Error      *string `json:"error"`
}

func whAttempts(t *testing.T, d *daemon, spec, endpointID string) []whAttempt {
	t.Helper()
	var list struct {
		Data []whAttempt `json:"data"`
	}
	whCall(t, d, spec, http.MethodGet, "/v1/webhook_endpoints/"+endpointID+"/attempts?limit=100", nil, &list)
	return list.Data
}

// whSubmit stands in for the end user finishing the hosted flow with the given data.
func whSubmit(t *testing.T, d *daemon, spec, sessionID string, form url.Values) {
	t.Helper()
	whCall(t, d, spec, http.MethodPost, "/v1/test_helpers/identity/verification_sessions/"+sessionID+"/submit", form, nil)
}

// whMetric returns the value of one sample line of /metrics ("name{labels}"), 0 when absent.
func whMetric(t *testing.T, d *daemon, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + d.main.AdminAddr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			require.NoError(t, err)
			return v
		}
	}
	return 0
}

// whAllAcked reports whether every event of the key's account has pending_webhooks 0.
func whAllAcked(t *testing.T, d *daemon, spec string) bool {
	t.Helper()
	params := &stripe.EventListParams{}
	params.Limit = stripe.Int64(100)
	for ev, err := range d.client(spec).V1Events.List(context.Background(), params).All(context.Background()) {
		require.NoError(t, err)
		if ev.PendingWebhooks != 0 {
			return false
		}
	}
	return true
}

func whDeliveriesOutcome(outcome string) string {
	return fmt.Sprintf(`identityd_webhook_deliveries_total{outcome=%q}`, outcome)
}
