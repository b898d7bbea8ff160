package main

import (
	"context"
	"net/http"
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
	require.Equal(t, []string{canceled}, eventIDs(t, sc, &stripe.EventListParams{DeliverySuccess: stripe.Bool(false)}))
	require.Equal(t, []string{created}, eventIDs(t, sc, &stripe.EventListParams{DeliverySuccess: stripe.Bool(true)}))
}
