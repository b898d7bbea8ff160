package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// TestWebhooks_SecretStaysSecret: the signing secret is in the create response (and its idempotent replay)
// and nowhere else: not in GET/list/update responses, request logs, the idempotency cache, asynq, the
// process's logs — the endpoint's own record is the only Redis key that holds it.
func TestWebhooks_SecretStaysSecret(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--log-level", "debug")
	sc := d.client(testKeyA)
	ctx := context.Background()
	rcv := whNewReceiver(t, nil)
	create := func() *stripe.WebhookEndpoint {
		p := &stripe.WebhookEndpointCreateParams{URL: stripe.String(rcv.URL), EnabledEvents: stripe.StringSlice([]string{"*"})}
		p.SetIdempotencyKey("create-endpoint-1")
		ep, err := sc.V1WebhookEndpoints.Create(ctx, p)
		require.NoError(t, err)
		return ep
	}
	ep := create()
	secret := ep.Secret
	require.True(t, strings.HasPrefix(secret, "whsec_"))
	rcv.setSecret(secret)

	replayed := create()
	require.Equal(t, ep.ID, replayed.ID)
	require.Equal(t, secret, replayed.Secret, "a client that lost the create answer gets the secret on retry")

	got, err := sc.V1WebhookEndpoints.Retrieve(ctx, ep.ID, nil)
	require.NoError(t, err)
	require.Empty(t, got.Secret)
	got, err = sc.V1WebhookEndpoints.Update(ctx, ep.ID, &stripe.WebhookEndpointUpdateParams{Description: stripe.String("d")})
	require.NoError(t, err)
	require.Empty(t, got.Secret)
	for e, err := range sc.V1WebhookEndpoints.List(ctx, &stripe.WebhookEndpointListParams{}).All(ctx) {
		require.NoError(t, err)
		require.Empty(t, e.Secret)
	}
	var raw json.RawMessage
	whCall(t, d, testKeyA, http.MethodGet, "/v1/webhook_endpoints/"+ep.ID, nil, &raw)
	require.NotContains(t, string(raw), `"secret"`)

	// A real delivery, so asynq holds a task and an attempt is recorded.
	_, err = sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
	require.NoError(t, err)
	eventually(t, whWait, "delivered", func() bool { return len(rcv.acked()) == 1 && whAllAcked(t, d, testKeyA) })

	var logs struct {
		Data []struct {
			Method   string          `json:"method"`
			Path     string          `json:"path"`
			Response json.RawMessage `json:"response"`
		} `json:"data"`
	}
	whCall(t, d, testKeyA, http.MethodGet, "/v1/request_logs?limit=100&object="+ep.ID, nil, &logs)
	creates := 0
	for _, l := range logs.Data {
		require.NotContains(t, string(l.Response), secret)
		if l.Method == http.MethodPost && l.Path == "/v1/webhook_endpoints" {
			creates++
			require.Contains(t, string(l.Response), ep.ID, "the log keeps the response, without the secret")
		}
	}
	require.Equal(t, 2, creates, "the create and its replay are logged")

	all, err := storetest.ScanAll(ctx, d.redis.Client)
	require.NoError(t, err)
	var holders []string
	for key, v := range all {
		if strings.Contains(v, secret) {
			holders = append(holders, key)
		}
	}
	require.Equal(t, []string{d.redis.KeyPrefix + ":{acct_alpha}:test:we:" + ep.ID}, holders)
	require.NotContains(t, d.logs.String(), secret)
	require.Contains(t, d.logs.String(), "request", "debug logging was on")
}

// TestWebhooks_RedactionWhileDeliveryPending: deliveries that are still retrying when a session is redacted
// carry no personal data when they finally get through — the body is rendered at delivery time.
func TestWebhooks_RedactionWhileDeliveryPending(t *testing.T) {
	t.Parallel()
	backoff := strings.TrimSuffix(strings.Repeat("300ms,", 40), ",")
	d := startDaemon(t, storetest.New(t), "serve", "--webhook-backoff", backoff)
	sc := d.client(testKeyA)
	ctx := context.Background()
	var open atomic.Bool
	rcv := whNewReceiver(t, func(int, stripe.Event) int {
		if open.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	ep := whCreateEndpoint(t, sc, rcv.URL, "*")
	rcv.setSecret(ep.Secret)

	pii := whPII()
	vs := whCreatePersonalSession(t, d, pii, true)
	eventually(t, whWait, "verified", func() bool {
		got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, vs, nil)
		require.NoError(t, err)
		return got.Status == stripe.IdentityVerificationSessionStatusVerified
	})
	eventually(t, whWait, "the .verified delivery failed at least once", func() bool {
		for _, dlv := range rcv.deliveries() {
			if dlv.event.Type == stripe.EventTypeIdentityVerificationSessionVerified {
				return true
			}
		}
		return false
	})
	_, err := sc.V1IdentityVerificationSessions.Redact(ctx, vs, nil)
	require.NoError(t, err)
	eventually(t, whWait, "redacted", func() bool {
		got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, vs, nil)
		require.NoError(t, err)
		return got.Redaction.Status == stripe.IdentityVerificationSessionRedactionStatusRedacted
	})
	var record struct {
		Scrubbed struct {
			WebhookAttempts int `json:"webhook_attempts"`
		} `json:"scrubbed"`
	}
	whCall(t, d, testKeyA, http.MethodGet, "/v1/identity/verification_sessions/"+vs+"/redaction", nil, &record)
	require.GreaterOrEqual(t, record.Scrubbed.WebhookAttempts, 3, "the failed attempts of created, processing and verified")

	open.Store(true)
	eventually(t, whWait, "every event delivered", func() bool {
		return len(rcv.acked()) == 4 && whAllAcked(t, d, testKeyA)
	})
	for typ, dlvs := range rcv.acked() {
		for _, dlv := range dlvs {
			for _, v := range pii {
				require.NotContains(t, dlv.body, v, "%s delivered personal data", typ)
			}
			require.Equal(t, vs, dlv.event.Data.Object["id"])
			require.Equal(t, "kept-reference", dlv.event.Data.Object["client_reference_id"])
		}
	}
	whRequireNoPII(t, d, pii)
}

// TestWebhooks_DeliveredDuringRedactionDelay: with a grace period before the scrub, an event delivered after
// the redaction request (but before the worker scrubbed) already carries no personal data.
func TestWebhooks_DeliveredDuringRedactionDelay(t *testing.T) {
	t.Parallel()
	backoff := strings.TrimSuffix(strings.Repeat("300ms,", 40), ",")
	d := startDaemon(t, storetest.New(t), "serve", "--webhook-backoff", backoff, "--redaction-delay", "1h")
	sc := d.client(testKeyA)
	ctx := context.Background()
	var open atomic.Bool
	rcv := whNewReceiver(t, func(int, stripe.Event) int {
		if open.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	ep := whCreateEndpoint(t, sc, rcv.URL, "identity.verification_session.created")
	rcv.setSecret(ep.Secret)
	pii := whPII()
	vs := whCreatePersonalSession(t, d, pii, false)
	eventually(t, whWait, "a failed attempt", func() bool { return len(rcv.deliveries()) > 0 })
	got, err := sc.V1IdentityVerificationSessions.Redact(ctx, vs, nil)
	require.NoError(t, err)
	require.Equal(t, stripe.IdentityVerificationSessionRedactionStatusProcessing, got.Redaction.Status)

	open.Store(true)
	eventually(t, whWait, "delivered", func() bool { return len(rcv.acked()) == 1 })
	dlv := rcv.acked()["identity.verification_session.created"][0]
	for _, v := range pii {
		require.NotContains(t, dlv.body, v)
	}
	require.Equal(t, map[string]any{}, dlv.event.Data.Object["metadata"])
	// The scrub itself waits for the grace period: the session still shows its data until then.
	sess, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, vs, nil)
	require.NoError(t, err)
	require.Equal(t, stripe.IdentityVerificationSessionRedactionStatusProcessing, sess.Redaction.Status)
}

// whPII returns personal values unique to one test run.
func whPII() []string {
	tag := store.RandomString(8)
	return []string{"Wilhelmina" + tag, "Quackenbush" + tag, "wilhelmina." + tag + "@example.com", "+1555" + tag,
		"Order for Wilhelmina " + tag}
}

// whCreatePersonalSession creates a session carrying pii (see whPII) and, if submit, submits it as verified.
func whCreatePersonalSession(t *testing.T, d *daemon, pii []string, submit bool) string {
	t.Helper()
	params := &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document"),
		ClientReferenceID: stripe.String("kept-reference"),
		ProvidedDetails: &stripe.IdentityVerificationSessionCreateProvidedDetailsParams{
			Email: stripe.String(pii[2]), Phone: stripe.String(pii[3])}}
	params.AddMetadata("note", pii[4])
	vs, err := d.client(testKeyA).V1IdentityVerificationSessions.Create(context.Background(), params)
	require.NoError(t, err)
	if !submit {
		return vs.ID
	}
	whSubmit(t, d, testKeyA, vs.ID, url.Values{"verified_outputs[first_name]": {pii[0]},
		"verified_outputs[last_name]": {pii[1]}, "verified_outputs[email]": {pii[2]}})
	return vs.ID
}

// whRequireNoPII scans every Redis key (asynq's included) for the values.
func whRequireNoPII(t *testing.T, d *daemon, pii []string) {
	t.Helper()
	all, err := storetest.ScanAll(context.Background(), d.redis.Client)
	require.NoError(t, err)
	for key, v := range all {
		for _, p := range pii {
			require.NotContains(t, v, p, "personal data left in %s", key)
		}
	}
}
