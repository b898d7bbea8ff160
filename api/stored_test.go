package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// idemPost sends a form POST with key A and an Idempotency-Key.
func (b *apiBundle) idemPost(t *testing.T, path, form, key string) *response {
	t.Helper()
	return b.do(t, request{method: http.MethodPost, path: path, key: keyA, body: form,
		header: map[string]string{"Idempotency-Key": key}})
}

// TestStored_ReplaysAreByteIdentical: a cached response is stored as a reference to a version of the session
// and rendered again on replay — byte for byte the first answer, for every call that can be replayed, with
// expansions and after the session changed since.
func TestStored_ReplaysAreByteIdentical(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	const sessions = "/v1/identity/verification_sessions"
	calls := []struct{ path, form string }{
		{sessions, "type=document&metadata[order]=7&provided_details[email]=jenny@example.com&provided_details[phone]=%2B15555550100&client_reference_id=ref-1&options[document][require_id_number]=true"},
	}
	first := b.idemPost(t, calls[0].path, calls[0].form, "create-1")
	require.Equal(t, http.StatusOK, first.status, first.raw)
	id := first.str("id")
	calls = append(calls,
		struct{ path, form string }{sessions + "/" + id, "metadata[order]=8&metadata[note]=second&expand[]=verified_outputs"},
		struct{ path, form string }{"/v1/test_helpers/identity/verification_sessions/" + id + "/submit",
			"verified_outputs[first_name]=Jenny&verified_outputs[last_name]=Rosen&verified_outputs[dob][day]=1&verified_outputs[dob][month]=2&verified_outputs[dob][year]=1990&expand[]=verified_outputs.dob"},
	)
	answers := []*response{first}
	for i, c := range calls[1:] {
		res := b.idemPost(t, c.path, c.form, "call-"+string(rune('a'+i)))
		require.Equal(t, http.StatusOK, res.status, res.raw)
		answers = append(answers, res)
	}
	b.clock.Advance(time.Second)
	for i, c := range calls {
		key := "create-1"
		if i > 0 {
			key = "call-" + string(rune('a'+i-1))
		}
		replay := b.idemPost(t, c.path, c.form, key)
		require.Equal(t, "true", replay.header.Get("Idempotent-Replayed"), c.path)
		require.Equal(t, answers[i].raw, replay.raw, "replay of %s", c.path)
	}

	// Once the session is in redaction, the same replays render scrubbed: nothing was rewritten for it.
	redact := b.idemPost(t, sessions+"/"+id+"/redact", "", "redact-1")
	require.Equal(t, http.StatusBadRequest, redact.status, "a processing session cannot be redacted: %s", redact.raw)
	_, _, _, err := b.st.CompleteVerification(context.Background(), store.Scope{Account: "acct_alpha"}, id, "")
	require.NoError(t, err)
	redact = b.idemPost(t, sessions+"/"+id+"/redact", "", "redact-2")
	require.Equal(t, http.StatusOK, redact.status, redact.raw)
	replay := b.idemPost(t, calls[0].path, calls[0].form, "create-1")
	require.NotContains(t, replay.raw, "jenny@example.com")
	require.NotContains(t, replay.raw, `"order":"7"`)
	require.Contains(t, replay.raw, `"email":"[redacted]"`)
	require.Equal(t, first.str("id"), replay.str("id"))
}

// TestStored_ListLogRendersTheListAsAnswered: a list page is logged as (id, version) references and its log
// renders what was answered then, not what the sessions look like now.
func TestStored_ListLogRendersTheListAsAnswered(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	id1 := b.createSession(t, keyA, "type=document&metadata[n]=1")
	id2 := b.createSession(t, keyA, "type=id_number&provided_details[email]=a@example.com")
	list := b.get(t, "/v1/identity/verification_sessions?limit=10")
	expanded := b.get(t, "/v1/identity/verification_sessions?limit=10&expand[]=data.verified_outputs")
	b.post(t, "/v1/identity/verification_sessions/"+id1, "metadata[n]=2")
	b.clock.Advance(time.Second)
	logs := b.get(t, "/v1/request_logs?limit=10")
	byID := map[string]json.RawMessage{}
	var page struct {
		Data []struct {
			ID       string          `json:"id"`
			Response json.RawMessage `json:"response"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(logs.raw), &page))
	for _, l := range page.Data {
		byID[l.ID] = l.Response
	}
	for _, res := range []*response{list, expanded} {
		logged, ok := byID[res.header.Get("Request-Id")]
		require.True(t, ok, "the list call is in the account's logs")
		require.JSONEq(t, res.raw, string(logged))
	}
	require.Contains(t, list.raw, id2)
	require.Contains(t, list.raw, `"n":"1"`, "the answer showed the metadata of then")
}

// TestStored_LogsOfLogsDoNotGrow: listing request logs is logged with the listed logs' ids, so neither the
// stored logs nor the answers grow with repeated listing (each listing once repeated all earlier ones).
func TestStored_LogsOfLogsDoNotGrow(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	id := b.createSession(t, keyA, "type=document&metadata[k]=v")
	var sizes []int
	for range 20 {
		res := b.get(t, "/v1/request_logs?limit=100")
		require.Equal(t, http.StatusOK, res.status)
		sizes = append(sizes, len(res.raw))
	}
	// Each answer lists one log more than the one before; each listed log is bounded.
	perLog := (sizes[19] - sizes[9]) / 10
	require.Less(t, perLog, 2500, "a listed log costs %d bytes; the answers were %v", perLog, sizes)
	dump, err := storetest.ScanAll(context.Background(), b.redis.Client)
	require.NoError(t, err)
	for key, v := range dump {
		if strings.HasPrefix(key, b.redis.KeyPrefix+":") && strings.Contains(key, ":req:req_") { // this test's logs only
			require.Less(t, len(v), 1024, "stored log %s holds %d bytes", key, len(v))
		}
	}
	require.NotEmpty(t, id)
}

// TestStored_RejectedRequestsKeepABoundedSummary: a rejected request's log keeps known parameter names and
// kept values only, cut short, whatever was sent.
func TestStored_RejectedRequestsKeepABoundedSummary(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	form := url.Values{"type": {"document"}, "client_reference_id": {strings.Repeat("r", 4000)}}
	for range 200 {
		form.Set("unknown_"+store.RandomString(8), strings.Repeat("x", 4000))
	}
	res := b.post(t, "/v1/identity/verification_sessions", form.Encode())
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, "parameter_unknown", res.errField("code"))
	logs := b.get(t, "/v1/request_logs?limit=1")
	entry := logs.body["data"].([]any)[0].(map[string]any)
	require.Equal(t, res.header.Get("Request-Id"), entry["id"])
	params := entry["params"].([]any)
	require.LessOrEqual(t, len(params), 50)
	for _, p := range params {
		kv := p.(map[string]any)
		require.NotContains(t, kv["k"], "unknown_", "an unknown name is not kept")
		require.LessOrEqual(t, len(kv["v"].(string)), 100)
	}
	errBody := entry["response"].(map[string]any)["error"].(map[string]any)
	require.Equal(t, store.Redacted, errBody["param"])
	require.NotContains(t, errBody["message"], "unknown_")
	dump, err := storetest.ScanAll(context.Background(), b.redis.Client)
	require.NoError(t, err)
	for key, v := range dump {
		if !strings.HasPrefix(key, b.redis.KeyPrefix+":") {
			continue // another test's keys (the tests share a real Redis database)
		}
		require.NotContains(t, v, strings.Repeat("x", 200), "%s holds a rejected value", key)
	}
}

// TestStored_ReferencesRenderScrubbedOnceRedactionIsRequested: between the redaction request and the worker's
// scrub, the session's own keys still hold its data, but nothing that refers to it shows it — logged answers
// (an expanded report included), events, the request's own parameters.
func TestStored_ReferencesRenderScrubbedOnceRedactionIsRequested(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	id := b.createSession(t, keyA, "type=document&metadata[who]=Ada%20Lovelace&provided_details[email]=ada@example.com")
	sub := b.post(t, "/v1/test_helpers/identity/verification_sessions/"+id+"/submit",
		"verified_outputs[first_name]=Ada&verified_outputs[last_name]=Lovelace&document[number]=AB123456")
	require.Equal(t, http.StatusOK, sub.status, sub.raw)
	_, _, _, err := b.st.CompleteVerification(context.Background(), store.Scope{Account: "acct_alpha"}, id, "")
	require.NoError(t, err)
	read := b.get(t, "/v1/identity/verification_sessions/"+id+"?expand[]=last_verification_report&expand[]=verified_outputs")
	require.Contains(t, read.raw, "Lovelace")
	before := b.get(t, "/v1/request_logs?object="+id+"&limit=100")
	require.Contains(t, before.raw, "Lovelace", "before the request the logs show what was answered")
	require.Contains(t, before.raw, "ada@example.com")

	redact := b.post(t, "/v1/identity/verification_sessions/"+id+"/redact", "")
	require.Equal(t, http.StatusOK, redact.status, redact.raw)
	for _, path := range []string{"/v1/request_logs?object=" + id + "&limit=100", "/v1/request_logs?limit=100", "/v1/events?limit=100"} {
		res := b.get(t, path)
		require.Equal(t, http.StatusOK, res.status, res.raw)
		for _, personal := range []string{"Lovelace", "ada@example.com", "AB123456", "Ada"} {
			require.NotContains(t, res.raw, personal, "%s after the redaction request", path)
		}
	}
}

// TestStored_LogOfSomethingGoneRendersNull: a log whose reference names a version that is not there (written by
// an older format, say) lists with a null response instead of failing the whole listing.
func TestStored_LogOfSomethingGoneRendersNull(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	id := b.createSession(t, keyA, "type=document")
	require.NoError(t, b.st.SaveRequestLog(context.Background(), store.Scope{Account: "acct_alpha"}, &store.RequestLog{
		ID: store.NewID("req"), Created: b.clock.Now().Unix(), Method: "GET", Path: "/v1/identity/verification_sessions/" + id,
		Status: 200, Response: json.RawMessage(`{"t":"session","id":"` + id + `","v":99}`), Objects: []string{id}}))
	logs := b.get(t, "/v1/request_logs?object="+id)
	require.Equal(t, http.StatusOK, logs.status, logs.raw)
	data := logs.body["data"].([]any)
	require.Len(t, data, 2)
	require.Nil(t, data[0].(map[string]any)["response"])
	require.Equal(t, id, data[1].(map[string]any)["response"].(map[string]any)["id"])
}
