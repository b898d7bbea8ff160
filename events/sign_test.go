package events_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/identityd/identityd/events"
)

func TestStripeSignature(t *testing.T) {
	t.Parallel()
	// The vector of shared/reference (computed with stripe-go, cross-checked with Python's hmac).
	body := []byte(`{"id":"evt_test","object":"event","api_version":"2026-03-25.dahlia","type":"identity.verification_session.redacted","data":{"object":{}}}`)
	got := events.StripeSignature("whsec_test_secret", 1700000000, body)
	require.Equal(t, "t=1700000000,v1=3d1e22b4bb661e4f07fb8a3a1cb977cd31396f603fb53ccd4adcaa37a3786b76", got)
	require.NoError(t, webhook.ValidatePayloadIgnoringTolerance(body, got, "whsec_test_secret"))
	require.Error(t, webhook.ValidatePayloadIgnoringTolerance(body, got, "whsec_other"))

	secret := events.NewSecret()
	now := time.Now().Unix()
	ev, err := webhook.ConstructEvent(body, events.StripeSignature(secret, now, body), secret)
	require.NoError(t, err)
	require.Equal(t, "evt_test", ev.ID)
}

func TestStandardSignature(t *testing.T) {
	t.Parallel()
	// The Standard Webhooks reference vector.
	sig, err := events.StandardSignature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		1614265330, []byte(`{"test": 2432232314}`))
	require.NoError(t, err)
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sig)

	_, err = events.StandardSignature("sk_not_a_secret", "msg", 1, nil)
	require.Error(t, err)
	_, err = events.StandardSignature("whsec_***not base64***", "msg", 1, nil)
	require.Error(t, err)
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, b := events.NewSecret(), events.NewSecret()
	require.NotEqual(t, a, b)
	require.True(t, strings.HasPrefix(a, "whsec_"))
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	require.NoError(t, err)
	require.Len(t, key, 24)
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	schedule := []time.Duration{time.Second, time.Minute}
	require.Equal(t, time.Second, events.RetryDelay(schedule, 0))
	require.Equal(t, time.Minute, events.RetryDelay(schedule, 1))
	require.Equal(t, time.Minute, events.RetryDelay(schedule, 7), "past the end the last wait repeats")
	require.Equal(t, 5*time.Second, events.RetryDelay(nil, 0))
	require.Equal(t, 12*time.Hour, events.RetryDelay(nil, 10))
	var total time.Duration
	for _, d := range events.DefaultBackoff {
		total += d
	}
	require.Equal(t, 75*time.Hour+35*time.Minute+5*time.Second, total)
	require.GreaterOrEqual(t, total, 72*time.Hour, "the default schedule spans at least Stripe's three days")
}

func TestMatches(t *testing.T) {
	t.Parallel()
	const created, redacted = "identity.verification_session.created", "identity.verification_session.redacted"
	require.True(t, events.Matches([]string{"*"}, created))
	require.True(t, events.Matches([]string{"*"}, redacted), "* includes .redacted (see Matches)")
	require.True(t, events.Matches([]string{created, redacted}, redacted))
	require.False(t, events.Matches([]string{created}, redacted))
	require.False(t, events.Matches(nil, created))
	require.True(t, events.ValidEventType("*"))
	require.True(t, events.ValidEventType(redacted))
	require.False(t, events.ValidEventType("charge.succeeded"))
	require.False(t, events.ValidEventType("identity.verification_session.*"))
}
