package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store/storetest"
)

const whWait = 30 * time.Second

// TestWebhooks_StripeGoReceiver: a merchant receiver built on stripe-go's webhook.ConstructEvent (and the
// Standard Webhooks rules) gets every lifecycle event, signed, and each event ends with pending_webhooks 0.
func TestWebhooks_StripeGoReceiver(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--webhook-backoff", "200ms,200ms,200ms")
	sc := d.client(testKeyA)
	ctx := context.Background()
	rcv := whNewReceiver(t, nil)
	ep := whCreateEndpoint(t, sc, rcv.URL, "*")
	rcv.setSecret(ep.Secret)

	verifiedVS, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
		Type: stripe.String("document")})
	require.NoError(t, err)
	whSubmit(t, d, testKeyA, verifiedVS.ID, url.Values{"verified_outputs[first_name]": {"Jenny"}})
	canceledVS, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
		Type: stripe.String("id_number")})
	require.NoError(t, err)
	_, err = sc.V1IdentityVerificationSessions.Cancel(ctx, canceledVS.ID, nil)
	require.NoError(t, err)
	eventually(t, whWait, "verified", func() bool {
		vs, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, verifiedVS.ID, nil)
		require.NoError(t, err)
		return vs.Status == stripe.IdentityVerificationSessionStatusVerified
	})
	_, err = sc.V1IdentityVerificationSessions.Redact(ctx, verifiedVS.ID, nil)
	require.NoError(t, err)

	want := map[stripe.EventType][]string{
		stripe.EventTypeIdentityVerificationSessionCreated:    {verifiedVS.ID, canceledVS.ID},
		stripe.EventTypeIdentityVerificationSessionProcessing: {verifiedVS.ID},
		stripe.EventTypeIdentityVerificationSessionVerified:   {verifiedVS.ID},
		stripe.EventTypeIdentityVerificationSessionCanceled:   {canceledVS.ID},
		stripe.EventTypeIdentityVerificationSessionRedacted:   {verifiedVS.ID},
	}
	eventually(t, whWait, "every event delivered and acknowledged", func() bool {
		return len(rcv.acked()) == len(want) && whAllAcked(t, d, testKeyA)
	})
	for typ, sessions := range want {
		got := rcv.acked()[string(typ)]
		var ids []string
		for _, dlv := range got {
			require.Equal(t, stripe.APIVersion, dlv.event.APIVersion)
			require.False(t, dlv.event.Livemode)
			ids = append(ids, dlv.event.Data.Object["id"].(string))
		}
		require.ElementsMatch(t, sessions, ids, typ)
	}
	redacted := rcv.acked()[string(stripe.EventTypeIdentityVerificationSessionRedacted)][0]
	require.Equal(t, "redacted", redacted.event.Data.Object["redaction"].(map[string]any)["status"])

	as := whAttempts(t, d, testKeyA, ep.ID)
	require.Len(t, as, 6)
	for _, a := range as {
		require.Equal(t, "webhook_attempt", a.Object)
		require.Equal(t, "delivered", a.Outcome)
		require.Equal(t, 200, *a.StatusCode)
		require.Nil(t, a.Error)
	}
	require.Equal(t, 6.0, whMetric(t, d, whDeliveriesOutcome("delivered")))
	require.Equal(t, 1.0, whMetric(t, d, `identityd_events_emitted_total{type="identity.verification_session.redacted"}`))
	require.Equal(t, 2.0, whMetric(t, d, `identityd_events_emitted_total{type="identity.verification_session.created"}`))
}

// TestWebhooks_StandardWebhooksReceiver: a receiver that knows only the Standard Webhooks spec (no Stripe
// library) verifies deliveries; a tampered body does not verify.
func TestWebhooks_StandardWebhooksReceiver(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve")
	sc := d.client(testKeyA)
	type got struct {
		header http.Header
		body   []byte
	}
	ch := make(chan got, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch <- got{r.Header.Clone(), body}
	}))
	t.Cleanup(srv.Close)
	ep := whCreateEndpoint(t, sc, srv.URL, "identity.verification_session.created")
	vs, err := sc.V1IdentityVerificationSessions.Create(context.Background(), &stripe.IdentityVerificationSessionCreateParams{
		Type: stripe.String("document")})
	require.NoError(t, err)
	var g got
	select {
	case g = <-ch:
	case <-time.After(whWait):
		t.Fatal("no delivery")
	}
	require.NoError(t, whVerifyStandard(ep.Secret, g.header, g.body, time.Now()))
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			Object struct {
				ID string `json:"id"`
			} `json:"object"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(g.body, &ev))
	require.Equal(t, g.header.Get("webhook-id"), ev.ID)
	require.Equal(t, vs.ID, ev.Data.Object.ID)
	tampered := []byte(strings.Replace(string(g.body), vs.ID, "vs_someoneelse", 1))
	require.Error(t, whVerifyStandard(ep.Secret, g.header, tampered, time.Now()))
	require.Error(t, whVerifyStandard(ep.Secret, g.header, g.body, time.Now().Add(time.Hour)), "stale timestamp")
}

// TestWebhooks_RetryThenDelivered: an endpoint that fails twice and then answers 200 gets the event; every
// attempt is recorded.
func TestWebhooks_RetryThenDelivered(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--webhook-backoff", "100ms,100ms,100ms")
	sc := d.client(testKeyA)
	rcv := whNewReceiver(t, func(n int, _ stripe.Event) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	ep := whCreateEndpoint(t, sc, rcv.URL, "identity.verification_session.created")
	rcv.setSecret(ep.Secret)
	vs, err := sc.V1IdentityVerificationSessions.Create(context.Background(), &stripe.IdentityVerificationSessionCreateParams{
		Type: stripe.String("document")})
	require.NoError(t, err)

	eventually(t, whWait, "delivered on the third attempt", func() bool {
		return len(rcv.acked()["identity.verification_session.created"]) == 1 && whAllAcked(t, d, testKeyA)
	})
	got := rcv.deliveries()
	require.Len(t, got, 3)
	for _, dlv := range got {
		require.Equal(t, got[0].event.ID, dlv.event.ID, "every attempt sends the same event")
		require.Equal(t, vs.ID, dlv.event.Data.Object["id"])
	}
	as := whAttempts(t, d, testKeyA, ep.ID)
	require.Len(t, as, 3)
	var outcomes []string
	var codes []int
	for _, a := range as { // newest first
		outcomes = append(outcomes, a.Outcome)
		codes = append(codes, *a.StatusCode)
		require.Equal(t, got[0].event.ID, a.Event)
	}
	require.Equal(t, []string{"delivered", "retrying", "retrying"}, outcomes)
	require.Equal(t, []int{200, 500, 500}, codes)
	require.Equal(t, []int{3, 2, 1}, []int{as[0].Attempt, as[1].Attempt, as[2].Attempt})
	require.Equal(t, 2.0, whMetric(t, d, whDeliveriesOutcome("retrying")))
	require.Equal(t, 1.0, whMetric(t, d, whDeliveriesOutcome("delivered")))
	require.Equal(t, 0.0, whMetric(t, d, whDeliveriesOutcome("failed")))
	still, err := sc.V1WebhookEndpoints.Retrieve(context.Background(), ep.ID, nil)
	require.NoError(t, err)
	require.Equal(t, "enabled", still.Status)
}

// TestWebhooks_AlwaysFailingIsDisabled: after the whole (test-shortened) schedule the delivery fails for
// good, pending_webhooks drops to 0 and the endpoint is disabled, so later events are not queued for it.
func TestWebhooks_AlwaysFailingIsDisabled(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--webhook-backoff", "100ms,100ms,100ms")
	sc := d.client(testKeyA)
	ctx := context.Background()
	rcv := whNewReceiver(t, func(int, stripe.Event) int { return http.StatusServiceUnavailable })
	ep := whCreateEndpoint(t, sc, rcv.URL, "*")
	rcv.setSecret(ep.Secret)
	_, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
		Type: stripe.String("document")})
	require.NoError(t, err)

	eventually(t, whWait, "endpoint disabled", func() bool {
		got, err := sc.V1WebhookEndpoints.Retrieve(ctx, ep.ID, nil)
		require.NoError(t, err)
		return got.Status == "disabled"
	})
	require.True(t, whAllAcked(t, d, testKeyA), "a failed delivery is no longer pending")
	require.Len(t, rcv.deliveries(), 4, "one attempt and one per backoff step")
	as := whAttempts(t, d, testKeyA, ep.ID)
	require.Len(t, as, 4)
	require.Equal(t, "failed", as[0].Outcome)
	require.Equal(t, 503, *as[0].StatusCode)
	require.Equal(t, "HTTP 503", *as[0].Error)
	for _, a := range as[1:] {
		require.Equal(t, "retrying", a.Outcome)
	}
	require.Equal(t, 1.0, whMetric(t, d, whDeliveriesOutcome("failed")))
	require.Equal(t, 3.0, whMetric(t, d, whDeliveriesOutcome("retrying")))
	require.Equal(t, 1.0, whMetric(t, d, `identityd_webhook_endpoints_disabled_total{reason="delivery_failed"}`))
	var raw map[string]any
	whCall(t, d, testKeyA, http.MethodGet, "/v1/webhook_endpoints/"+ep.ID, nil, &raw)
	require.Equal(t, "delivery_failed", raw["disabled_reason"], "the endpoint says why identityd disabled it")
	require.InDelta(t, float64(time.Now().Unix()), raw["disabled_at"], 60)
	require.Contains(t, d.logs.String(), "webhook endpoint disabled")

	// A disabled endpoint is not sent later events; enabling it again resumes deliveries.
	vs, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
		Type: stripe.String("document")})
	require.NoError(t, err)
	require.True(t, whAllAcked(t, d, testKeyA))
	whCall(t, d, testKeyA, http.MethodPost, "/v1/webhook_endpoints/"+ep.ID, url.Values{"disabled": {"true"}}, &raw)
	require.Equal(t, "delivery_failed", raw["disabled_reason"], "disabling it again keeps why identityd disabled it")
	_, err = sc.V1WebhookEndpoints.Update(ctx, ep.ID, &stripe.WebhookEndpointUpdateParams{Disabled: new(false)})
	require.NoError(t, err)
	whCall(t, d, testKeyA, http.MethodGet, "/v1/webhook_endpoints/"+ep.ID, nil, &raw)
	require.Equal(t, "enabled", raw["status"])
	require.Nil(t, raw["disabled_reason"], "re-enabling clears it")
	require.Nil(t, raw["disabled_at"])
	_, err = sc.V1IdentityVerificationSessions.Cancel(ctx, vs.ID, nil)
	require.NoError(t, err)
	require.False(t, whAllAcked(t, d, testKeyA), "the .canceled event is pending for the re-enabled endpoint")
}

// TestWebhooks_EnabledEventsFiltering: each endpoint gets exactly the types it listed; `*` gets all of them,
// .redacted included; a live-mode endpoint gets no test-mode event.
func TestWebhooks_EnabledEventsFiltering(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve")
	sc := d.client(testKeyA)
	ctx := context.Background()
	newRcv := func(c *stripe.Client, events ...string) *whReceiver {
		r := whNewReceiver(t, nil)
		r.setSecret(whCreateEndpoint(t, c, r.URL, events...).Secret)
		return r
	}
	created := newRcv(sc, "identity.verification_session.created")
	endings := newRcv(sc, "identity.verification_session.canceled", "identity.verification_session.redacted")
	all := newRcv(sc, "*")
	live := newRcv(d.client(liveKeyA), "*")

	vs, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
		Type: stripe.String("document")})
	require.NoError(t, err)
	_, err = sc.V1IdentityVerificationSessions.Redact(ctx, vs.ID, nil) // requires_input: canceled, then redacted
	require.NoError(t, err)
	eventually(t, whWait, "all deliveries done", func() bool {
		return len(all.deliveries()) == 3 && whAllAcked(t, d, testKeyA)
	})
	types := func(r *whReceiver) []string {
		var out []string
		for _, dlv := range r.deliveries() {
			out = append(out, string(dlv.event.Type))
		}
		return out
	}
	require.Equal(t, []string{"identity.verification_session.created"}, types(created))
	require.ElementsMatch(t, []string{"identity.verification_session.canceled", "identity.verification_session.redacted"}, types(endings))
	require.ElementsMatch(t, []string{"identity.verification_session.created", "identity.verification_session.canceled",
		"identity.verification_session.redacted"}, types(all))
	require.Empty(t, live.deliveries())
}

// TestWebhooks_EndpointAPI: Stripe shapes and validation of the endpoints API.
func TestWebhooks_EndpointAPI(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve")
	sc := d.client(testKeyA)
	ctx := context.Background()

	params := &stripe.WebhookEndpointCreateParams{URL: stripe.String("https://merchant.example/hooks"),
		EnabledEvents: stripe.StringSlice([]string{"identity.verification_session.verified"}),
		Description:   stripe.String("verified sessions"), APIVersion: stripe.String(stripe.APIVersion)}
	params.AddMetadata("team", "kyc")
	ep, err := sc.V1WebhookEndpoints.Create(ctx, params)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(ep.ID, "we_"))
	require.Equal(t, "webhook_endpoint", ep.Object)
	require.Equal(t, "enabled", ep.Status)
	require.Equal(t, stripe.APIVersion, ep.APIVersion)
	require.Equal(t, "verified sessions", ep.Description)
	require.Equal(t, map[string]string{"team": "kyc"}, ep.Metadata)
	require.False(t, ep.Livemode)

	up := &stripe.WebhookEndpointUpdateParams{URL: stripe.String("http://127.0.0.1:9/other"), Disabled: new(true),
		EnabledEvents: stripe.StringSlice([]string{"*"})}
	up.AddMetadata("team", "")
	up.AddMetadata("owner", "ops")
	got, err := sc.V1WebhookEndpoints.Update(ctx, ep.ID, up)
	require.NoError(t, err)
	require.Equal(t, "disabled", got.Status)
	require.Equal(t, "http://127.0.0.1:9/other", got.URL)
	require.Equal(t, []string{"*"}, got.EnabledEvents)
	require.Equal(t, map[string]string{"owner": "ops"}, got.Metadata)
	require.Equal(t, "verified sessions", got.Description)

	second := whCreateEndpoint(t, sc, "https://merchant.example/second", "*")
	listParams := &stripe.WebhookEndpointListParams{}
	listParams.Limit = stripe.Int64(1) // one per page: paging with starting_after
	var listed []string
	for e, err := range sc.V1WebhookEndpoints.List(ctx, listParams).All(ctx) {
		require.NoError(t, err)
		require.Empty(t, e.Secret)
		listed = append(listed, e.ID)
	}
	require.ElementsMatch(t, []string{ep.ID, second.ID}, listed)

	del, err := sc.V1WebhookEndpoints.Delete(ctx, ep.ID, nil)
	require.NoError(t, err)
	require.True(t, del.Deleted)
	_, err = sc.V1WebhookEndpoints.Retrieve(ctx, ep.ID, nil)
	whRequireStripeError(t, err, 404, "resource_missing", "id")
	_, err = d.client(testKeyB).V1WebhookEndpoints.Retrieve(ctx, second.ID, nil)
	whRequireStripeError(t, err, 404, "resource_missing", "id")

	bad := []struct {
		name        string
		params      *stripe.WebhookEndpointCreateParams
		code, param string
	}{
		{"FTP", &stripe.WebhookEndpointCreateParams{URL: stripe.String("ftp://merchant.example/x"),
			EnabledEvents: stripe.StringSlice([]string{"*"})}, "url_invalid", "url"},
		{"Relative", &stripe.WebhookEndpointCreateParams{URL: stripe.String("/hooks"),
			EnabledEvents: stripe.StringSlice([]string{"*"})}, "url_invalid", "url"},
		{"NoURL", &stripe.WebhookEndpointCreateParams{EnabledEvents: stripe.StringSlice([]string{"*"})}, "parameter_missing", "url"},
		{"NoEvents", &stripe.WebhookEndpointCreateParams{URL: stripe.String("https://m.example")}, "parameter_missing", "enabled_events"},
		{"UnknownEvent", &stripe.WebhookEndpointCreateParams{URL: stripe.String("https://m.example"),
			EnabledEvents: stripe.StringSlice([]string{"charge.succeeded"})}, "parameter_invalid", "enabled_events"},
		{"UnpublishedAPIVersion", &stripe.WebhookEndpointCreateParams{URL: stripe.String("https://m.example"),
			EnabledEvents: stripe.StringSlice([]string{"*"}), APIVersion: stripe.String("2020-08-28")}, "parameter_invalid", "api_version"},
		{"MalformedAPIVersion", &stripe.WebhookEndpointCreateParams{URL: stripe.String("https://m.example"),
			EnabledEvents: stripe.StringSlice([]string{"*"}), APIVersion: stripe.String("2026-3-25.dahlia")}, "parameter_invalid", "api_version"},
		{"Connect", &stripe.WebhookEndpointCreateParams{URL: stripe.String("https://m.example"),
			EnabledEvents: stripe.StringSlice([]string{"*"}), Connect: new(true)}, "parameter_invalid", "connect"},
	}
	for _, tc := range bad {
		_, err := sc.V1WebhookEndpoints.Create(ctx, tc.params)
		whRequireStripeError(t, err, 400, tc.code, tc.param)
	}
	_, err = sc.V1WebhookEndpoints.Update(ctx, second.ID, &stripe.WebhookEndpointUpdateParams{URL: stripe.String("mailto:x@y")})
	whRequireStripeError(t, err, 400, "url_invalid", "url")
	still, err := sc.V1WebhookEndpoints.Retrieve(ctx, second.ID, nil)
	require.NoError(t, err)
	require.Equal(t, "https://merchant.example/second", still.URL, "a rejected request changes nothing")
}

func whRequireStripeError(t *testing.T, err error, status int, code, param string) {
	t.Helper()
	require.Error(t, err)
	var se *stripe.Error
	require.ErrorAs(t, err, &se)
	require.Equal(t, status, se.HTTPStatusCode, se.Msg)
	require.Equal(t, code, string(se.Code), se.Msg)
	require.Equal(t, param, se.Param)
}
