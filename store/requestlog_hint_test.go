package store_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

// TestSaveRequestLog_InRedactionHint: a log whose caller names a session in RequestLog.InRedaction (the redact
// call's own) is scrubbed for it before the first write — one script run, not two — and the hint never
// replaces the check: another session of the log whose redaction was requested is still found and scrubbed,
// and a session not in redaction keeps its data.
func TestSaveRequestLog_InRedactionHint(t *testing.T) {
	ctx := context.Background()
	b := setup(t)
	emails := map[string]string{}
	session := func(email string, redact bool) *store.Session {
		t.Helper()
		sess := b.create(t, store.SessionCreate{ProvidedDetails: &store.ProvidedDetails{Email: &email}})
		if redact {
			_, err := b.st.RequestRedaction(ctx, b.sc, sess.ID, store.Requester{Type: store.RequestedByRequest, ID: "req_r"}, store.Origin{})
			require.NoError(t, err)
		}
		emails[sess.ID] = email
		return sess
	}
	own := session("own.call@example.com", true)
	other := session("other.redaction@example.com", true)
	plain := session("plain.session@example.com", false)
	runs := &scriptRuns{}
	b.redis.Client.AddHook(runs)
	save := func(hint []string, sessions ...*store.Session) string {
		t.Helper()
		resp, err := json.Marshal(map[string]any{"object": "list", "data": sessions})
		require.NoError(t, err)
		var ids []string
		for _, s := range sessions {
			ids = append(ids, s.ID)
		}
		l := &store.RequestLog{ID: store.NewID("req"), Created: b.clock.Now().Unix(), Method: "POST",
			Path: "/v1/identity/verification_sessions/" + own.ID + "/redact", Status: 200, Response: resp,
			Params: []store.Param{{Key: "metadata[note]", Value: "x"}}, Objects: ids, InRedaction: hint}
		runs.n.Store(0)
		require.NoError(t, b.st.SaveRequestLog(ctx, b.sc, l))
		stored, err := b.redis.Client.Get(ctx, b.key("req:"+l.ID)).Bytes()
		require.NoError(t, err)
		doc, err := store.DecodeDoc(stored)
		require.NoError(t, err)
		return string(doc)
	}

	save(nil, plain) // loads the script
	raw := save([]string{own.ID}, own)
	require.NotContains(t, raw, emails[own.ID])
	require.Contains(t, raw, "[redacted]")
	require.EqualValues(t, 1, runs.n.Load(), "the hinted session is scrubbed before the first write")

	raw = save(nil, own)
	require.NotContains(t, raw, emails[own.ID])
	require.EqualValues(t, 2, runs.n.Load(), "without the hint the script finds the record, then writes")

	raw = save([]string{own.ID, "vs_not_in_this_log"}, own, other, plain)
	require.NotContains(t, raw, emails[own.ID])
	require.NotContains(t, raw, emails[other.ID], "a session not hinted is still checked")
	require.Contains(t, raw, emails[plain.ID], "a session not in redaction keeps its data")
	require.EqualValues(t, 2, runs.n.Load())
}
