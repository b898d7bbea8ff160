package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store/storetest"
)

func eventIDs(t *testing.T, sc *stripe.Client, p *stripe.EventListParams) []string {
	t.Helper()
	ids := []string{}
	for ev, err := range sc.V1Events.List(context.Background(), p).All(context.Background()) {
		require.NoError(t, err)
		ids = append(ids, ev.ID)
	}
	return ids
}

// TestStripeGo_EventFilters: stripe-go lists events by a wildcard type and by delivery_success, where an
// event whose delivery to one endpoint failed for good is among the unsuccessful ones.
func TestStripeGo_EventFilters(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--webhook-backoff", "50ms")
	sc := d.client(testKeyA)
	ctx := context.Background()
	ok := whNewReceiver(t, nil)
	okEP := whCreateEndpoint(t, sc, ok.URL, "*")
	ok.setSecret(okEP.Secret)
	failing := whNewReceiver(t, func(int, stripe.Event) int { return http.StatusInternalServerError })
	failEP := whCreateEndpoint(t, sc, failing.URL, "identity.verification_session.canceled")
	failing.setSecret(failEP.Secret)

	vs, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
		Type: stripe.String("document")})
	require.NoError(t, err)
	_, err = sc.V1IdentityVerificationSessions.Cancel(ctx, vs.ID, nil)
	require.NoError(t, err)

	byType := func(typ string) []string {
		return eventIDs(t, sc, &stripe.EventListParams{Type: stripe.String(typ)})
	}
	all := byType("identity.verification_session.*")
	require.Len(t, all, 2)
	canceled, created := all[0], all[1]
	require.Equal(t, []string{canceled}, byType("*.canceled"))

	eventually(t, whWait, "the failing endpoint's delivery is final", func() bool {
		for _, a := range whAttempts(t, d, testKeyA, failEP.ID) {
			if a.Outcome == "failed" {
				return true
			}
		}
		return false
	})
	eventually(t, whWait, "the working endpoint acknowledged both", func() bool {
		return len(ok.acked()) == 2
	})
	require.Equal(t, []string{canceled}, eventIDs(t, sc, &stripe.EventListParams{DeliverySuccess: new(false)}))
	require.Equal(t, []string{created}, eventIDs(t, sc, &stripe.EventListParams{DeliverySuccess: new(true)}))
}

// TestWebhooks_RetryEvent: POST /v1/events/{id}/retry resends one event to one endpoint now — after its
// delivery failed for good and the endpoint was enabled again, and after a delivery that had succeeded.
func TestWebhooks_RetryEvent(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--webhook-backoff", "50ms")
	sc := d.client(testKeyA)
	ctx := context.Background()
	var up atomic.Bool
	rcv := whNewReceiver(t, func(int, stripe.Event) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	ep := whCreateEndpoint(t, sc, rcv.URL, "identity.verification_session.created")
	rcv.setSecret(ep.Secret)
	vs, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
		Type: stripe.String("document")})
	require.NoError(t, err)
	evs := eventIDs(t, sc, &stripe.EventListParams{Type: stripe.String("identity.verification_session.created")})
	require.Len(t, evs, 1)
	evID := evs[0]

	eventually(t, whWait, "the delivery fails for good and disables the endpoint", func() bool {
		got, err := sc.V1WebhookEndpoints.Retrieve(ctx, ep.ID, nil)
		require.NoError(t, err)
		return got.Status == "disabled"
	})
	require.Equal(t, []string{evID}, eventIDs(t, sc, &stripe.EventListParams{DeliverySuccess: new(false)}))
	var failure struct {
		Error struct {
			Code  string `json:"code"`
			Param string `json:"param"`
		} `json:"error"`
	}
	res := d.form(testKeyA).post(t, "/v1/events/"+evID+"/retry", url.Values{"webhook_endpoint": {ep.ID}})
	require.Equal(t, http.StatusBadRequest, res.Status, "a disabled endpoint gets nothing: %s", res.Raw)
	require.NoError(t, json.Unmarshal([]byte(res.Raw), &failure))
	require.Equal(t, "webhook_endpoint", failure.Error.Param)

	_, err = sc.V1WebhookEndpoints.Update(ctx, ep.ID, &stripe.WebhookEndpointUpdateParams{Disabled: new(false)})
	require.NoError(t, err)
	up.Store(true)
	var ev struct {
		ID              string `json:"id"`
		Object          string `json:"object"`
		PendingWebhooks int    `json:"pending_webhooks"`
	}
	whCall(t, d, testKeyA, http.MethodPost, "/v1/events/"+evID+"/retry", url.Values{"webhook_endpoint": {ep.ID}}, &ev)
	require.Equal(t, evID, ev.ID)
	require.Equal(t, "event", ev.Object)
	eventually(t, whWait, "the resend is acknowledged", func() bool {
		return len(rcv.acked()["identity.verification_session.created"]) == 1
	})
	got := rcv.acked()["identity.verification_session.created"][0]
	require.Equal(t, evID, got.event.ID)
	require.Equal(t, vs.ID, got.event.Data.Object["id"])
	eventually(t, whWait, "the event counts as delivered", func() bool {
		return len(eventIDs(t, sc, &stripe.EventListParams{DeliverySuccess: new(false)})) == 0
	})

	// A delivered event can be sent again too.
	whCall(t, d, testKeyA, http.MethodPost, "/v1/events/"+evID+"/retry", url.Values{"webhook_endpoint": {ep.ID}}, &ev)
	eventually(t, whWait, "the second resend is acknowledged", func() bool {
		return len(rcv.acked()["identity.verification_session.created"]) == 2
	})
	// The receiver sees the request before the worker records the attempt's outcome.
	want := map[string]int{"retrying": 1, "failed": 1, "delivered": 2}
	outcomes := map[string]int{}
	eventually(t, whWait, "every attempt is recorded", func() bool {
		outcomes = map[string]int{}
		for _, a := range whAttempts(t, d, testKeyA, ep.ID) {
			outcomes[a.Outcome]++
		}
		return outcomes["delivered"] == want["delivered"]
	})
	require.Equal(t, want, outcomes)
}
