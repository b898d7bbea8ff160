package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store/storetest"
)

func TestStripeGo_CreateSubmitRedact(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve")
	sc := d.client(testKeyA)
	ctx := context.Background()

	params := &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")}
	params.AddMetadata("order", "42")
	vs, err := sc.V1IdentityVerificationSessions.Create(ctx, params)
	require.NoError(t, err)
	require.Equal(t, stripe.IdentityVerificationSessionStatusRequiresInput, vs.Status)

	redacted, err := sc.V1IdentityVerificationSessions.Redact(ctx, vs.ID, nil)
	require.NoError(t, err)
	require.Equal(t, stripe.IdentityVerificationSessionRedactionStatusProcessing, redacted.Redaction.Status)
	require.Equal(t, stripe.IdentityVerificationSessionStatusCanceled, redacted.Status)

	eventually(t, 10*time.Second, "redacted", func() bool {
		got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, vs.ID, nil)
		require.NoError(t, err)
		return got.Redaction.Status == stripe.IdentityVerificationSessionRedactionStatusRedacted
	})
	got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, vs.ID, nil)
	require.NoError(t, err)
	require.Empty(t, got.Metadata)
}
