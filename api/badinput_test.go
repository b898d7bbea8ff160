package api_test

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestBadInput_InvalidTextIsRejected(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	const sessions = "/v1/identity/verification_sessions"
	id := b.createSession(t, keyA, "type=document&metadata[keep]=1")
	before := b.snapshot(t)
	for _, rq := range []struct{ path, form, param string }{
		{sessions, "type=document&metadata[%FF]=one&metadata[%FE]=two", "metadata[\uFFFD]"},
		{sessions + "/" + id, "metadata[%FF]=one&metadata[%FE]=two", "metadata[\uFFFD]"},
		{sessions + "/" + id, "metadata[note]=a%00b", "metadata[note]"},
		{sessions + "/" + id, "metadata[no%00te]=x", "metadata[no\uFFFDte]"},
		{sessions + "/" + id, "provided_details[email]=a%C3@example.com", "provided_details[email]"},
		{sessions, "type=document&client_reference_id=%E2%82", "client_reference_id"},
	} {
		res := b.post(t, rq.path, rq.form)
		require.Equal(t, http.StatusBadRequest, res.status, "%s: %s", rq.form, res.raw)
		require.Equal(t, "parameter_invalid", res.errField("code"), rq.form)
		require.Equal(t, "invalid_request_error", res.errField("type"), rq.form)
		require.Equal(t, rq.param, res.errField("param"), rq.form)
		require.True(t, utf8.ValidString(res.raw), rq.form)
		require.NotContains(t, res.raw, "\\ufffd\"", "no value is echoed")
	}
	res := b.get(t, sessions+"?client_reference_id=%FF")
	require.Equal(t, http.StatusBadRequest, res.status, res.raw)
	require.Equal(t, "client_reference_id", res.errField("param"))
	requireUnchanged(t, before, b.snapshot(t), "requests with invalid text")

	got := b.get(t, sessions+"/"+id)
	require.Equal(t, map[string]any{"keep": "1"}, got.body["metadata"])
}

func TestBadInput_LimitsCountCharacters(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	const sessions = "/v1/identity/verification_sessions"
	key40, value500 := strings.Repeat("é", 40), strings.Repeat("é", 500)
	res := b.post(t, sessions, "type=document&metadata["+key40+"]="+value500+"&client_reference_id="+strings.Repeat("é", 5000))
	require.Equal(t, http.StatusOK, res.status, res.raw)
	require.Equal(t, value500, res.body["metadata"].(map[string]any)[key40])
	id := res.str("id")

	before := b.snapshot(t)
	for _, form := range []string{
		"metadata[" + key40 + "é]=x",
		"metadata[k]=" + value500 + "é",
	} {
		res := b.post(t, sessions+"/"+id, form)
		require.Equal(t, http.StatusBadRequest, res.status, res.raw)
		require.Equal(t, "parameter_invalid", res.errField("code"))
	}
	res = b.post(t, sessions, "type=document&client_reference_id="+strings.Repeat("é", 5001))
	require.Equal(t, http.StatusBadRequest, res.status, res.raw)
	require.Equal(t, "client_reference_id", res.errField("param"))
	requireUnchanged(t, before, b.snapshot(t), "requests over the character limits")
}

func TestBadInput_EchoesAreBounded(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	const sessions = "/v1/identity/verification_sessions"
	before := b.snapshot(t)
	long := strings.Repeat("n", 900_000)
	for _, form := range []string{"type=document&" + long + "=1", "type=document&metadata[" + long + "]=1", long + "]=1"} {
		res := b.post(t, sessions, form)
		require.Equal(t, http.StatusBadRequest, res.status)
		require.Less(t, len(res.raw), 1000, "the error does not repeat the name")
		param := res.errField("param")
		require.LessOrEqual(t, utf8.RuneCountInString(param), 101)
		require.True(t, param == "metadata" || strings.HasSuffix(param, "…"), param)
		require.NotContains(t, res.errField("message"), strings.Repeat("n", 101))
	}

	huge := strings.Repeat("k", 60_000)
	res := b.do(t, request{method: http.MethodPost, path: sessions, key: keyA, body: "type=document",
		header: map[string]string{"Idempotency-Key": huge}})
	require.Equal(t, http.StatusBadRequest, res.status, res.raw)
	require.Equal(t, "Idempotency-Key", res.errField("param"))
	require.Empty(t, res.header.Get("Idempotency-Key"), "a rejected key is not echoed")
	require.Less(t, len(res.raw), 1000)
	requireUnchanged(t, before, b.snapshot(t), "requests with over-long names")

	ok := b.do(t, request{method: http.MethodPost, path: sessions, key: keyA, body: "type=document",
		header: map[string]string{"Idempotency-Key": "fine-key"}})
	require.Equal(t, http.StatusOK, ok.status, ok.raw)
	require.Equal(t, "fine-key", ok.header.Get("Idempotency-Key"), "an accepted key is echoed as Stripe does")
}
