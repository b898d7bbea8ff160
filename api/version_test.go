package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStripeVersion(t *testing.T) {
	t.Parallel()
	const sessions = "/v1/identity/verification_sessions"
	withVersion := func(method, path, body, version string) request {
		return request{method: method, path: path, key: keyA, body: body, header: map[string]string{"Stripe-Version": version}}
	}

	t.Run("DefaultAndEcho", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.post(t, sessions, "type=document")
		require.Equal(t, http.StatusOK, res.status, res.raw)
		require.Equal(t, "2026-03-25.dahlia", res.header.Get("Stripe-Version"), "the account default without a header")
		for _, v := range []string{"2022-11-15", "2026-10-28.endive", "2020-08-27", "2024-09-30.acacia"} {
			res := b.do(t, withVersion(http.MethodGet, sessions, "", v))
			require.Equal(t, http.StatusOK, res.status, res.raw)
			require.Equal(t, v, res.header.Get("Stripe-Version"))
		}
		padded := b.do(t, withVersion(http.MethodGet, sessions, "", " 2022-11-15 "))
		require.Equal(t, http.StatusOK, padded.status, padded.raw)
		require.Equal(t, "2022-11-15", padded.header.Get("Stripe-Version"))
	})

	t.Run("OneShapeForEveryVersion", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		id := b.createSession(t, keyA, "type=document&related_customer_account=acct_c1&client_reference_id=r1")
		old := b.do(t, withVersion(http.MethodGet, sessions+"/"+id, "", "2022-11-15"))
		cur := b.do(t, withVersion(http.MethodGet, sessions+"/"+id, "", "2026-10-28.endive"))
		require.Equal(t, http.StatusOK, old.status, old.raw)
		require.JSONEq(t, cur.raw, old.raw)
		requireMember(t, old.raw, `"acct_c1"`, "related_customer_account")
	})

	t.Run("EventsInTheRequestsVersion", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		b.createSession(t, keyA, "type=document")
		list := b.do(t, withVersion(http.MethodGet, "/v1/events", "", "2022-11-15"))
		require.Equal(t, http.StatusOK, list.status, list.raw)
		data := list.body["data"].([]any)
		require.Len(t, data, 1)
		ev := data[0].(map[string]any)
		require.Equal(t, "2022-11-15", ev["api_version"])
		one := b.do(t, withVersion(http.MethodGet, "/v1/events/"+ev["id"].(string), "", "2026-10-28.endive"))
		require.Equal(t, "2026-10-28.endive", one.str("api_version"), one.raw)
		require.Equal(t, "2026-03-25.dahlia", b.get(t, "/v1/events/"+ev["id"].(string)).str("api_version"))

		// The request log keeps the version the list was answered in.
		logs := b.get(t, "/v1/request_logs?limit=100")
		require.Equal(t, http.StatusOK, logs.status, logs.raw)
		found := false
		for _, l := range logs.body["data"].([]any) {
			entry := l.(map[string]any)
			if entry["path"] == "/v1/events" {
				found = true
				resp := entry["response"].(map[string]any)
				require.Equal(t, "2022-11-15", resp["data"].([]any)[0].(map[string]any)["api_version"])
			}
		}
		require.True(t, found, logs.raw)
	})

	t.Run("Rejected", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		before := b.snapshot(t)
		for _, v := range []string{"2019-2-19", "latest", "2026-03-25.Dahlia", "2025-09-30.acacia", "2020-08-28",
			"2026-01-28.preview", "2099-01-01.zinnia"} {
			res := b.do(t, withVersion(http.MethodPost, sessions, "type=document", v))
			require.Equal(t, http.StatusBadRequest, res.status, "%s: %s", v, res.raw)
			require.Equal(t, "invalid_request_error", res.errField("type"))
			require.Equal(t, "Stripe-Version", res.errField("param"))
			require.True(t, strings.HasPrefix(res.errField("message"), "Invalid Stripe API version"), res.raw)
			require.NotContains(t, res.raw, v, "the value is never echoed")
			require.Empty(t, res.header.Get("Stripe-Version"))
		}
		requireUnchanged(t, before, b.snapshot(t), "a request with an invalid Stripe-Version")

		req, err := http.NewRequest(http.MethodGet, b.srv.URL+sessions, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+keyA)
		req.Header.Add("Stripe-Version", "2022-11-15")
		req.Header.Add("Stripe-Version", "2026-03-25.dahlia")
		two, err := b.srv.Client().Do(req)
		require.NoError(t, err)
		defer two.Body.Close()
		require.Equal(t, http.StatusBadRequest, two.StatusCode, "two Stripe-Version headers")

		noKey := b.do(t, request{method: http.MethodGet, path: sessions, header: map[string]string{"Stripe-Version": "x"}})
		require.Equal(t, http.StatusUnauthorized, noKey.status, "authentication comes first")
	})
}

func TestWebhookEndpoint_APIVersion(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	const endpoints = "/v1/webhook_endpoints"
	for _, v := range []string{"2022-11-15", "2026-10-28.endive", "2026-03-25.dahlia"} {
		res := b.post(t, endpoints, "url=https://m.example/h&enabled_events[]=*&api_version="+v)
		require.Equal(t, http.StatusOK, res.status, res.raw)
		require.Equal(t, v, res.str("api_version"))
		require.Equal(t, v, b.get(t, endpoints+"/"+res.str("id")).str("api_version"))
	}
	none := b.post(t, endpoints, "url=https://m.example/h&enabled_events[]=*")
	require.Equal(t, http.StatusOK, none.status, none.raw)
	requireMember(t, none.raw, `null`, "api_version")

	before := b.snapshot(t)
	for _, v := range []string{"2020-08-28", "2026-3-25.dahlia", "", "2025-09-30.acacia"} {
		res := b.post(t, endpoints, "url=https://m.example/h&enabled_events[]=*&api_version="+v)
		require.Equal(t, http.StatusBadRequest, res.status, "%q: %s", v, res.raw)
		require.Equal(t, "api_version", res.errField("param"))
		require.Equal(t, "parameter_invalid", res.errField("code"))
	}
	requireUnchanged(t, before, b.snapshot(t), "an invalid api_version")
}
