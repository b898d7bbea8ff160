package api

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// TestRenderSessionList_MatchesMarshal checks the spliced list rendering against the decoding one, byte for
// byte, on sessions written by every writer of a stored session: create (with every optional field and
// characters json.Marshal escapes), update, cancel, submit and verify, redaction request and completion.
func TestRenderSessionList_MatchesMarshal(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t).Store(storetest.NewFakeClock(time.Unix(1_700_000_000, 0)))
	sc := store.Scope{Account: "acct_splice"}
	str := func(s string) *string { return &s }
	yes := true
	create := func(p store.SessionCreate) *store.Session {
		sess, _, err := st.CreateSession(ctx, sc, p, store.Origin{})
		require.NoError(t, err)
		return sess
	}
	create(store.SessionCreate{Type: "id_number"})
	full := create(store.SessionCreate{Type: "document", ClientReferenceID: str(`ref "quoted" <b>&amp; \ é ` + "\u2028\x01"),
		Metadata: map[string]string{"z": "last", "a": "<script>", "m": "ünïcode 🎉"},
		Options: &store.Options{Document: &store.DocumentOptions{AllowedTypes: []string{"passport", "id_card"},
			RequireIDNumber: &yes, RequireLiveCapture: &yes, RequireMatchingSelfie: &yes}},
		ProvidedDetails: &store.ProvidedDetails{Email: str("jenny@example.com"), Phone: str("+15555550123")},
		RelatedCustomer: str("cus_1"), RelatedCustomerAccount: str("acct_c1"), RelatedPerson: &store.RelatedPerson{Account: "acct_1", Person: "person_1"}})
	_, _, err := st.UpdateSession(ctx, sc, full.ID, store.SessionUpdate{Metadata: map[string]string{"b": "added > 1"}}, store.Origin{})
	require.NoError(t, err)
	canceled := create(store.SessionCreate{Type: "document"})
	_, _, err = st.CancelSession(ctx, sc, canceled.ID, store.Origin{})
	require.NoError(t, err)
	verify := func(id string) {
		day, month, year := int64(1), int64(2), int64(1990)
		sub := &store.Submission{Outcome: store.OutcomeVerified, VerifiedOutputs: store.VerifiedOutputs{
			FirstName: str("Jenny"), LastName: str("Rosen <3"), Dob: &store.Date{Day: &day, Month: &month, Year: &year},
			IDNumber: str("123-45-6789")}, Document: store.SubmittedDoc{Number: str("D1"), Files: []string{"file_1"}}}
		_, _, err := st.Submit(ctx, sc, id, sub, store.Origin{})
		require.NoError(t, err)
		_, _, _, err = st.CompleteVerification(ctx, sc, id, sub.ID)
		require.NoError(t, err)
	}
	verified := create(store.SessionCreate{Type: "document", ProvidedDetails: &store.ProvidedDetails{Email: str("a@b.c")}})
	verify(verified.ID)
	failed := create(store.SessionCreate{Type: "document"})
	failedSub := &store.Submission{Outcome: store.OutcomeRequiresInput, LastErrorCode: "document_expired", LastErrorReason: str("expired <2020>")}
	_, _, err = st.Submit(ctx, sc, failed.ID, failedSub, store.Origin{})
	require.NoError(t, err)
	_, _, _, err = st.CompleteVerification(ctx, sc, failed.ID, failedSub.ID)
	require.NoError(t, err)
	processing := create(store.SessionCreate{Type: "document"})
	_, _, err = st.Submit(ctx, sc, processing.ID, &store.Submission{Outcome: store.OutcomeVerified}, store.Origin{})
	require.NoError(t, err)
	redacting := create(store.SessionCreate{Type: "document", ClientReferenceID: str("r")})
	_, err = st.RequestRedaction(ctx, sc, redacting.ID, store.Requester{Type: store.RequestedByRequest, ID: "req_1"}, store.Origin{})
	require.NoError(t, err)
	redacted := create(store.SessionCreate{Type: "document", Metadata: map[string]string{"k": "v"}})
	verify(redacted.ID)
	_, err = st.RequestRedaction(ctx, sc, redacted.ID, store.Requester{Type: store.RequestedByRequest, ID: "req_2"}, store.Origin{})
	require.NoError(t, err)
	_, err = st.CompleteRedaction(ctx, sc, redacted.ID)
	require.NoError(t, err)

	for _, f := range []store.SessionFilter{{}, {Status: store.StatusVerified}, {Status: store.StatusCanceled},
		{ClientReferenceID: *full.ClientReferenceID}, {RelatedCustomer: "cus_1"}, {Status: store.StatusProcessing},
		{RelatedCustomerAccount: "acct_c1"}, {RelatedCustomerAccount: "acct_c1", Status: store.StatusCanceled}} {
		for _, p := range []store.Page{{Limit: 100}, {Limit: 2}, {Limit: 3, StartingAfter: full.ID}, {Limit: 2, EndingBefore: canceled.ID}} {
			decoded, more, err := st.ListSessions(ctx, sc, f, p)
			require.NoError(t, err)
			raw, rawMore, err := st.ListSessionsJSON(ctx, sc, f, p)
			require.NoError(t, err)
			require.Equal(t, more, rawMore)
			require.Len(t, raw, len(decoded))
			c := &call{ctx: ctx, scope: sc}
			views, err := c.renderSessions(ctx, decoded, expansions{})
			require.NoError(t, err)
			want, err := json.Marshal(newList("/v1/identity/verification_sessions", views, more))
			require.NoError(t, err)
			got, err := c.renderSessionList("/v1/identity/verification_sessions", raw, rawMore)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got), "filter %+v page %+v", f, p)
			require.Equal(t, c.objects[:len(c.objects)/2], c.objects[len(c.objects)/2:], "both renderings touch the same sessions")
		}
	}
}

// TestListJSON_ReadsJSONItCannotWalk: a stored session that is valid JSON but not in json.Marshal's compact
// form (whitespace; stored plain, as DecodeDoc lets values written by hand or before compression be) is decoded and rendered like any other, never an error or a half-spliced body.
func TestListJSON_ReadsJSONItCannotWalk(t *testing.T) {
	ctx := context.Background()
	r := storetest.New(t)
	st := r.Store(storetest.NewFakeClock(time.Unix(1_700_000_000, 0)))
	sc := store.Scope{Account: "acct_splice"}
	sess, _, err := st.CreateSession(ctx, sc, store.SessionCreate{Type: "document", Metadata: map[string]string{"a": "b"}}, store.Origin{})
	require.NoError(t, err)
	key := r.KeyPrefix + ":{acct_splice}:test:vs:" + sess.ID
	stored, err := r.Client.Get(ctx, key).Bytes()
	require.NoError(t, err)
	compact, err := store.DecodeDoc(stored)
	require.NoError(t, err)
	var doc any
	require.NoError(t, json.Unmarshal(compact, &doc))
	spaced, err := json.MarshalIndent(doc, "", "  ")
	require.NoError(t, err)
	require.NoError(t, r.Client.Set(ctx, key, spaced, 0).Err())

	raw, _, err := st.ListSessionsJSON(ctx, sc, store.SessionFilter{Status: store.StatusRequiresInput}, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, raw, 1)
	c := &call{ctx: ctx, scope: sc}
	got, err := c.renderSessionList("/v1/identity/verification_sessions", raw, false)
	require.NoError(t, err)
	decoded, _, err := st.ListSessions(ctx, sc, store.SessionFilter{Status: store.StatusRequiresInput}, store.Page{Limit: 10})
	require.NoError(t, err)
	views, err := c.renderSessions(ctx, decoded, expansions{})
	require.NoError(t, err)
	want, err := json.Marshal(newList("/v1/identity/verification_sessions", views, false))
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
}
