package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

var whScope = store.Scope{Account: "acct_webhooks", Livemode: false}

type whBundle struct {
	redis *storetest.Redis
	clock *storetest.FakeClock
}

func whSetup(t *testing.T) (*store.Store, *whBundle) {
	t.Helper()
	r := storetest.New(t)
	clock := storetest.NewFakeClock(time.Unix(1_700_000_000, 0))
	return r.Store(clock), &whBundle{redis: r, clock: clock}
}

func whCreateEndpoint(t *testing.T, s *store.Store, events ...string) *store.WebhookEndpoint {
	t.Helper()
	ep, err := s.CreateEndpoint(context.Background(), whScope, store.EndpointCreate{
		URL: "https://example.test/hook", EnabledEvents: events}, "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0")
	require.NoError(t, err)
	return ep
}

func TestEndpoints_CRUD(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("SecretOnlyInTheRecord", func(t *testing.T) {
		t.Parallel()
		s, b := whSetup(t)
		ep := whCreateEndpoint(t, s, "*")
		require.Equal(t, store.EndpointEnabled, ep.Status)
		require.Equal(t, map[string]string{}, ep.Metadata)

		got, secret, err := s.EndpointSecret(ctx, whScope, ep.ID)
		require.NoError(t, err)
		require.Equal(t, "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", secret)
		require.Equal(t, ep, got)

		all, err := storetest.ScanAll(ctx, b.redis.Client)
		require.NoError(t, err)
		holders := 0
		for key, v := range all {
			if strings.HasPrefix(key, b.redis.KeyPrefix) && strings.Contains(v, secret) {
				holders++
				require.True(t, strings.HasSuffix(key, ":we:"+ep.ID), key)
			}
		}
		require.Equal(t, 1, holders)
	})

	t.Run("UpdateKeepsSecret", func(t *testing.T) {
		t.Parallel()
		s, _ := whSetup(t)
		ep := whCreateEndpoint(t, s, "*")
		up, err := s.UpdateEndpoint(ctx, whScope, ep.ID, func(e *store.WebhookEndpoint) error {
			e.Status = store.EndpointDisabled
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, store.EndpointDisabled, up.Status)
		_, secret, err := s.EndpointSecret(ctx, whScope, ep.ID)
		require.NoError(t, err)
		require.Equal(t, "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", secret)
	})

	t.Run("ListAndDelete", func(t *testing.T) {
		t.Parallel()
		s, b := whSetup(t)
		first := whCreateEndpoint(t, s, "*")
		b.clock.Advance(time.Second)
		second := whCreateEndpoint(t, s, store.EventSessionCreated)
		page, more, err := s.ListEndpoints(ctx, whScope, store.Page{Limit: 1})
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, second.ID, page[0].ID)
		page, more, err = s.ListEndpoints(ctx, whScope, store.Page{Limit: 1, StartingAfter: second.ID})
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, first.ID, page[0].ID)

		require.NoError(t, s.DeleteEndpoint(ctx, whScope, first.ID))
		_, err = s.GetEndpoint(ctx, whScope, first.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, s.DeleteEndpoint(ctx, whScope, first.ID), store.ErrNotFound)
		all, err := s.Endpoints(ctx, whScope)
		require.NoError(t, err)
		require.Len(t, all, 1)
		require.Equal(t, second.ID, all[0].ID)
		n, err := s.CountEndpoints(ctx, whScope)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})

	t.Run("OtherScopeSeesNothing", func(t *testing.T) {
		t.Parallel()
		s, _ := whSetup(t)
		ep := whCreateEndpoint(t, s, "*")
		_, err := s.GetEndpoint(ctx, store.Scope{Account: whScope.Account, Livemode: true}, ep.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = s.GetEndpoint(ctx, store.Scope{Account: "acct_other"}, ep.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestDeliveries_PendingWebhooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := whSetup(t)
	a, b := whCreateEndpoint(t, s, "*"), whCreateEndpoint(t, s, "*")
	_, evs, err := s.CreateSession(ctx, whScope, store.SessionCreate{Type: "document"}, store.Origin{})
	require.NoError(t, err)
	evID := evs[0].ID

	created, err := s.CreateDeliveries(ctx, whScope, evID, []string{a.ID, b.ID}, time.Hour)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{a.ID, b.ID}, created)
	again, err := s.CreateDeliveries(ctx, whScope, evID, []string{a.ID, b.ID}, time.Hour)
	require.NoError(t, err)
	require.Empty(t, again, "a second fan-out of the same event creates nothing")

	pending := func() int {
		ev, err := s.GetEvent(ctx, whScope, evID)
		require.NoError(t, err)
		list, _, err := s.ListEvents(ctx, whScope, store.EventFilter{}, store.Page{Limit: 10})
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, ev.PendingWebhooks, list[0].PendingWebhooks)
		return ev.PendingWebhooks
	}
	require.Equal(t, 2, pending())

	ok, err := s.FinishDelivery(ctx, whScope, evID, a.ID, store.DeliveryDelivered)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.FinishDelivery(ctx, whScope, evID, a.ID, store.DeliveryFailed)
	require.NoError(t, err)
	require.False(t, ok, "a finished delivery stays finished")
	require.Equal(t, 1, pending())

	st, err := s.DeliveryState(ctx, whScope, evID, a.ID)
	require.NoError(t, err)
	require.Equal(t, store.DeliveryDelivered, st)

	ok, err = s.FinishDelivery(ctx, whScope, evID, b.ID, store.DeliveryFailed)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 0, pending())

	ok, err = s.FinishDelivery(ctx, whScope, evID, "we_unknown", store.DeliveryDelivered)
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, 0, pending())
	_, err = s.DeliveryState(ctx, whScope, evID, "we_unknown")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestDeliveries_Reopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := whSetup(t)
	a := whCreateEndpoint(t, s, "*")
	_, evs, err := s.CreateSession(ctx, whScope, store.SessionCreate{Type: "document"}, store.Origin{})
	require.NoError(t, err)
	evID := evs[0].ID
	pending := func() int {
		ev, err := s.GetEvent(ctx, whScope, evID)
		require.NoError(t, err)
		return ev.PendingWebhooks
	}

	ok, err := s.ReopenDelivery(ctx, whScope, evID, a.ID, time.Hour)
	require.NoError(t, err)
	require.True(t, ok, "a delivery that never existed is opened")
	require.Equal(t, 1, pending())
	ok, err = s.ReopenDelivery(ctx, whScope, evID, a.ID, time.Hour)
	require.NoError(t, err)
	require.False(t, ok, "a pending delivery is counted once")
	require.Equal(t, 1, pending())

	for _, final := range []string{store.DeliveryFailed, store.DeliveryDelivered, store.DeliveryCanceled} {
		ok, err = s.FinishDelivery(ctx, whScope, evID, a.ID, final)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, 0, pending())
		ok, err = s.ReopenDelivery(ctx, whScope, evID, a.ID, time.Hour)
		require.NoError(t, err)
		require.True(t, ok, "a %s delivery is reopened", final)
		require.Equal(t, 1, pending())
		st, err := s.DeliveryState(ctx, whScope, evID, a.ID)
		require.NoError(t, err)
		require.Equal(t, store.DeliveryPending, st)
	}
}

func TestAttempts_ListAndCount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, b := whSetup(t)
	ep := whCreateEndpoint(t, s, "*")
	code := 500
	var ids []string
	for i, ev := range []string{"evt_1", "evt_2", "evt_1"} {
		now := b.clock.Now()
		a := &store.WebhookAttempt{ID: store.NewAttemptID(now.Add(time.Duration(i) * time.Millisecond)), Created: now.Unix(),
			WebhookEndpoint: ep.ID, Event: ev, EventType: store.EventSessionCreated, Attempt: i + 1,
			Outcome: store.AttemptRetrying, StatusCode: &code}
		require.NoError(t, s.RecordAttempt(ctx, whScope, a, "vs_one"))
		ids = append(ids, a.ID)
	}
	list, more, err := s.ListAttempts(ctx, whScope, ep.ID, "", store.Page{Limit: 2})
	require.NoError(t, err)
	require.True(t, more)
	require.Equal(t, []string{ids[2], ids[1]}, []string{list[0].ID, list[1].ID}, "same second: newest first by id")
	require.Equal(t, "webhook_attempt", list[0].Object)

	list, more, err = s.ListAttempts(ctx, whScope, ep.ID, "evt_1", store.Page{Limit: 10})
	require.NoError(t, err)
	require.False(t, more)
	require.Len(t, list, 2)

	_, _, err = s.ListAttempts(ctx, whScope, ep.ID, "", store.Page{Limit: 10, StartingAfter: "wha_missing"})
	require.ErrorIs(t, err, store.ErrNotFound)
}
