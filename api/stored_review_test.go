package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// TestRedaction_LastErrorReasonIsScrubbed: a reason is free text a client chooses (last_error[reason] of a
// requires_input submission), so the table calls last_error.reason and the checks' error.reason personal: after
// a completed redaction no key holds it — not the session, its record, or its report.
func TestRedaction_LastErrorReasonIsScrubbed(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	sc := store.Scope{Account: "acct_alpha"}
	const canary = "CanaryReasonAdaLovelace1815"
	id := b.createSession(t, keyA, "type=document")
	sub := b.post(t, "/v1/test_helpers/identity/verification_sessions/"+id+"/submit",
		"outcome=requires_input&last_error[code]=document_unverified_other&last_error[reason]="+canary)
	require.Equal(t, http.StatusOK, sub.status, sub.raw)
	_, _, _, err := b.st.CompleteVerification(context.Background(), sc, id, "")
	require.NoError(t, err)
	redact := b.post(t, "/v1/identity/verification_sessions/"+id+"/redact", "")
	require.Equal(t, http.StatusOK, redact.status, redact.raw)
	_, err = b.st.CompleteRedaction(context.Background(), sc, id)
	require.NoError(t, err)

	dump, err := storetest.ScanAll(context.Background(), b.redis.Client)
	require.NoError(t, err)
	var holders []string
	for k, v := range dump {
		if strings.Contains(v, canary) {
			holders = append(holders, k)
		}
	}
	require.Empty(t, holders, "the client's last_error[reason] survives a completed redaction")
}

// TestStored_ReplaysOfManyShapesAreByteIdentical: a replay before redaction is the first answer byte for byte, for creates
// and updates of many shapes, also after later changes to the session.
func TestStored_ReplaysOfManyShapesAreByteIdentical(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	creates := []string{
		"type=document",
		"type=document&options=",
		"type=document&options[document]=",
		"type=document&options[document][allowed_types][]=passport&options[document][require_matching_selfie]=true",
		"type=id_number&provided_details[email]=ada@example.com&provided_details[phone]=%2B15555550100",
		"type=document&metadata[a]=1&metadata[b]=&return_url=https://example.com/r&client_reference_id=x&related_customer=cus_1",
		"type=document&related_person[account]=acct_1&related_person[person]=person_1",
		"type=document&expand[]=verified_outputs",
		"type=document&expand[]=last_verification_report",
		"type=document&metadata[%22q%22]=%5C%3Cx%3E%26",
	}
	updates := []string{"metadata[a]=2", "metadata[a]=", "options=", "provided_details[email]=bob@example.com",
		"options[document][require_id_number]=true", "type=id_number", "metadata[%3Cz%3E]=%E2%80%A8"}
	n := 0
	key := func() string { n++; return "idem-" + string(rune('a'+n/26)) + string(rune('a'+n%26)) }
	for _, form := range creates {
		k := key()
		first := b.do(t, request{method: http.MethodPost, path: "/v1/identity/verification_sessions", key: keyA, body: form,
			header: map[string]string{"Idempotency-Key": k}})
		require.Equal(t, http.StatusOK, first.status, first.raw)
		id := first.str("id")
		var answers []struct{ path, form, key, raw string }
		answers = append(answers, struct{ path, form, key, raw string }{"/v1/identity/verification_sessions", form, k, first.raw})
		for _, u := range updates {
			uk := key()
			path := "/v1/identity/verification_sessions/" + id
			res := b.do(t, request{method: http.MethodPost, path: path, key: keyA, body: u,
				header: map[string]string{"Idempotency-Key": uk}})
			require.Equal(t, http.StatusOK, res.status, "%s: %s", u, res.raw)
			answers = append(answers, struct{ path, form, key, raw string }{path, u, uk, res.raw})
		}
		for _, a := range answers {
			again := b.do(t, request{method: http.MethodPost, path: a.path, key: keyA, body: a.form,
				header: map[string]string{"Idempotency-Key": a.key}})
			require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
			require.Equal(t, a.raw, again.raw, "replay of %s %q (created with %q)", a.path, a.form, form)
		}
	}
}

// TestStored_FailedAfterCommitKeepsNoFullFingerprint: an update that commits and then fails to render (a 5xx,
// cached for replay) records its personal part in the session's record; its idempotency entry must not keep the
// full fingerprint of its parameters beside it — a hash over personal values the redaction would not reach.
func TestStored_FailedAfterCommitKeepsNoFullFingerprint(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	ctx := context.Background()
	sc := store.Scope{Account: "acct_alpha"}
	id := b.createSession(t, keyA, "type=document")
	sub := b.post(t, "/v1/test_helpers/identity/verification_sessions/"+id+"/submit", "outcome=requires_input")
	require.Equal(t, http.StatusOK, sub.status, sub.raw)
	_, report, _, err := b.st.CompleteVerification(ctx, sc, id, "")
	require.NoError(t, err)
	reportKey := b.redis.KeyPrefix + ":{acct_alpha}:test:vr:" + report.ID
	saved, err := b.redis.Client.Get(ctx, reportKey).Result()
	require.NoError(t, err)
	require.NoError(t, b.redis.Client.Set(ctx, reportKey, "not a document", 0).Err()) // the render after the commit fails

	upd := b.do(t, request{method: http.MethodPost, path: "/v1/identity/verification_sessions/" + id, key: keyA,
		body:   "metadata[phone]=%2B15555550123&expand[]=last_verification_report",
		header: map[string]string{"Idempotency-Key": "upd-1"}})
	require.GreaterOrEqual(t, upd.status, 500, upd.raw)
	require.NoError(t, b.redis.Client.Set(ctx, reportKey, saved, 0).Err())
	read := b.get(t, "/v1/identity/verification_sessions/"+id)
	require.Contains(t, read.raw, "15555550123", "the update committed")

	require.Equal(t, http.StatusOK, b.post(t, "/v1/identity/verification_sessions/"+id+"/redact", "").status)
	_, err = b.st.CompleteRedaction(ctx, sc, id)
	require.NoError(t, err)

	dump, err := storetest.ScanAll(ctx, b.redis.Client)
	require.NoError(t, err)
	for k, v := range dump {
		if strings.HasPrefix(k, b.redis.KeyPrefix+":") && strings.Contains(k, ":idem:") && !strings.Contains(k, ":idem:obj:") {
			require.NotContains(t, v, `"fingerprint":"`, "%s: the full fingerprint of a request that changed %s survives its redaction", k, id)
		}
	}
}

// TestStored_RejectedRequestKeepsNoValue: the kept-parameter list is global, so a parameter an endpoint does not
// accept may carry a name kept for another endpoint (description, url of webhook endpoints); a rejected request's
// log keeps no value at all.
func TestStored_RejectedRequestKeepsNoValue(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	const canary = "CanaryUnknownValueTuring1912"
	res := b.post(t, "/v1/identity/verification_sessions", "type=document&description="+canary)
	require.Equal(t, http.StatusBadRequest, res.status, res.raw)
	require.Equal(t, "parameter_unknown", res.errField("code"))
	res = b.get(t, "/v1/identity/verification_sessions?url=https://example.com/"+canary)
	require.Equal(t, http.StatusBadRequest, res.status, res.raw)
	// Two unknown parameters: the error names one of them; the other keeps its value.
	res = b.post(t, "/v1/identity/verification_sessions", "type=document&description=x&url="+canary)
	require.Equal(t, http.StatusBadRequest, res.status, res.raw)
	res = b.post(t, "/v1/identity/verification_sessions", "type=document&url=x&description="+canary)
	require.Equal(t, http.StatusBadRequest, res.status, res.raw)
	// An unknown parameter with a kept name next to another error (a missing type): its value is kept.
	res = b.post(t, "/v1/identity/verification_sessions", "description="+canary)
	require.Equal(t, http.StatusBadRequest, res.status, res.raw)

	dump, err := storetest.ScanAll(context.Background(), b.redis.Client)
	require.NoError(t, err)
	var holders []string
	for k, v := range dump {
		if strings.Contains(v, canary) {
			holders = append(holders, k)
		}
	}
	require.Empty(t, holders, "the value of an unknown parameter is stored")
}
