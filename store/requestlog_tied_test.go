package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

// TestSaveRequestLog_TiedToRedaction: a log naming only sessions with no redaction requested is stored as
// sent, with its TTL, and indexed under every object; a log naming a session whose redaction was requested
// (even among others that are not) is stored scrubbed for that session (and its parameters), so nothing personal lands behind a
// redaction, whichever path (one script, or WATCH/MULTI) wrote it.
func TestSaveRequestLog_TiedToRedaction(t *testing.T) {
	ctx := context.Background()
	b := setup(t)
	email, other := "jenny.rosen@example.com", "ada@example.com"
	plain := b.create(t, store.SessionCreate{ProvidedDetails: &store.ProvidedDetails{Email: &other}})
	redacting := b.create(t, store.SessionCreate{ProvidedDetails: &store.ProvidedDetails{Email: &email}})
	_, err := b.st.RequestRedaction(ctx, b.sc, redacting.ID, store.Requester{Type: store.RequestedByRequest, ID: "req_r"}, store.Origin{})
	require.NoError(t, err)
	email2 := "grace.hopper@example.com"
	redacting2 := b.create(t, store.SessionCreate{ProvidedDetails: &store.ProvidedDetails{Email: &email2}})
	_, err = b.st.RequestRedaction(ctx, b.sc, redacting2.ID, store.Requester{Type: store.RequestedByRequest, ID: "req_r2"}, store.Origin{})
	require.NoError(t, err)
	save := func(objects ...string) string {
		t.Helper()
		sessions := []*store.Session{}
		for _, id := range objects {
			if id == plain.ID {
				sessions = append(sessions, plain)
			}
			if id == redacting.ID {
				sessions = append(sessions, redacting)
			}
			if id == redacting2.ID {
				sessions = append(sessions, redacting2)
			}
		}
		resp, err := json.Marshal(map[string]any{"object": "list", "data": sessions})
		require.NoError(t, err)
		l := &store.RequestLog{ID: store.NewID("req"), Created: b.clock.Now().Unix(), Method: "GET",
			Path: "/v1/identity/verification_sessions", Status: 200,
			Params: []store.Param{{Key: "provided_details[email]", Value: email}}, Response: resp, Objects: objects}
		require.NoError(t, b.st.SaveRequestLog(ctx, b.sc, l))
		stored, err := b.redis.Client.Get(ctx, b.key("req:"+l.ID)).Bytes()
		require.NoError(t, err)
		doc, err := store.DecodeDoc(stored)
		require.NoError(t, err)
		raw := string(doc)
		ttl, err := b.redis.Client.PTTL(ctx, b.key("req:"+l.ID)).Result()
		require.NoError(t, err)
		require.InDelta(t, float64(b.st.RequestLogTTL), float64(ttl), float64(time.Minute))
		for _, id := range objects {
			logs, _, err := b.st.ListRequestLogs(ctx, b.sc, id, store.Page{Limit: 100})
			require.NoError(t, err)
			found := false
			for _, got := range logs {
				found = found || got.ID == l.ID
			}
			require.True(t, found, "log not indexed under %s", id)
			ttl, err := b.redis.Client.PTTL(ctx, b.key("ix:req:obj:"+id)).Result()
			require.NoError(t, err)
			require.Greater(t, ttl, b.st.RequestLogTTL-time.Minute)
		}
		return raw
	}

	raw := save(plain.ID, "vr_1")
	require.Contains(t, raw, email, "a log about a session not in redaction is kept as sent")
	require.Contains(t, raw, other)
	for _, objects := range [][]string{{redacting.ID}, {plain.ID, redacting.ID}, {redacting.ID, plain.ID}} {
		raw := save(objects...)
		require.NotContains(t, raw, email, "objects %v", objects)
		require.Contains(t, raw, "[redacted]")
		if len(objects) == 2 {
			require.Contains(t, raw, other, "only the redacting session's data is scrubbed")
		}
	}
	raw = save(redacting2.ID, plain.ID, redacting.ID)
	require.NotContains(t, raw, email, "scrubbed for every session in redaction it names")
	require.NotContains(t, raw, email2)
	require.Contains(t, raw, other)
}
