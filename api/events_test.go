package api_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// dataIDs returns the ids in a list response's data, in order.
func dataIDs(t *testing.T, res *response) []string {
	t.Helper()
	require.Equal(t, http.StatusOK, res.status, res.raw)
	require.Equal(t, "list", res.str("object"))
	data, ok := res.body["data"].([]any)
	require.True(t, ok, res.raw)
	out := []string{}
	for _, d := range data {
		out = append(out, d.(map[string]any)["id"].(string))
	}
	return out
}

func TestAPI_Events(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	first := b.createSession(t, keyA, "type=document")
	b.clock.Advance(time.Second)
	second := b.createSession(t, keyA, "type=id_number")
	require.Equal(t, http.StatusOK, b.post(t, "/v1/identity/verification_sessions/"+second+"/cancel", "").status)
	b.createSession(t, keyB, "type=document") // another account's event never shows

	all := b.get(t, "/v1/events")
	ids := dataIDs(t, all)
	require.Len(t, ids, 3)
	require.Equal(t, "/v1/events", all.str("url"))
	require.Equal(t, false, all.body["has_more"])
	data := all.body["data"].([]any)
	oldest := data[2].(map[string]any)
	require.Equal(t, "identity.verification_session.created", oldest["type"])
	require.Equal(t, "event", oldest["object"])
	require.Equal(t, "2026-03-25.dahlia", oldest["api_version"])
	require.Equal(t, false, oldest["livemode"])
	require.Equal(t, first, oldest["data"].(map[string]any)["object"].(map[string]any)["id"])
	require.NotNil(t, oldest["request"].(map[string]any)["id"])

	one := b.get(t, "/v1/events/"+ids[0])
	require.Equal(t, http.StatusOK, one.status)
	require.Equal(t, ids[0], one.str("id"))
	other := b.do(t, request{method: http.MethodGet, path: "/v1/events/" + ids[0], key: keyB})
	require.Equal(t, http.StatusNotFound, other.status)

	canceled := dataIDs(t, b.get(t, "/v1/events?type=identity.verification_session.canceled"))
	require.Len(t, canceled, 1)
	both := dataIDs(t, b.get(t, "/v1/events?types[]=identity.verification_session.canceled&types[]=identity.verification_session.created"))
	require.Equal(t, ids, both)
	indexed := dataIDs(t, b.get(t, "/v1/events?types[0]=identity.verification_session.created"))
	require.Len(t, indexed, 2)
	since := dataIDs(t, b.get(t, "/v1/events?created[gte]="+strconv.FormatInt(time.Unix(1_700_000_001, 0).Unix(), 10)))
	require.Equal(t, ids[:2], since)

	page := b.get(t, "/v1/events?limit=1&starting_after="+ids[0])
	require.Equal(t, ids[1:2], dataIDs(t, page))
	require.Equal(t, true, page.body["has_more"])
	page = b.get(t, "/v1/events?limit=2&ending_before="+ids[2])
	require.Equal(t, ids[:2], dataIDs(t, page))
	require.Equal(t, false, page.body["has_more"])
}

func TestAPI_RequestLogs(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	created := b.do(t, request{method: http.MethodPost, path: "/v1/identity/verification_sessions", key: keyA,
		body: "type=document&metadata[order]=7", header: map[string]string{"Idempotency-Key": "log-1"}})
	require.Equal(t, http.StatusOK, created.status)
	id := created.str("id")
	b.clock.Advance(time.Second)
	read := b.get(t, "/v1/identity/verification_sessions/"+id)
	b.clock.Advance(time.Second)
	cancel := b.post(t, "/v1/identity/verification_sessions/"+id+"/cancel", "")
	b.get(t, "/v1/identity/verification_sessions/vs_other") // a 404 touches nothing

	b.clock.Advance(time.Second)
	logs := b.get(t, "/v1/request_logs?object="+id)
	want := []string{cancel.header.Get("Request-Id"), read.header.Get("Request-Id"), created.header.Get("Request-Id")}
	require.Equal(t, want, dataIDs(t, logs), "the log ids are the Request-Id headers, newest first")
	entry := logs.body["data"].([]any)[2].(map[string]any)
	require.Equal(t, "request_log", entry["object"])
	require.Equal(t, "POST", entry["method"])
	require.Equal(t, "/v1/identity/verification_sessions", entry["path"])
	require.Equal(t, float64(200), entry["status"])
	require.Equal(t, "log-1", entry["idempotency_key"])
	require.Equal(t, []any{map[string]any{"k": "type", "v": "document"}, map[string]any{"k": "metadata[order]", "v": "7"}}, entry["params"])
	require.Equal(t, id, entry["response"].(map[string]any)["id"])

	// Listing the logs is itself logged, in the account's list of logs (it names no object), and its logged
	// answer names the logs it listed by id, never their content.
	b.clock.Advance(time.Second)
	paged := b.get(t, "/v1/request_logs?object="+id+"&limit=2")
	require.Equal(t, want[:2], dataIDs(t, paged))
	require.Equal(t, true, paged.body["has_more"])
	all := b.get(t, "/v1/request_logs?limit=2")
	require.Equal(t, []string{paged.header.Get("Request-Id"), logs.header.Get("Request-Id")}, dataIDs(t, all))
	listed := all.body["data"].([]any)[1].(map[string]any)["response"].(map[string]any)
	require.Equal(t, []any{map[string]any{"id": want[0], "object": "request_log"}, map[string]any{"id": want[1], "object": "request_log"},
		map[string]any{"id": want[2], "object": "request_log"}}, listed["data"])
	require.Empty(t, dataIDs(t, b.do(t, request{method: http.MethodGet, path: "/v1/request_logs?object=" + id, key: keyB})),
		"another account sees no logs about the id")
}
