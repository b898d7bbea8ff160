package events_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85/webhook"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

var scope = store.Scope{Account: "acct_deliver"}

// received is one request a test receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver is an httptest server that answers with the next status of its script (200 once it runs out)
// and keeps what it received.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	script []int
	got    []received
}

func newReceiver(t *testing.T, script ...int) *receiver {
	t.Helper()
	r := &receiver{script: script}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body})
		status := http.StatusOK
		if len(r.script) > 0 {
			status, r.script = r.script[0], r.script[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

type deliverBundle struct {
	redis   *storetest.Redis
	store   *store.Store
	metrics *events.Metrics
}

func setupDeliver(t *testing.T) (*events.Webhooks, *deliverBundle) {
	t.Helper()
	r := storetest.New(t)
	st := r.Store(nil)
	m := events.NewMetrics(nil)
	w := &events.Webhooks{Store: st, Backoff: []time.Duration{time.Second, time.Second}, Metrics: m,
		HTTP: events.NewHTTPClient(events.AddressPolicy{AllowPrivate: true}), Asynq: asynq.NewClientFromRedisClient(r.Client), Queue: r.QueuePrefix + "-default"}
	return w, &deliverBundle{redis: r, store: st, metrics: m}
}

// newEndpoint creates an endpoint for url and returns it with its secret.
func newEndpoint(t *testing.T, st *store.Store, url string, enabled ...string) (*store.WebhookEndpoint, string) {
	t.Helper()
	secret := events.NewSecret()
	ep, err := st.CreateEndpoint(context.Background(), scope, store.EndpointCreate{URL: url, EnabledEvents: enabled}, secret)
	require.NoError(t, err)
	return ep, secret
}

// newSession creates a session carrying personal data and returns it with its `.created` event, whose
// delivery to ep is pending.
func newSession(t *testing.T, st *store.Store, eps ...*store.WebhookEndpoint) (*store.Session, *store.Event) {
	t.Helper()
	email := "deliver.person@example.com"
	sess, evs, err := st.CreateSession(context.Background(), scope, store.SessionCreate{Type: "document",
		Metadata: map[string]string{"customer_name": "Jenny Rosen"}, ProvidedDetails: &store.ProvidedDetails{Email: &email}},
		store.Origin{})
	require.NoError(t, err)
	var ids []string
	for _, ep := range eps {
		ids = append(ids, ep.ID)
	}
	_, err = st.CreateDeliveries(context.Background(), scope, evs[0].ID, ids, time.Hour)
	require.NoError(t, err)
	return sess, evs[0]
}

func attempts(t *testing.T, st *store.Store, endpointID string) []*store.WebhookAttempt {
	t.Helper()
	list, _, err := st.ListAttempts(context.Background(), scope, endpointID, "", store.Page{Limit: 100})
	require.NoError(t, err)
	return list
}

func pendingWebhooks(t *testing.T, st *store.Store, eventID string) int {
	t.Helper()
	ev, err := st.GetEvent(context.Background(), scope, eventID)
	require.NoError(t, err)
	return ev.PendingWebhooks
}

func TestDeliver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Delivered", func(t *testing.T) {
		t.Parallel()
		w, b := setupDeliver(t)
		rcv := newReceiver(t)
		ep, secret := newEndpoint(t, b.store, rcv.URL, "*")
		_, ev := newSession(t, b.store, ep)
		require.Equal(t, 1, pendingWebhooks(t, b.store, ev.ID))

		require.NoError(t, w.Deliver(ctx, scope, ev.ID, ep.ID, 1, false))
		got := rcv.requests()
		require.Len(t, got, 1)
		h := got[0].header
		require.Equal(t, "application/json; charset=utf-8", h.Get("Content-Type"))
		sev, err := webhook.ConstructEvent(got[0].body, h.Get("Stripe-Signature"), secret)
		require.NoError(t, err)
		require.Equal(t, ev.ID, sev.ID)
		require.EqualValues(t, 1, sev.PendingWebhooks, "the event is still pending while it is being delivered")
		require.Equal(t, ev.ID, h.Get("webhook-id"))
		require.Equal(t, strings.TrimPrefix(strings.Split(h.Get("Stripe-Signature"), ",")[0], "t="), h.Get("webhook-timestamp"))
		verifyStandard(t, secret, h, got[0].body)

		require.Equal(t, 0, pendingWebhooks(t, b.store, ev.ID))
		as := attempts(t, b.store, ep.ID)
		require.Len(t, as, 1)
		require.Equal(t, store.AttemptDelivered, as[0].Outcome)
		require.Equal(t, 200, *as[0].StatusCode)
		require.Nil(t, as[0].Error)
		require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.WebhookDeliveries.WithLabelValues("delivered")))

		// A duplicate run of a finished delivery sends nothing.
		require.NoError(t, w.Deliver(ctx, scope, ev.ID, ep.ID, 1, false))
		require.Len(t, rcv.requests(), 1)
	})

	t.Run("RetryingThenFailedDisablesEndpoint", func(t *testing.T) {
		t.Parallel()
		w, b := setupDeliver(t)
		rcv := newReceiver(t, 500, 503)
		ep, _ := newEndpoint(t, b.store, rcv.URL, "*")
		_, ev := newSession(t, b.store, ep)

		err := w.Deliver(ctx, scope, ev.ID, ep.ID, 1, false)
		require.ErrorContains(t, err, "HTTP 500")
		require.NotErrorIs(t, err, asynq.SkipRetry)
		require.Equal(t, 1, pendingWebhooks(t, b.store, ev.ID))
		as := attempts(t, b.store, ep.ID)
		require.Equal(t, store.AttemptRetrying, as[0].Outcome)
		require.NotNil(t, as[0].NextAttempt)
		require.Equal(t, as[0].Created+1, *as[0].NextAttempt)

		err = w.Deliver(ctx, scope, ev.ID, ep.ID, 2, true)
		require.ErrorIs(t, err, asynq.SkipRetry)
		require.Equal(t, 0, pendingWebhooks(t, b.store, ev.ID))
		got, err := b.store.GetEndpoint(ctx, scope, ep.ID)
		require.NoError(t, err)
		require.Equal(t, store.EndpointDisabled, got.Status)
		as = attempts(t, b.store, ep.ID)
		require.Len(t, as, 2)
		require.Equal(t, store.AttemptFailed, as[0].Outcome)
		require.Equal(t, 503, *as[0].StatusCode)
		require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.WebhookDeliveries.WithLabelValues("retrying")))
		require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.WebhookDeliveries.WithLabelValues("failed")))

		// A disabled endpoint receives nothing more: its pending deliveries are dropped.
		_, ev2 := newSession(t, b.store, ep)
		require.NoError(t, w.Deliver(ctx, scope, ev2.ID, ep.ID, 1, false))
		require.Len(t, rcv.requests(), 2)
		require.Equal(t, 0, pendingWebhooks(t, b.store, ev2.ID))
	})

	t.Run("RedirectNotFollowed", func(t *testing.T) {
		t.Parallel()
		w, b := setupDeliver(t)
		target := newReceiver(t)
		redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
		t.Cleanup(redirect.Close)
		ep, _ := newEndpoint(t, b.store, redirect.URL, "*")
		_, ev := newSession(t, b.store, ep)
		require.Error(t, w.Deliver(ctx, scope, ev.ID, ep.ID, 1, false))
		require.Empty(t, target.requests())
		as := attempts(t, b.store, ep.ID)
		require.Equal(t, 307, *as[0].StatusCode)
		require.Contains(t, *as[0].Error, "redirects are not followed")
	})

	t.Run("LargeResponseBodyIsNotKept", func(t *testing.T) {
		t.Parallel()
		w, b := setupDeliver(t)
		big := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			chunk := []byte(strings.Repeat("x", 1024))
			for range 1024 { // 1 MiB, far over what is read
				if _, err := rw.Write(chunk); err != nil {
					return
				}
			}
		}))
		t.Cleanup(big.Close)
		ep, _ := newEndpoint(t, b.store, big.URL, "*")
		_, ev := newSession(t, b.store, ep)
		require.NoError(t, w.Deliver(ctx, scope, ev.ID, ep.ID, 1, false))
		raw, err := json.Marshal(attempts(t, b.store, ep.ID))
		require.NoError(t, err)
		require.NotContains(t, string(raw), "xxxx")
	})

	t.Run("TransportErrorWithoutURL", func(t *testing.T) {
		t.Parallel()
		w, b := setupDeliver(t)
		closed := httptest.NewServer(http.NotFoundHandler())
		addr := closed.Listener.Addr().String()
		closed.Close()
		ep, _ := newEndpoint(t, b.store, "http://user:tok3n-in-url@"+addr+"/hook?key=query-tok3n", "*")
		_, ev := newSession(t, b.store, ep)
		require.Error(t, w.Deliver(ctx, scope, ev.ID, ep.ID, 1, false))
		as := attempts(t, b.store, ep.ID)
		require.Nil(t, as[0].StatusCode)
		require.NotEmpty(t, *as[0].Error)
		require.NotContains(t, *as[0].Error, "tok3n")
	})

	t.Run("DeletedEndpointIsDropped", func(t *testing.T) {
		t.Parallel()
		w, b := setupDeliver(t)
		rcv := newReceiver(t)
		ep, _ := newEndpoint(t, b.store, rcv.URL, "*")
		_, ev := newSession(t, b.store, ep)
		require.NoError(t, b.store.DeleteEndpoint(ctx, scope, ep.ID))
		require.NoError(t, w.Deliver(ctx, scope, ev.ID, ep.ID, 1, false))
		require.Empty(t, rcv.requests())
		require.Equal(t, 0, pendingWebhooks(t, b.store, ev.ID))
		st, err := b.store.DeliveryState(ctx, scope, ev.ID, ep.ID)
		require.NoError(t, err)
		require.Equal(t, store.DeliveryCanceled, st)
	})

	t.Run("RedactionRequestedScrubsBody", func(t *testing.T) {
		t.Parallel()
		w, b := setupDeliver(t)
		rcv := newReceiver(t)
		ep, secret := newEndpoint(t, b.store, rcv.URL, "*")
		sess, ev := newSession(t, b.store, ep)
		// Requested, not yet scrubbed (as during --redaction-delay): the personal-data record still holds the
		// data, and the event renders scrubbed already.
		before, err := b.store.GetEvent(ctx, scope, ev.ID)
		require.NoError(t, err)
		require.Contains(t, string(before.Data.Object), "Jenny Rosen")
		_, err = b.store.RequestRedaction(ctx, scope, sess.ID, store.Requester{Type: store.RequestedByRequest}, store.Origin{})
		require.NoError(t, err)
		stored, err := b.store.GetEvent(ctx, scope, ev.ID)
		require.NoError(t, err)
		require.NotContains(t, string(stored.Data.Object), "Jenny Rosen")

		require.NoError(t, w.Deliver(ctx, scope, ev.ID, ep.ID, 1, false))
		got := rcv.requests()
		require.Len(t, got, 1)
		body := string(got[0].body)
		require.NotContains(t, body, "Jenny Rosen")
		require.NotContains(t, body, "deliver.person@example.com")
		_, err = webhook.ConstructEvent(got[0].body, got[0].header.Get("Stripe-Signature"), secret)
		require.NoError(t, err, "the scrubbed body is what is signed")
	})
}

func TestFanout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w, b := setupDeliver(t)
	all, _ := newEndpoint(t, b.store, "http://127.0.0.1:1/all", "*")
	onlyCanceled, _ := newEndpoint(t, b.store, "http://127.0.0.1:1/canceled", store.EventSessionCanceled)
	disabled, _ := newEndpoint(t, b.store, "http://127.0.0.1:1/disabled", "*")
	_, err := b.store.UpdateEndpoint(ctx, scope, disabled.ID, func(ep *store.WebhookEndpoint) error {
		ep.Status = store.EndpointDisabled
		return nil
	})
	require.NoError(t, err)

	sess, created, err := b.store.CreateSession(ctx, scope, store.SessionCreate{Type: "document"}, store.Origin{})
	require.NoError(t, err)
	_, canceled, err := b.store.CancelSession(ctx, scope, sess.ID, store.Origin{})
	require.NoError(t, err)
	evs := slices.Concat(created, canceled)
	require.NoError(t, w.Fanout(ctx, scope, evs))
	require.NoError(t, w.Fanout(ctx, scope, evs), "a second fan-out enqueues nothing new")

	require.Equal(t, 1, pendingWebhooks(t, b.store, created[0].ID))
	require.Equal(t, 2, pendingWebhooks(t, b.store, canceled[0].ID))

	insp := asynq.NewInspectorFromRedisClient(b.redis.Client)
	tasks, err := insp.ListPendingTasks(w.Queue)
	require.NoError(t, err)
	var pairs []string
	for _, task := range tasks {
		require.Equal(t, events.TypeDeliverWebhook, task.Type)
		require.Equal(t, 2+events.SpareRetries, task.MaxRetry, "one retry per backoff step, and the spare a deferral of the last one needs")
		var p events.DeliverPayload
		require.NoError(t, json.Unmarshal(task.Payload, &p))
		require.Equal(t, scope, p.Scope())
		pairs = append(pairs, p.EventID+">"+p.EndpointID)
	}
	require.ElementsMatch(t, []string{created[0].ID + ">" + all.ID, canceled[0].ID + ">" + all.ID,
		canceled[0].ID + ">" + onlyCanceled.ID}, pairs)
}

// verifyStandard checks a Standard Webhooks signature the way a receiver following that spec does,
// written from the spec rather than with the signer under test.
func verifyStandard(t *testing.T, secret string, h http.Header, body []byte) {
	t.Helper()
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	require.NotEmpty(t, id)
	require.NotEmpty(t, ts)
	want := standardSign(t, secret, id+"."+ts+"."+string(body))
	found := false
	for s := range strings.FieldsSeq(sigs) {
		if s == "v1,"+want {
			found = true
		}
	}
	require.True(t, found, "webhook-signature %q does not verify", sigs)
}

// standardSign is base64(HMAC-SHA256(base64-decoded secret after "whsec_", msg)).
func standardSign(t *testing.T, secret, msg string) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
