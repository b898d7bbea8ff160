package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// member decodes one member of a JSON object, reporting whether it is present (a null is present).
func member(t *testing.T, raw string, path ...string) (json.RawMessage, bool) {
	t.Helper()
	cur := json.RawMessage(raw)
	for _, name := range path {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cur, &obj); err != nil || obj == nil {
			return nil, false
		}
		v, ok := obj[name]
		if !ok {
			return nil, false
		}
		cur = v
	}
	return cur, true
}

func requireMember(t *testing.T, raw, want string, path ...string) {
	t.Helper()
	got, ok := member(t, raw, path...)
	require.True(t, ok, "%v present in %s", path, raw)
	require.JSONEq(t, want, string(got), "%v", path)
}

func requireAbsent(t *testing.T, raw string, path ...string) {
	t.Helper()
	_, ok := member(t, raw, path...)
	require.False(t, ok, "%v absent from %s", path, raw)
}

func TestShapes_RelatedCustomerAccount(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	const sessions = "/v1/identity/verification_sessions"
	plain := b.createSession(t, keyA, "type=document")
	set := b.post(t, sessions, "type=document&related_customer_account=acct_customer1")
	require.Equal(t, http.StatusOK, set.status, set.raw)
	requireMember(t, set.raw, `"acct_customer1"`, "related_customer_account")
	id := set.str("id")

	for _, res := range []*response{
		b.get(t, sessions+"/"+plain),
		b.post(t, sessions+"/"+plain, "metadata[a]=b"),
		b.post(t, sessions+"/"+plain+"/cancel", ""),
	} {
		require.Equal(t, http.StatusOK, res.status, res.raw)
		requireMember(t, res.raw, `null`, "related_customer_account")
	}
	for _, res := range []*response{b.get(t, sessions+"/"+id), b.post(t, sessions+"/"+id+"/redact", "")} {
		require.Equal(t, http.StatusOK, res.status, res.raw)
		requireMember(t, res.raw, `"acct_customer1"`, "related_customer_account")
	}
	for _, path := range []string{sessions, sessions + "?expand[]=data.verified_outputs"} {
		list := b.get(t, path)
		require.Equal(t, http.StatusOK, list.status, list.raw)
		var page struct {
			Data []json.RawMessage `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(list.raw), &page))
		require.Len(t, page.Data, 2)
		for _, s := range page.Data {
			_, ok := member(t, string(s), "related_customer_account")
			require.True(t, ok, "%s: %s", path, s)
		}
	}

	before := b.snapshot(t)
	bad := b.post(t, sessions, "type=document&related_customer_account=")
	require.Equal(t, http.StatusBadRequest, bad.status, bad.raw)
	require.Equal(t, "related_customer_account", bad.errField("param"))
	requireUnchanged(t, before, b.snapshot(t), "an empty related_customer_account")
}

func TestShapes_EmptyOptionsDocumentUnsets(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	const sessions = "/v1/identity/verification_sessions/"
	id := b.createSession(t, keyA, "type=document&options[document][require_matching_selfie]=true")
	res := b.post(t, sessions+id, "options[document]=")
	require.Equal(t, http.StatusOK, res.status, res.raw)
	requireMember(t, res.raw, `{}`, "options")

	created := b.post(t, "/v1/identity/verification_sessions", "type=document&options[document]=")
	require.Equal(t, http.StatusOK, created.status, created.raw)
	requireMember(t, created.raw, `{}`, "options")

	before := b.snapshot(t)
	unknown := b.post(t, sessions+id, "options[document][require_everything]=true")
	require.Equal(t, http.StatusBadRequest, unknown.status, unknown.raw)
	require.Equal(t, "parameter_unknown", unknown.errField("code"))
	requireUnchanged(t, before, b.snapshot(t), "an unknown options[document] field")
}
