package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/identityd/identityd/store/storetest"
)

// versionTransport sends every request with one Stripe-Version header, as an SDK pinned to it does.
type versionTransport struct{ version string }

func (v versionTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Stripe-Version", v.version)
	return http.DefaultTransport.RoundTrip(req)
}

// clientAt is d.client(spec) with every request sent in API version v.
func (d *daemon) clientAt(spec, v string) *stripe.Client {
	backends := stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL:               stripe.String(d.url()),
		MaxNetworkRetries: stripe.Int64(0),
		HTTPClient:        &http.Client{Timeout: 30 * time.Second, Transport: versionTransport{v}},
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	return stripe.NewClient(secretOf(spec), stripe.WithBackends(backends))
}

func TestStripeGo_StripeVersion(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "api")
	ctx := context.Background()

	vs, err := d.client(testKeyA).V1IdentityVerificationSessions.Create(ctx,
		&stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
	require.NoError(t, err)
	require.Equal(t, stripe.APIVersion, vs.LastResponse.Header.Get("Stripe-Version"), "stripe-go's own version, echoed")

	for _, v := range []string{"2022-11-15", "2026-10-28.endive"} { // python3-stripe 5.0.0's and stripe-node 23.1.0's
		p := &stripe.IdentityVerificationSessionRetrieveParams{}
		p.Headers = http.Header{"Stripe-Version": {v}}
		got, err := d.client(testKeyA).V1IdentityVerificationSessions.Retrieve(ctx, vs.ID, p)
		require.NoError(t, err)
		require.Equal(t, v, got.LastResponse.Header.Get("Stripe-Version"))
		require.Equal(t, vs.ID, got.ID)
	}

	p := &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")}
	p.Headers = http.Header{"Stripe-Version": {"2025-09-30.acacia"}} // the right day on the wrong train
	_, err = d.client(testKeyA).V1IdentityVerificationSessions.Create(ctx, p)
	var se *stripe.Error
	require.ErrorAs(t, err, &se)
	require.Equal(t, http.StatusBadRequest, se.HTTPStatusCode)
	require.Equal(t, stripe.ErrorTypeInvalidRequest, se.Type)
	require.Equal(t, "Stripe-Version", se.Param)
	require.Contains(t, se.Msg, "Invalid Stripe API version")
	list := listAll(t, d.client(testKeyA).V1IdentityVerificationSessions.List(ctx, &stripe.IdentityVerificationSessionListParams{}))
	require.Equal(t, []string{vs.ID}, list, "the rejected create changed nothing")
}

func TestStripeGo_ListByRelatedCustomerAccount(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "api")
	ctx := context.Background()
	// stripe-go as it is, and stripe-go sending python3-stripe 5.0.0's version.
	for account, sc := range map[string]*stripe.Client{"acct_custdahlia": d.client(testKeyA),
		"acct_cust20221115": d.clientAt(testKeyA, "2022-11-15")} {
		ids := createN(t, sc, 9, func(i int) *stripe.IdentityVerificationSessionCreateParams {
			p := &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")}
			if i%3 != 0 {
				p.RelatedCustomerAccount = stripe.String(account)
			}
			return p
		})
		var want []string
		for i, id := range slices.Backward(ids) {
			if i%3 != 0 {
				want = append(want, id)
			}
		}
		filtered := func() *stripe.IdentityVerificationSessionListParams {
			return &stripe.IdentityVerificationSessionListParams{RelatedCustomerAccount: stripe.String(account),
				ListParams: stripe.ListParams{Limit: stripe.Int64(2)}}
		}
		got := listAll(t, sc.V1IdentityVerificationSessions.List(ctx, filtered()))
		require.Equal(t, want, got, "every session of the account once, newest first, across 3 pages of 2")

		for vs, err := range sc.V1IdentityVerificationSessions.List(ctx, filtered()).All(ctx) {
			require.NoError(t, err)
			require.Equal(t, account, vs.RelatedCustomerAccount)
		}

		back := filtered()
		back.EndingBefore = stripe.String(want[len(want)-1])
		older := listAll(t, sc.V1IdentityVerificationSessions.List(ctx, back))
		require.Len(t, older, len(want)-1)
		require.Equal(t, want[len(want)-2], older[0], "stripe-go walks ending_before pages from the cursor")

		empty := sc.V1IdentityVerificationSessions.List(ctx, &stripe.IdentityVerificationSessionListParams{
			RelatedCustomerAccount: stripe.String("")})
		var se *stripe.Error
		require.ErrorAs(t, empty.Err(), &se)
		require.Equal(t, http.StatusBadRequest, se.HTTPStatusCode)
		require.Equal(t, "related_customer_account", se.Param)
	}
}

// versionReceiver is a webhook endpoint that keeps the raw bodies it verified (stripe-go's check of the
// body's api_version against the SDK's own is left to the test).
type versionReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	secret string
	bodies [][]byte
	bad    []string
}

func newVersionReceiver(t *testing.T) *versionReceiver {
	t.Helper()
	r := &versionReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err == nil {
			_, err = webhook.ConstructEventWithOptions(body, req.Header.Get("Stripe-Signature"), r.secret,
				webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
		}
		if err != nil {
			r.bad = append(r.bad, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.bodies = append(r.bodies, body)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *versionReceiver) got() (bodies [][]byte, bad []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...), append([]string(nil), r.bad...)
}

func TestWebhooks_EndpointAPIVersion(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve")
	sc := d.client(testKeyA)
	ctx := context.Background()
	receivers := map[string]*versionReceiver{}
	for _, v := range []string{"", "2022-11-15", "2026-10-28.endive"} {
		r := newVersionReceiver(t)
		p := &stripe.WebhookEndpointCreateParams{URL: stripe.String(r.URL),
			EnabledEvents: stripe.StringSlice([]string{"identity.verification_session.created"})}
		if v != "" {
			p.APIVersion = stripe.String(v)
		}
		ep, err := sc.V1WebhookEndpoints.Create(ctx, p)
		require.NoError(t, err)
		r.mu.Lock()
		r.secret = ep.Secret
		r.mu.Unlock()
		if v == "" {
			require.Empty(t, ep.APIVersion, "null: the account default")
			v = stripe.APIVersion
		} else {
			require.Equal(t, v, ep.APIVersion)
		}
		receivers[v] = r
	}
	vs, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
		Type: stripe.String("document"), RelatedCustomerAccount: stripe.String("acct_c1")})
	require.NoError(t, err)

	var shapes []map[string]any
	for v, r := range receivers {
		eventually(t, 20*time.Second, "the delivery in "+v, func() bool {
			bodies, _ := r.got()
			return len(bodies) == 1
		})
		bodies, bad := r.got()
		require.Empty(t, bad)
		var ev struct {
			APIVersion string `json:"api_version"`
			Data       struct {
				Object map[string]any `json:"object"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(bodies[0], &ev))
		require.Equal(t, v, ev.APIVersion, "each endpoint gets the event in its own version")
		require.Equal(t, vs.ID, ev.Data.Object["id"])
		shapes = append(shapes, ev.Data.Object)

		// stripe-go v85 accepts events of its own release train only, unless told to ignore the version.
		_, strict := webhook.ConstructEventIgnoringTolerance(bodies[0], signFor(t, bodies[0], r), r.secret)
		require.Equal(t, v == stripe.APIVersion, strict == nil, "%s: %v", v, strict)
	}
	require.Equal(t, shapes[0], shapes[1], "one shape of data.object serves every version")
	require.Equal(t, shapes[1], shapes[2])
}

// signFor signs body with r's secret the way Stripe-Signature is made.
func signFor(t *testing.T, body []byte, r *versionReceiver) string {
	t.Helper()
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: r.secret,
		Timestamp: time.Now()})
	return signed.Header
}
