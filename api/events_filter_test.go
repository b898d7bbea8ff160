package api_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

func TestEvents_TypeWildcard(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	id := b.createSession(t, keyA, "type=document")
	require.Equal(t, http.StatusOK, b.post(t, "/v1/identity/verification_sessions/"+id+"/cancel", "").status)
	all := dataIDs(t, b.get(t, "/v1/events"))
	require.Len(t, all, 2)

	for _, pattern := range []string{"identity.verification_session.*", "identity.*", "*", "*.canceled", "identity.*.c*"} {
		res := b.get(t, "/v1/events?type="+pattern)
		require.Equal(t, http.StatusOK, res.status, "%s: %s", pattern, res.raw)
		want := all
		if pattern == "*.canceled" {
			want = all[:1]
		}
		require.Equal(t, want, dataIDs(t, res), pattern)
	}
	created := dataIDs(t, b.get(t, "/v1/events?type=identity.verification_session.cr*"))
	require.Equal(t, all[1:], created)

	for _, bad := range []string{"identity.verification_session.updated*", "charge.*", "identity.verification_session.", "identity.verification_session.*x"} {
		res := b.get(t, "/v1/events?type="+bad)
		require.Equal(t, http.StatusBadRequest, res.status, "%s: %s", bad, res.raw)
		require.Equal(t, "type", res.errField("param"))
	}
	res := b.get(t, "/v1/events?type=identity.*&types[]=identity.verification_session.created")
	require.Equal(t, http.StatusBadRequest, res.status, res.raw)
}

func TestEvents_Created(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	b.createSession(t, keyA, "type=document")
	b.clock.Advance(10 * time.Second)
	b.createSession(t, keyA, "type=document")
	all := dataIDs(t, b.get(t, "/v1/events"))
	require.Len(t, all, 2)
	t0 := strconv.Itoa(1_700_000_000)
	t1 := strconv.Itoa(1_700_000_010)
	for q, want := range map[string][]string{
		"created=" + t0:      all[1:],
		"created[gt]=" + t0:  all[:1],
		"created[gte]=" + t0: all,
		"created[lt]=" + t1:  all[1:],
		"created[lte]=" + t1: all,
		"created[gt]=" + t1:  {},
	} {
		res := b.get(t, "/v1/events?"+q)
		require.Equal(t, http.StatusOK, res.status, res.raw)
		require.Equal(t, want, dataIDs(t, res), q)
	}
}

func TestEvents_DeliverySuccess(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	ctx := context.Background()
	sc := store.Scope{Account: "acct_alpha"}
	var endpoints []string
	for _, url := range []string{"https://one.example.com/hook", "https://two.example.com/hook"} {
		res := b.post(t, "/v1/webhook_endpoints", "url="+url+"&enabled_events[]=*")
		require.Equal(t, http.StatusOK, res.status, res.raw)
		endpoints = append(endpoints, res.str("id"))
	}
	for range 4 {
		b.createSession(t, keyA, "type=document")
		b.clock.Advance(time.Second)
	}
	evs := dataIDs(t, b.get(t, "/v1/events")) // newest first: evs[3] is the oldest
	require.Len(t, evs, 4)
	// evs[0]: delivered to both; evs[1]: failed on the second; evs[2]: still pending on the first;
	// evs[3]: no delivery recorded at all.
	for _, ev := range evs[:3] {
		_, err := b.st.CreateDeliveries(ctx, sc, ev, endpoints, time.Hour)
		require.NoError(t, err)
	}
	finish := func(ev, ep, state string) {
		ok, err := b.st.FinishDelivery(ctx, sc, ev, ep, state)
		require.NoError(t, err)
		require.True(t, ok)
	}
	finish(evs[0], endpoints[0], store.DeliveryDelivered)
	finish(evs[0], endpoints[1], store.DeliveryDelivered)
	finish(evs[1], endpoints[0], store.DeliveryDelivered)
	finish(evs[1], endpoints[1], store.DeliveryFailed)
	finish(evs[2], endpoints[1], store.DeliveryDelivered)

	failed := b.get(t, "/v1/events?delivery_success=false")
	require.Equal(t, http.StatusOK, failed.status, failed.raw)
	require.Equal(t, evs[1:3], dataIDs(t, failed))
	require.Equal(t, []string{evs[0], evs[3]}, dataIDs(t, b.get(t, "/v1/events?delivery_success=true")))
	require.Equal(t, evs[2:3], dataIDs(t, b.get(t, "/v1/events?delivery_success=false&limit=1&starting_after="+evs[1])))
	page := b.get(t, "/v1/events?delivery_success=false&limit=1")
	require.Equal(t, evs[1:2], dataIDs(t, page))
	require.Equal(t, true, page.body["has_more"])
	require.Equal(t, evs[1:2], dataIDs(t, b.get(t, "/v1/events?delivery_success=false&type=identity.*&created[gte]=1700000002")))

	// A deleted endpoint's deliveries no longer count.
	del := b.do(t, request{method: http.MethodDelete, path: "/v1/webhook_endpoints/" + endpoints[1], key: keyA})
	require.Equal(t, http.StatusOK, del.status, del.raw)
	require.Equal(t, evs[2:3], dataIDs(t, b.get(t, "/v1/events?delivery_success=false")))

	res := b.get(t, "/v1/events?delivery_success=maybe")
	require.Equal(t, http.StatusBadRequest, res.status, res.raw)
	require.Equal(t, "delivery_success", res.errField("param"))
	other := b.do(t, request{method: http.MethodGet, path: "/v1/events?delivery_success=false", key: keyB})
	require.Empty(t, dataIDs(t, other))
}

func TestEvents_RetryRejections(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	b.createSession(t, keyA, "type=document")
	evs := dataIDs(t, b.get(t, "/v1/events"))
	require.Len(t, evs, 1)
	ep := b.post(t, "/v1/webhook_endpoints", "url=https://one.example.com/hook&enabled_events[]=*")
	require.Equal(t, http.StatusOK, ep.status, ep.raw)
	epID := ep.str("id")
	other := b.do(t, request{method: http.MethodPost, path: "/v1/webhook_endpoints", key: keyB,
		body: "url=https://two.example.com/hook&enabled_events[]=*"})
	require.Equal(t, http.StatusOK, other.status, other.raw)

	before := b.snapshot(t)
	for _, tc := range []struct {
		path, form string
		status     int
		code       string
		param      string
	}{
		{"/v1/events/evt_0000000000000000000000000/retry", "webhook_endpoint=" + epID, http.StatusNotFound, "resource_missing", "id"},
		{"/v1/events/" + evs[0] + "/retry", "webhook_endpoint=we_0000000000000000000000000", http.StatusNotFound, "resource_missing", "webhook_endpoint"},
		{"/v1/events/" + evs[0] + "/retry", "webhook_endpoint=" + other.str("id"), http.StatusNotFound, "resource_missing", "webhook_endpoint"},
		{"/v1/events/" + evs[0] + "/retry", "", http.StatusBadRequest, "parameter_missing", "webhook_endpoint"},
		{"/v1/events/" + evs[0] + "/retry", "webhook_endpoint=not-an-id", http.StatusBadRequest, "parameter_invalid", "webhook_endpoint"},
		{"/v1/events/" + evs[0] + "/retry", "webhook_endpoint=" + epID + "&extra=1", http.StatusBadRequest, "parameter_unknown", "extra"},
	} {
		res := b.post(t, tc.path, tc.form)
		require.Equal(t, tc.status, res.status, "%s %s: %s", tc.path, tc.form, res.raw)
		require.Equal(t, tc.code, res.errField("code"), tc.form)
		require.Equal(t, tc.param, res.errField("param"), tc.form)
	}
	requireUnchanged(t, before, b.snapshot(t), "rejected resends")
	require.Equal(t, http.StatusOK, b.post(t, "/v1/webhook_endpoints/"+epID, "disabled=true").status)
	before = b.snapshot(t)
	res := b.post(t, "/v1/events/"+evs[0]+"/retry", "webhook_endpoint="+epID)
	require.Equal(t, http.StatusBadRequest, res.status, res.raw)
	require.Equal(t, "webhook_endpoint", res.errField("param"))
	requireUnchanged(t, before, b.snapshot(t), "a resend to a disabled endpoint")
}
