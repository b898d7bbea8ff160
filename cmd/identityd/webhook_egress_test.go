package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store/storetest"
)

func TestConfig_WebhookAddresses(t *testing.T) { // not parallel: t.Setenv
	t.Setenv("REDIS_URL", "")
	t.Setenv("REDIS_CLUSTER_ADDRS", "")
	t.Setenv("IDENTITYD_WEBHOOK_ALLOW_PRIVATE", "")
	const redis = "redis://127.0.0.1:6399/3"
	parse := func(t *testing.T, args ...string) *Config {
		t.Helper()
		m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
		require.NoError(t, m.ParseFlags(append(args, "--api-key", "sk_test_abc")))
		return m.cfg
	}
	t.Run("EmbeddedServeAllowsPrivate", func(t *testing.T) {
		require.True(t, parse(t, "serve").WebhookAddresses.AllowPrivate, "a local trial reaches a local receiver")
		require.False(t, parse(t, "serve", "--webhook-allow-private=false").WebhookAddresses.AllowPrivate)
	})
	t.Run("SharedRedisRefusesPrivate", func(t *testing.T) {
		for _, role := range []string{"serve", "api", "worker"} {
			require.False(t, parse(t, role, "--redis-url", redis).WebhookAddresses.AllowPrivate, role)
			require.True(t, parse(t, role, "--redis-url", redis, "--webhook-allow-private").WebhookAddresses.AllowPrivate, role)
		}
	})
	t.Run("Env", func(t *testing.T) {
		t.Setenv("IDENTITYD_WEBHOOK_ALLOW_PRIVATE", "true")
		t.Setenv("IDENTITYD_WEBHOOK_ALLOW_CIDR", "10.20.0.0/16, fd00:1::/64,192.168.1.7")
		cfg := parse(t, "worker", "--redis-url", redis)
		require.True(t, cfg.WebhookAddresses.AllowPrivate)
		require.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"), netip.MustParsePrefix("fd00:1::/64"),
			netip.MustParsePrefix("192.168.1.7/32")}, cfg.WebhookAddresses.AllowCIDRs)
		cfg = parse(t, "worker", "--redis-url", redis, "--webhook-allow-private=false", "--webhook-allow-cidr", "10.1.2.3/8")
		require.False(t, cfg.WebhookAddresses.AllowPrivate, "a flag wins over its env variable")
		require.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, cfg.WebhookAddresses.AllowCIDRs)
	})
	t.Run("Invalid", func(t *testing.T) {
		for _, tc := range []struct{ args []string }{
			{[]string{"--webhook-allow-cidr", "10.0.0.0/33"}},
			{[]string{"--webhook-allow-cidr", "intranet"}},
			{[]string{"--webhook-allow-cidr", "fe80::1%eth0"}},
			{[]string{"--webhook-allow-private=maybe"}},
		} {
			err := NewMain(&bytes.Buffer{}, &bytes.Buffer{}).ParseFlags(append([]string{"serve"}, tc.args...))
			require.Error(t, err, tc.args)
			require.Contains(t, err.Error(), strings.SplitN(strings.TrimPrefix(tc.args[0], "--"), "=", 2)[0])
			require.NotContains(t, err.Error(), "\n")
		}
	})
}

// whCreateRaw creates an endpoint for target with a raw request and returns the status and body.
func whCreateRaw(t *testing.T, d *daemon, target string) (int, string) {
	t.Helper()
	form := url.Values{"url": {target}, "enabled_events[]": {"*"}}
	req, err := http.NewRequest(http.MethodPost, d.url()+"/v1/webhook_endpoints", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+secretOf(testKeyA))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(raw)
}

// TestWebhooks_PrivateAddressesRefused runs a deployment with the default address policy: an endpoint URL
// on a loopback IP is refused when it is created, and one whose name resolves to loopback is refused when a
// delivery dials it.
func TestWebhooks_PrivateAddressesRefused(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--webhook-allow-private=false", "--webhook-backoff", "1h")
	sc := d.client(testKeyA)
	ctx := context.Background()
	rcv := whNewReceiver(t, nil)
	u, err := url.Parse(rcv.URL)
	require.NoError(t, err)

	status, body := whCreateRaw(t, d, rcv.URL+"/hook")
	require.Equal(t, http.StatusBadRequest, status, body)
	require.Contains(t, body, `"param":"url"`)
	require.Contains(t, body, "loopback")

	ep := whCreateEndpoint(t, sc, "http://localhost:"+u.Port()+"/hook/tok_secret", "*")
	vs, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
	require.NoError(t, err)
	eventually(t, whWait, "a refused attempt", func() bool { return len(whAttempts(t, d, testKeyA, ep.ID)) > 0 })
	a := whAttempts(t, d, testKeyA, ep.ID)[0]
	require.Equal(t, "retrying", a.Outcome)
	require.Nil(t, a.StatusCode)
	require.Contains(t, *a.Error, "may not connect to a loopback address")
	require.NotContains(t, *a.Error, "tok_secret")
	require.NotContains(t, *a.Error, "localhost")
	require.Empty(t, rcv.deliveries(), "nothing reached the receiver (%s)", vs.ID)
}

// TestWebhooks_AllowCIDR lets one range through: an endpoint there is created and delivered to, one on
// another loopback address is still refused.
func TestWebhooks_AllowCIDR(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--webhook-allow-private=false", "--webhook-allow-cidr", "127.0.0.1/32")
	sc := d.client(testKeyA)
	rcv := whNewReceiver(t, nil)
	ep := whCreateEndpoint(t, sc, rcv.URL, "*")
	rcv.setSecret(ep.Secret)
	status, body := whCreateRaw(t, d, "http://127.0.0.2:4242/hook")
	require.Equal(t, http.StatusBadRequest, status, body)
	require.Contains(t, body, `"param":"url"`)

	_, err := sc.V1IdentityVerificationSessions.Create(context.Background(), &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
	require.NoError(t, err)
	eventually(t, whWait, "the delivery", func() bool { return len(rcv.acked()) == 1 })
}
