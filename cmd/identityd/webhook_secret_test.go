package main

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store/storetest"
)

// TestWebhooks_RollSecret: a stripe-go and Standard Webhooks receiver keeps verifying with the old secret
// after a roll, then with the new one; after a roll with expires_in=0 the replaced secret no longer verifies.
func TestWebhooks_RollSecret(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--webhook-backoff", "1h")
	sc := d.client(testKeyA)
	ctx := context.Background()
	rcv := whNewReceiver(t, nil)
	ep := whCreateEndpoint(t, sc, rcv.URL, "identity.verification_session.created")
	rcv.setSecret(ep.Secret)
	newSession := func() {
		_, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
		require.NoError(t, err)
	}
	roll := func(form url.Values) string {
		var rolled struct {
			ID     string `json:"id"`
			Secret string `json:"secret"`
		}
		whCall(t, d, testKeyA, http.MethodPost, "/v1/webhook_endpoints/"+ep.ID+"/roll_secret", form, &rolled)
		require.Equal(t, ep.ID, rolled.ID)
		require.NotEqual(t, ep.Secret, rolled.Secret)
		return rolled.Secret
	}

	second := roll(url.Values{})
	newSession()
	eventually(t, whWait, "a delivery verified with the old secret", func() bool { return len(rcv.deliveries()) == 1 })
	rcv.setSecret(second)
	newSession()
	eventually(t, whWait, "a delivery verified with the new secret", func() bool { return len(rcv.deliveries()) == 2 })

	third := roll(url.Values{"expires_in": {"0"}})
	newSession()
	eventually(t, whWait, "a delivery the replaced secret does not verify", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return len(rcv.bad) == 1
	})
	rcv.mu.Lock()
	rcv.bad = nil
	rcv.mu.Unlock()
	rcv.setSecret(third)
	newSession()
	eventually(t, whWait, "a delivery verified with the newest secret", func() bool { return len(rcv.deliveries()) == 3 })
}
