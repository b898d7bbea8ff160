package events_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
)

func TestDeliver_Limits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("BusyEndpointIsDeferredWithoutAnAttempt", func(t *testing.T) {
		t.Parallel()
		w, b := setupDeliver(t)
		w.Limits = events.Limits{EndpointConcurrency: 1}
		rcv := newReceiver(t)
		ep, _ := newEndpoint(t, b.store, rcv.URL, "*")
		_, ev := newSession(t, b.store, ep)
		// Another run (in this or another process) holds the endpoint's one slot.
		held, err := b.store.AdmitDelivery(ctx, scope, ep.ID, store.DeliveryLimits{EndpointSlots: 1, AccountSlots: 100, Lease: time.Minute})
		require.NoError(t, err)
		require.Equal(t, store.Admitted, held.Code)

		err = w.Deliver(ctx, scope, ev.ID, ep.ID, 1, true)
		var d *events.Deferred
		require.ErrorAs(t, err, &d)
		require.Equal(t, store.EndpointBusy, d.Reason)
		after, ok := events.DeferredFor(err)
		require.True(t, ok)
		require.GreaterOrEqual(t, after, time.Second)
		require.LessOrEqual(t, after, 3*time.Second)
		require.NotContains(t, err.Error(), rcv.URL)
		require.Empty(t, rcv.requests(), "nothing was sent")
		require.Empty(t, attempts(t, b.store, ep.ID), "a deferral is not an attempt")
		require.Equal(t, 1, pendingWebhooks(t, b.store, ev.ID), "even on the final attempt the delivery stays pending")
		require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.WebhookDeferrals.WithLabelValues("endpoint_busy")))

		_, err = b.store.ReleaseDelivery(ctx, scope, ep.ID, held, store.Answered, store.DeliveryLimits{})
		require.NoError(t, err)
		require.NoError(t, w.Deliver(ctx, scope, ev.ID, ep.ID, 1, true))
		require.Len(t, rcv.requests(), 1)
		n, err := b.store.DeliverySlotsHeld(ctx, scope, ep.ID)
		require.NoError(t, err)
		require.Zero(t, n, "the attempt gave its slot back")
	})

	t.Run("UnreachableEndpointOpensItsCircuit", func(t *testing.T) {
		t.Parallel()
		w, b := setupDeliver(t)
		var logs bytes.Buffer
		w.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		w.Limits = events.Limits{BreakerThreshold: 2, BreakerCooldown: time.Hour}
		closed := httptest.NewServer(http.NotFoundHandler())
		url := closed.URL + "/hook?token=s3cret-in-url"
		closed.Close()
		ep, _ := newEndpoint(t, b.store, url, "*")
		_, ev := newSession(t, b.store, ep)

		for attempt := 1; attempt <= 2; attempt++ {
			err := w.Deliver(ctx, scope, ev.ID, ep.ID, attempt, false)
			require.Error(t, err)
			_, deferred := events.DeferredFor(err)
			require.False(t, deferred, "attempt %d was made", attempt)
		}
		require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.WebhookCircuitsOpened))
		err := w.Deliver(ctx, scope, ev.ID, ep.ID, 3, false)
		var d *events.Deferred
		require.ErrorAs(t, err, &d)
		require.Equal(t, store.CircuitOpen, d.Reason)
		require.Greater(t, d.After, 59*time.Minute, "an open circuit waits out its cool-down")
		require.Len(t, attempts(t, b.store, ep.ID), 2, "an open circuit is not dialled")
		require.Contains(t, logs.String(), "deliveries to it paused")
		require.Contains(t, logs.String(), ep.ID)
		require.NotContains(t, logs.String(), "s3cret")
	})

	t.Run("DisabledEndpointRecordsWhyCountsAndLogsOnce", func(t *testing.T) {
		t.Parallel()
		w, b := setupDeliver(t)
		var logs bytes.Buffer
		w.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		rcv := newReceiver(t, 500, 500)
		ep, secret := newEndpoint(t, b.store, rcv.URL+"/hook?token=s3cret-in-url", "*")
		_, ev := newSession(t, b.store, ep)
		_, ev2 := newSession(t, b.store, ep)

		err := w.Deliver(ctx, scope, ev.ID, ep.ID, 3, true)
		require.Error(t, err)
		got, err := b.store.GetEndpoint(ctx, scope, ep.ID)
		require.NoError(t, err)
		require.Equal(t, store.EndpointDisabled, got.Status)
		require.NotNil(t, got.DisabledReason)
		require.Equal(t, store.DisabledDeliveryFailed, *got.DisabledReason)
		require.NotNil(t, got.DisabledAt)
		require.Equal(t, b.store.Now().Unix(), *got.DisabledAt)
		require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.WebhookEndpointsDisabled.WithLabelValues(store.DisabledDeliveryFailed)))

		// The other delivery is dropped now, and nothing disables the endpoint a second time.
		require.NoError(t, w.Deliver(ctx, scope, ev2.ID, ep.ID, 3, true))
		require.Equal(t, 1.0, testutil.ToFloat64(b.metrics.WebhookEndpointsDisabled.WithLabelValues(store.DisabledDeliveryFailed)))

		var lines []string
		for l := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(l, "webhook endpoint disabled") {
				lines = append(lines, l)
			}
		}
		require.Len(t, lines, 1, logs.String())
		for _, want := range []string{"endpoint=" + ep.ID, "account=" + scope.Account, "reason=delivery_failed", "last_error=\"HTTP 500\""} {
			require.Contains(t, lines[0], want)
		}
		for _, never := range []string{"s3cret", rcv.URL, secret} {
			require.NotContains(t, logs.String(), never)
		}

		// Re-enabled by its owner: the record of why it was disabled goes.
		got, err = b.store.UpdateEndpoint(ctx, scope, ep.ID, func(ep *store.WebhookEndpoint) error {
			ep.SetStatus(store.EndpointEnabled, "", 0)
			return nil
		})
		require.NoError(t, err)
		require.Nil(t, got.DisabledReason)
		require.Nil(t, got.DisabledAt)
	})
}

func TestDeferredFor(t *testing.T) {
	t.Parallel()
	_, ok := events.DeferredFor(errors.New("HTTP 500"))
	require.False(t, ok)
	wrapped := errors.Join(errors.New("context"), &events.Deferred{EndpointID: "we_1", Reason: store.AccountBusy, After: 2 * time.Second})
	after, ok := events.DeferredFor(wrapped)
	require.True(t, ok)
	require.Equal(t, 2*time.Second, after)
	require.Contains(t, wrapped.Error(), "we_1 deferred (account_busy)")
}
