package store_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

func TestSessions_Create(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	p := store.SessionCreate{Type: "id_number", ClientReferenceID: new("user_1"), Metadata: map[string]string{"order": "42"},
		ProvidedDetails: &store.ProvidedDetails{Email: new("jenny@example.com")}, RelatedCustomer: new("cus_1")}
	sess, evs, err := b.st.CreateSession(ctx, b.sc, p, store.Origin{RequestID: "req_1", IdempotencyKey: "k1"})
	require.NoError(t, err)
	require.Regexp(t, `^vs_[0-9A-Za-z]{24}$`, sess.ID)
	require.Equal(t, "identity.verification_session", sess.Object)
	require.Equal(t, store.StatusRequiresInput, sess.Status)
	require.Equal(t, t0.Unix(), sess.Created)
	require.False(t, sess.Livemode)
	require.Regexp(t, `^`+sess.ID+`_secret_`, *sess.ClientSecret)
	require.Regexp(t, `/verify/[0-9A-Za-z]{32}$`, *sess.URL)
	require.NotContains(t, *sess.URL, strings.TrimPrefix(sess.ID, "vs_"), "the link's token is not the session id")
	require.Nil(t, sess.Redaction)

	require.Len(t, evs, 1)
	ev := evs[0]
	require.Equal(t, store.EventSessionCreated, ev.Type)
	require.Equal(t, store.APIVersion, ev.APIVersion)
	require.Equal(t, "req_1", *ev.Request.ID)
	require.Equal(t, "k1", *ev.Request.IdempotencyKey)
	stored, err := b.st.GetEvent(ctx, b.sc, ev.ID)
	require.NoError(t, err)
	require.Equal(t, "k1", *stored.Request.IdempotencyKey, "rendered from the personal-data record")
	require.Equal(t, "req_1", *stored.Request.ID)
	require.Equal(t, sess.ID, ev.ObjectID())
	var snap map[string]any
	require.NoError(t, json.Unmarshal(ev.Data.Object, &snap))
	require.Equal(t, "requires_input", snap["status"])
	require.NotContains(t, snap, "verified_outputs", "events show the default shape, without expandable outputs")

	got, err := b.st.GetSession(ctx, b.sc, sess.ID)
	require.NoError(t, err)
	require.Equal(t, sess, got)
	require.Equal(t, []string{store.EventSessionCreated}, b.eventTypes(t, sess.ID))
	require.Equal(t, int64(1), b.streamLen(t))
	require.Equal(t, []string{sess.ID}, b.statusIndex(t, store.StatusRequiresInput))

	t.Run("MetadataNeverNil", func(t *testing.T) {
		t.Parallel()
		s := b.create(t, store.SessionCreate{})
		require.NotNil(t, s.Metadata)
		require.NotNil(t, s.Options)
	})
	t.Run("LiveModeIsApart", func(t *testing.T) {
		t.Parallel()
		live := store.Scope{Account: b.sc.Account, Livemode: true}
		s, _, err := b.st.CreateSession(ctx, live, store.SessionCreate{Type: "document"}, store.Origin{})
		require.NoError(t, err)
		require.True(t, s.Livemode)
		_, err = b.st.GetSession(ctx, b.sc, s.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = b.st.GetSession(ctx, store.Scope{Account: "acct_other", Livemode: true}, s.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		got, err := b.st.GetSession(ctx, live, s.ID)
		require.NoError(t, err)
		require.Equal(t, s.ID, got.ID)
	})
}

func TestSessions_Update(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("MergesMetadata", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.create(t, store.SessionCreate{Metadata: map[string]string{"a": "1", "b": "2", "c": "3"}})
		got, evs, err := b.st.UpdateSession(ctx, b.sc, s.ID, store.SessionUpdate{Metadata: map[string]string{"b": "20", "c": "", "d": "4"}}, store.Origin{})
		require.NoError(t, err)
		require.Empty(t, evs, "an update emits no event")
		require.Equal(t, map[string]string{"a": "1", "b": "20", "d": "4"}, got.Metadata)
		stored, err := b.st.GetSession(ctx, b.sc, s.ID)
		require.NoError(t, err)
		require.Equal(t, got, stored)
		require.Equal(t, []string{store.EventSessionCreated}, b.eventTypes(t, s.ID))
	})
	t.Run("ClearThenSet", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.create(t, store.SessionCreate{Metadata: map[string]string{"a": "1"}})
		got, _, err := b.st.UpdateSession(ctx, b.sc, s.ID, store.SessionUpdate{ClearMetadata: true}, store.Origin{})
		require.NoError(t, err)
		require.Equal(t, map[string]string{}, got.Metadata)
		got, _, err = b.st.UpdateSession(ctx, b.sc, s.ID, store.SessionUpdate{ClearMetadata: true, Metadata: map[string]string{"n": "1"}}, store.Origin{})
		require.NoError(t, err)
		require.Equal(t, map[string]string{"n": "1"}, got.Metadata)
	})
	t.Run("TypeOptionsAndDetails", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.create(t, store.SessionCreate{ProvidedDetails: &store.ProvidedDetails{Email: new("a@example.com")},
			Options: &store.Options{Document: &store.DocumentOptions{RequireLiveCapture: new(true)}}})
		got, _, err := b.st.UpdateSession(ctx, b.sc, s.ID, store.SessionUpdate{Type: new("id_number"),
			ProvidedDetails: &store.ProvidedDetails{Phone: new("+15555550100")},
			Options:         &store.Options{Document: &store.DocumentOptions{AllowedTypes: []string{"passport"}}}}, store.Origin{})
		require.NoError(t, err)
		require.Equal(t, "id_number", got.Type)
		require.Equal(t, "a@example.com", *got.ProvidedDetails.Email, "details merge field by field")
		require.Equal(t, "+15555550100", *got.ProvidedDetails.Phone)
		require.Equal(t, []string{"passport"}, got.Options.Document.AllowedTypes)
		require.Nil(t, got.Options.Document.RequireLiveCapture, "options are replaced as a whole")
		got, _, err = b.st.UpdateSession(ctx, b.sc, s.ID, store.SessionUpdate{UnsetOptions: true}, store.Origin{})
		require.NoError(t, err)
		require.Equal(t, &store.Options{}, got.Options)
	})
	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.create(t, store.SessionCreate{})
		_, _, err := b.st.UpdateSession(ctx, b.sc, "vs_nope", store.SessionUpdate{Type: new("document")}, store.Origin{})
		require.ErrorIs(t, err, store.ErrNotFound)
		_, _, err = b.st.UpdateSession(ctx, store.Scope{Account: "acct_other"}, s.ID, store.SessionUpdate{Type: new("id_number")}, store.Origin{})
		require.ErrorIs(t, err, store.ErrNotFound)
	})
	for _, tc := range []struct {
		name string
		into func(t *testing.T, b *testBundle, id string)
	}{
		{"Canceled", func(t *testing.T, b *testBundle, id string) {
			t.Helper()
			_, _, err := b.st.CancelSession(ctx, b.sc, id, store.Origin{})
			require.NoError(t, err)
		}},
		{"Processing", func(t *testing.T, b *testBundle, id string) {
			t.Helper()
			_, _, err := b.st.Submit(ctx, b.sc, id, &store.Submission{Outcome: store.OutcomeVerified}, store.Origin{})
			require.NoError(t, err)
		}},
		{"Verified", func(t *testing.T, b *testBundle, id string) {
			t.Helper()
			_, _, err := b.st.Submit(ctx, b.sc, id, &store.Submission{Outcome: store.OutcomeVerified}, store.Origin{})
			require.NoError(t, err)
			_, _, _, err = b.st.CompleteVerification(ctx, b.sc, id, "")
			require.NoError(t, err)
		}},
		{"RedactionRequested", func(t *testing.T, b *testBundle, id string) {
			t.Helper()
			_, err := b.st.RequestRedaction(ctx, b.sc, id, store.Requester{Type: store.RequestedByRequest, ID: "req_x"}, store.Origin{})
			require.NoError(t, err)
		}},
	} {
		t.Run("RejectedWhen"+tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			s := b.create(t, store.SessionCreate{Metadata: map[string]string{"a": "1"}})
			tc.into(t, b, s.ID)
			before, err := b.st.GetSession(ctx, b.sc, s.ID)
			require.NoError(t, err)
			eventsBefore := b.eventTypes(t, s.ID)
			_, evs, err := b.st.UpdateSession(ctx, b.sc, s.ID, store.SessionUpdate{Metadata: map[string]string{"a": "2"}}, store.Origin{})
			require.ErrorIs(t, err, store.ErrInvalidTransition)
			require.Nil(t, evs)
			after, err := b.st.GetSession(ctx, b.sc, s.ID)
			require.NoError(t, err)
			require.Equal(t, before, after)
			require.ElementsMatch(t, eventsBefore, b.eventTypes(t, s.ID))
		})
	}
}

func TestSessions_Cancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("FromRequiresInput", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.create(t, store.SessionCreate{})
		got, evs, err := b.st.CancelSession(ctx, b.sc, s.ID, store.Origin{RequestID: "req_c"})
		require.NoError(t, err)
		require.Equal(t, store.StatusCanceled, got.Status)
		require.Nil(t, got.ClientSecret)
		require.Nil(t, got.URL)
		require.Len(t, evs, 1)
		require.Equal(t, store.EventSessionCanceled, evs[0].Type)
		require.Equal(t, "req_c", *evs[0].Request.ID)
		var snap map[string]any
		require.NoError(t, json.Unmarshal(evs[0].Data.Object, &snap))
		require.Equal(t, "canceled", snap["status"])
		require.Nil(t, snap["client_secret"])

		require.Empty(t, b.statusIndex(t, store.StatusRequiresInput))
		require.Equal(t, []string{s.ID}, b.statusIndex(t, store.StatusCanceled))
		require.ElementsMatch(t, []string{store.EventSessionCreated, store.EventSessionCanceled}, b.eventTypes(t, s.ID))
		require.Equal(t, int64(2), b.streamLen(t))

		listed, _, err := b.st.ListSessions(ctx, b.sc, store.SessionFilter{Status: store.StatusCanceled}, store.Page{})
		require.NoError(t, err)
		require.Equal(t, []string{s.ID}, ids(listed))
		listed, _, err = b.st.ListSessions(ctx, b.sc, store.SessionFilter{Status: store.StatusRequiresInput}, store.Page{})
		require.NoError(t, err)
		require.Empty(t, listed)

		t.Run("Irreversible", func(t *testing.T) {
			_, evs, err := b.st.CancelSession(ctx, b.sc, s.ID, store.Origin{})
			require.ErrorIs(t, err, store.ErrInvalidTransition)
			require.Nil(t, evs)
			require.Equal(t, 1, b.countEvents(t, store.EventSessionCanceled))
			_, _, err = b.st.Submit(ctx, b.sc, s.ID, &store.Submission{Outcome: store.OutcomeVerified}, store.Origin{})
			require.ErrorIs(t, err, store.ErrInvalidTransition)
		})
	})
	t.Run("RejectedFromProcessingAndVerified", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.create(t, store.SessionCreate{})
		_, evs, err := b.st.Submit(ctx, b.sc, s.ID, &store.Submission{Outcome: store.OutcomeVerified}, store.Origin{})
		require.NoError(t, err)
		require.Equal(t, store.EventSessionProcessing, evs[0].Type)
		require.Equal(t, []string{s.ID}, b.statusIndex(t, store.StatusProcessing))
		_, _, err = b.st.CancelSession(ctx, b.sc, s.ID, store.Origin{})
		require.ErrorIs(t, err, store.ErrInvalidTransition)

		got, report, evs, err := b.st.CompleteVerification(ctx, b.sc, s.ID, "")
		require.NoError(t, err)
		require.NotNil(t, report)
		require.Equal(t, store.StatusVerified, got.Status)
		require.Equal(t, []string{store.EventSessionVerified}, []string{evs[0].Type})
		require.Empty(t, b.statusIndex(t, store.StatusProcessing))
		require.Equal(t, []string{s.ID}, b.statusIndex(t, store.StatusVerified))
		_, _, err = b.st.CancelSession(ctx, b.sc, s.ID, store.Origin{})
		require.ErrorIs(t, err, store.ErrInvalidTransition)
		require.Zero(t, b.countEvents(t, store.EventSessionCanceled))
	})
	t.Run("FailedVerificationReturnsToRequiresInput", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.create(t, store.SessionCreate{})
		_, _, err := b.st.Submit(ctx, b.sc, s.ID, &store.Submission{Outcome: store.OutcomeRequiresInput, LastErrorCode: "document_expired"}, store.Origin{})
		require.NoError(t, err)
		got, _, evs, err := b.st.CompleteVerification(ctx, b.sc, s.ID, "")
		require.NoError(t, err)
		require.Equal(t, store.StatusRequiresInput, got.Status)
		require.Equal(t, "document_expired", *got.LastError.Code)
		require.Equal(t, store.EventSessionRequiresInput, evs[0].Type)
		require.Equal(t, []string{s.ID}, b.statusIndex(t, store.StatusRequiresInput))
		require.Empty(t, b.statusIndex(t, store.StatusProcessing))
		_, _, _, err = b.st.CompleteVerification(ctx, b.sc, s.ID, "")
		require.NoError(t, err, "a second completion is a no-op")
		require.Equal(t, 1, b.countEvents(t, store.EventSessionRequiresInput))
		_, _, err = b.st.CancelSession(ctx, b.sc, s.ID, store.Origin{})
		require.NoError(t, err, "back in requires_input, cancel is allowed again")
	})
	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.create(t, store.SessionCreate{})
		_, _, err := b.st.CancelSession(ctx, b.sc, "vs_nope", store.Origin{})
		require.ErrorIs(t, err, store.ErrNotFound)
		_, _, err = b.st.CancelSession(ctx, store.Scope{Account: "acct_other"}, s.ID, store.Origin{})
		require.ErrorIs(t, err, store.ErrNotFound)
		_, _, err = b.st.CancelSession(ctx, store.Scope{Account: b.sc.Account, Livemode: true}, s.ID, store.Origin{})
		require.ErrorIs(t, err, store.ErrNotFound)
		got, err := b.st.GetSession(ctx, b.sc, s.ID)
		require.NoError(t, err)
		require.Equal(t, store.StatusRequiresInput, got.Status)
	})
	t.Run("AfterRedactionRequested", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		s := b.create(t, store.SessionCreate{})
		res, err := b.st.RequestRedaction(ctx, b.sc, s.ID, store.Requester{Type: store.RequestedByRequest, ID: "req_r"}, store.Origin{})
		require.NoError(t, err)
		require.True(t, res.New)
		require.Equal(t, store.StatusCanceled, res.Session.Status, "redaction from requires_input cancels first")
		_, _, err = b.st.CancelSession(ctx, b.sc, s.ID, store.Origin{})
		require.ErrorIs(t, err, store.ErrInvalidTransition)
		require.Equal(t, 1, b.countEvents(t, store.EventSessionCanceled))
	})
}

func TestSessions_ConcurrentCancelOneWins(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for range 5 {
		s := b.create(t, store.SessionCreate{})
		const n = 8
		start := make(chan struct{})
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				_, _, errs[i] = b.st.CancelSession(ctx, b.sc, s.ID, store.Origin{})
			}(i)
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
			} else {
				require.ErrorIs(t, err, store.ErrInvalidTransition)
			}
		}
		require.Equal(t, 1, wins, "exactly one cancel wins")
		types := b.eventTypes(t, s.ID)
		require.ElementsMatch(t, []string{store.EventSessionCreated, store.EventSessionCanceled}, types)
	}
	require.Equal(t, 5, b.countEvents(t, store.EventSessionCanceled))
	require.Equal(t, int64(10), b.streamLen(t))
	require.Len(t, b.statusIndex(t, store.StatusCanceled), 5)
	require.Empty(t, b.statusIndex(t, store.StatusRequiresInput))
}

func TestSessions_ConcurrentCancelAndSubmit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for range 5 {
		s := b.create(t, store.SessionCreate{})
		start := make(chan struct{})
		var cancelErr, submitErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			_, _, cancelErr = b.st.CancelSession(ctx, b.sc, s.ID, store.Origin{})
		}()
		go func() {
			defer wg.Done()
			<-start
			_, _, submitErr = b.st.Submit(ctx, b.sc, s.ID, &store.Submission{Outcome: store.OutcomeVerified}, store.Origin{})
		}()
		close(start)
		wg.Wait()
		require.NotEqual(t, (cancelErr == nil), (submitErr == nil), "exactly one of cancel (%v) and submit (%v) wins", cancelErr, submitErr)
		got, err := b.st.GetSession(ctx, b.sc, s.ID)
		require.NoError(t, err)
		want := store.StatusProcessing
		if cancelErr == nil {
			want = store.StatusCanceled
		}
		require.Equal(t, want, got.Status)
		require.Len(t, b.eventTypes(t, s.ID), 2)
	}
}
