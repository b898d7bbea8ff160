package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// t0 is the fake clock's start: every session created before an Advance shares this `created` second.
var t0 = time.Unix(1_700_000_000, 0)

// testBundle is one test's store, its clock and Redis, and the scope most calls use.
type testBundle struct {
	st    *store.Store
	clock *storetest.FakeClock
	redis *storetest.Redis
	sc    store.Scope
}

// setup gives t its own key prefix on real Redis (TEST_REDIS_URL) or its own miniredis.
func setup(t *testing.T) *testBundle {
	t.Helper()
	r := storetest.New(t)
	clock := storetest.NewFakeClock(t0)
	return &testBundle{st: r.Store(clock), clock: clock, redis: r, sc: store.Scope{Account: "acct_alpha"}}
}

// create makes a session in b.sc and fails the test on error.
func (b *testBundle) create(t *testing.T, p store.SessionCreate) *store.Session {
	t.Helper()
	if p.Type == "" {
		p.Type = "document"
	}
	sess, evs, err := b.st.CreateSession(context.Background(), b.sc, p, store.Origin{RequestID: "req_test"})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	return sess
}

// key is a store key of b.sc; the layout is store/keys.go's (the tests read indexes directly to check them).
func (b *testBundle) key(rest string) string {
	mode := "test"
	if b.sc.Livemode {
		mode = "live"
	}
	return b.redis.KeyPrefix + ":{" + b.sc.Account + "}:" + mode + ":" + rest
}

// statusIndex returns the ids in the session status index of status.
func (b *testBundle) statusIndex(t *testing.T, status string) []string {
	t.Helper()
	members, err := b.redis.Client.ZRange(context.Background(), b.key("ix:vs:status:"+status), 0, -1).Result()
	require.NoError(t, err)
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m[len("000000000000:"):]
	}
	return ids
}

// eventTypes returns the types of every stored event about the session, sorted by the store's list order.
func (b *testBundle) eventTypes(t *testing.T, sessionID string) []string {
	t.Helper()
	ctx := context.Background()
	ids, err := b.st.SessionEventIDs(ctx, b.sc, sessionID)
	require.NoError(t, err)
	var types []string
	for _, id := range ids {
		ev, err := b.st.GetEvent(ctx, b.sc, id)
		require.NoError(t, err)
		require.Equal(t, sessionID, ev.ObjectID())
		types = append(types, ev.Type)
	}
	return types
}

// countEvents counts the account's events of typ through the public list call.
func (b *testBundle) countEvents(t *testing.T, typ string) int {
	t.Helper()
	evs, _, err := b.st.ListEvents(context.Background(), b.sc, store.EventFilter{Types: []string{typ}}, store.Page{Limit: 100})
	require.NoError(t, err)
	return len(evs)
}

// streamLen is the number of entries on the account's event stream.
func (b *testBundle) streamLen(t *testing.T) int64 {
	t.Helper()
	n, err := b.redis.Client.XLen(context.Background(), b.st.StreamKey(b.sc)).Result()
	require.NoError(t, err)
	return n
}

func ptr[T any](v T) *T { return new(v) }
