package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// Lists are newest first by (created, id). Objects made within one second share `created`, so their ids
// must sort in creation order for "newest first" to hold (a session's `.created` and `.processing` events, or
// two reports of a quick resubmission, are routinely made in the same second).
func TestList_SameSecondIsNewestFirst(t *testing.T) {
	t.Parallel()
	r := storetest.New(t)
	st := r.Store(storetest.NewFakeClock(time.Unix(1_800_000_000, 0)))
	ctx := context.Background()
	sc := store.Scope{Account: "acct_order"}
	var made []string
	for range 20 {
		sess, _, err := st.CreateSession(ctx, sc, store.SessionCreate{Type: "document"}, store.Origin{})
		require.NoError(t, err)
		made = append(made, sess.ID)
	}
	slices.Reverse(made)

	page, _, err := st.ListSessions(ctx, sc, store.SessionFilter{}, store.Page{Limit: 100})
	require.NoError(t, err)
	var listed []string
	for _, s := range page {
		listed = append(listed, s.ID)
	}
	require.Equal(t, made, listed)

	evs, _, err := st.ListEvents(ctx, sc, store.EventFilter{}, store.Page{Limit: 100})
	require.NoError(t, err)
	var evSessions []string
	for _, ev := range evs {
		evSessions = append(evSessions, ev.ObjectID())
	}
	require.Equal(t, made, evSessions)
}

func TestNewID(t *testing.T) {
	t.Parallel()
	prev := store.NewID("vs")
	for range 10000 {
		id := store.NewID("vs")
		require.Len(t, id, len("vs_")+24)
		require.Greater(t, id, prev, "ids made one after another sort in that order")
		prev = id
	}
}
