package events_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

func TestSignatures_TwoSecrets(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"evt_test","object":"event","api_version":"2026-03-25.dahlia","type":"identity.verification_session.created","data":{"object":{}}}`)
	newer, older := events.NewSecret(), events.NewSecret()
	now := time.Now().Unix()
	header := events.StripeSignatures([]string{newer, older}, now, body)
	require.Equal(t, events.StripeSignature(newer, now, body)+","+strings.Split(events.StripeSignature(older, now, body), ",")[1], header,
		"t=…,v1=<new>,v1=<old>")
	for _, secret := range []string{newer, older} {
		_, err := webhook.ConstructEvent(body, header, secret)
		require.NoError(t, err)
	}
	_, err := webhook.ConstructEvent(body, header, events.NewSecret())
	require.Error(t, err)

	sigs, err := events.StandardSignatures([]string{newer, older}, "evt_test", now, body)
	require.NoError(t, err)
	one, err := events.StandardSignature(newer, "evt_test", now, body)
	require.NoError(t, err)
	two, err := events.StandardSignature(older, "evt_test", now, body)
	require.NoError(t, err)
	require.Equal(t, one+" "+two, sigs)
	_, err = events.StandardSignatures([]string{newer, "sk_not_a_secret"}, "evt_test", now, body)
	require.Error(t, err)
}

// standardVerifies reports whether a Standard Webhooks receiver holding secret accepts the request.
func standardVerifies(t *testing.T, secret string, h http.Header, body []byte) bool {
	t.Helper()
	want := standardSign(t, secret, h.Get("webhook-id")+"."+h.Get("webhook-timestamp")+"."+string(body))
	return slices.Contains(strings.Fields(h.Get("webhook-signature")), "v1,"+want)
}

// TestDeliver_RolledSecret: during the overlap after a roll a delivery verifies with the old and with the new
// secret (stripe-go and Standard Webhooks); after it, with the new one only.
func TestDeliver_RolledSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(t *testing.T) (*events.Webhooks, *store.Store, *storetest.FakeClock) {
		t.Helper()
		r := storetest.New(t)
		clock := storetest.NewFakeClock(time.Now()) // stripe-go checks that a signature is not older than 5 minutes
		st := r.Store(clock)
		w := &events.Webhooks{Store: st, Backoff: []time.Duration{time.Second}, HTTP: events.NewHTTPClient(events.AddressPolicy{AllowPrivate: true}),
			Asynq: asynq.NewClientFromRedisClient(r.Client), Queue: r.QueuePrefix + "-default"}
		return w, st, clock
	}
	// deliver sends a new event to ep and returns what the receiver got.
	deliver := func(t *testing.T, w *events.Webhooks, st *store.Store, rcv *receiver, ep *store.WebhookEndpoint) received {
		t.Helper()
		_, ev := newSession(t, st, ep)
		require.NoError(t, w.Deliver(ctx, scope, ev.ID, ep.ID, 1, false))
		got := rcv.requests()
		return got[len(got)-1]
	}
	verifies := func(t *testing.T, secret string, r received) bool {
		t.Helper()
		_, err := webhook.ConstructEvent(r.body, r.header.Get("Stripe-Signature"), secret)
		std := standardVerifies(t, secret, r.header, r.body)
		require.Equal(t, err == nil, std, "both signatures agree")
		return std
	}

	t.Run("OverlapThenNewOnly", func(t *testing.T) {
		t.Parallel()
		w, st, clock := setup(t)
		rcv := newReceiver(t)
		ep, oldSecret := newEndpoint(t, st, rcv.URL, "*")
		newSecret := events.NewSecret()
		_, err := st.RollEndpointSecret(ctx, scope, ep.ID, newSecret, 24*time.Hour)
		require.NoError(t, err)

		r := deliver(t, w, st, rcv, ep)
		require.True(t, verifies(t, oldSecret, r), "the old secret still verifies during the overlap")
		require.True(t, verifies(t, newSecret, r))
		require.Len(t, strings.Split(r.header.Get("Stripe-Signature"), ",v1="), 3)
		require.Len(t, strings.Fields(r.header.Get("webhook-signature")), 2)

		clock.Advance(24*time.Hour - time.Second)
		require.True(t, verifies(t, oldSecret, deliver(t, w, st, rcv, ep)), "a second before the end")
		clock.Advance(time.Second)
		r = deliver(t, w, st, rcv, ep)
		require.False(t, verifies(t, oldSecret, r), "the overlap is over")
		require.True(t, verifies(t, newSecret, r))
		require.Len(t, strings.Fields(r.header.Get("webhook-signature")), 1)
	})

	t.Run("NoOverlap", func(t *testing.T) {
		t.Parallel()
		w, st, _ := setup(t)
		rcv := newReceiver(t)
		ep, oldSecret := newEndpoint(t, st, rcv.URL, "*")
		newSecret := events.NewSecret()
		_, err := st.RollEndpointSecret(ctx, scope, ep.ID, newSecret, 0)
		require.NoError(t, err)
		r := deliver(t, w, st, rcv, ep)
		require.False(t, verifies(t, oldSecret, r))
		require.True(t, verifies(t, newSecret, r))
	})

	t.Run("SecondRollEndsTheFirstOverlap", func(t *testing.T) {
		t.Parallel()
		w, st, _ := setup(t)
		rcv := newReceiver(t)
		ep, first := newEndpoint(t, st, rcv.URL, "*")
		second, third := events.NewSecret(), events.NewSecret()
		for _, s := range []string{second, third} {
			_, err := st.RollEndpointSecret(ctx, scope, ep.ID, s, time.Hour)
			require.NoError(t, err)
		}
		r := deliver(t, w, st, rcv, ep)
		require.False(t, verifies(t, first, r), "at most two secrets sign")
		require.True(t, verifies(t, second, r))
		require.True(t, verifies(t, third, r))
	})
}

func TestStandardSign_Helper(t *testing.T) {
	t.Parallel()
	// The helper this file verifies with agrees with the Standard Webhooks reference vector.
	require.Equal(t, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		standardSign(t, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", `msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}`))
}
