package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWebhookRedelivery_API: the redeliver call validates `since` (required, an integer, within the last 30
// days and not in the future) and the endpoint (existing, enabled) before it changes anything, then answers a
// running job, enqueues its walk once, and shows it by id.
func TestWebhookRedelivery_API(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	ep := b.post(t, "/v1/webhook_endpoints", "url=https://merchant.example.com/hook&enabled_events[]=*")
	require.Equal(t, http.StatusOK, ep.status, ep.raw)
	epID := ep.str("id")
	path := "/v1/webhook_endpoints/" + epID + "/redeliver"
	now := b.clock.Now().Unix()

	t.Run("BadInputChangesNothing", func(t *testing.T) {
		before := b.snapshot(t)
		for _, tc := range []struct{ path, form, param, code string }{
			{path, "", "since", "parameter_missing"},
			{path, "since=yesterday", "since", "parameter_invalid_integer"},
			{path, fmt.Sprintf("since=%d", now-31*24*3600), "since", "parameter_invalid"},
			{path, fmt.Sprintf("since=%d", now+60), "since", "parameter_invalid"},
			{path, fmt.Sprintf("since=%d&colour=red", now), "colour", "parameter_unknown"},
		} {
			res := b.post(t, tc.path, tc.form)
			require.Equal(t, http.StatusBadRequest, res.status, "%s: %s", tc.form, res.raw)
			require.Equal(t, tc.param, res.errField("param"), tc.form)
			require.Equal(t, tc.code, res.errField("code"), tc.form)
		}
		missing := b.post(t, "/v1/webhook_endpoints/we_doesnotexist/redeliver", fmt.Sprintf("since=%d", now))
		require.Equal(t, http.StatusNotFound, missing.status, missing.raw)
		require.Equal(t, "resource_missing", missing.errField("code"))
		requireUnchanged(t, before, b.snapshot(t), "rejected redeliver calls")
		require.Empty(t, b.queue.redeliveries)
	})

	t.Run("DisabledEndpointIsRejected", func(t *testing.T) {
		other := b.post(t, "/v1/webhook_endpoints", "url=https://other.example.com/hook&enabled_events[]=*")
		require.Equal(t, http.StatusOK, b.post(t, "/v1/webhook_endpoints/"+other.str("id"), "disabled=true").status)
		res := b.post(t, "/v1/webhook_endpoints/"+other.str("id")+"/redeliver", fmt.Sprintf("since=%d", now))
		require.Equal(t, http.StatusBadRequest, res.status, res.raw)
		require.Equal(t, "id", res.errField("param"))
	})

	t.Run("StartsAJob", func(t *testing.T) {
		res := b.post(t, path, fmt.Sprintf("since=%d", now-3600))
		require.Equal(t, http.StatusOK, res.status, res.raw)
		require.Regexp(t, `^whrd_`, res.str("id"))
		require.Equal(t, "webhook_redelivery", res.str("object"))
		require.Equal(t, "running", res.str("status"))
		require.Equal(t, epID, res.str("webhook_endpoint"))
		require.EqualValues(t, now-3600, res.body["since"])
		for _, f := range []string{"total", "enqueued", "delivered", "failed"} {
			require.EqualValues(t, 0, res.body[f], f)
		}
		require.Nil(t, res.body["completed_at"])
		b.queue.mu.Lock()
		require.Equal(t, []string{res.str("id")}, b.queue.redeliveries)
		b.queue.mu.Unlock()

		got := b.get(t, "/v1/webhook_redeliveries/"+res.str("id"))
		require.Equal(t, http.StatusOK, got.status, got.raw)
		require.Equal(t, res.body, got.body)
		require.Equal(t, http.StatusNotFound, b.get(t, "/v1/webhook_redeliveries/whrd_missing").status)
		other := b.do(t, request{method: http.MethodGet, path: "/v1/webhook_redeliveries/" + res.str("id"), key: keyB})
		require.Equal(t, http.StatusNotFound, other.status, "another account's job")
	})
}
