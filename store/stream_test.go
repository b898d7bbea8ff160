package store_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

// TestStream_ConsumerGroup reads the account's event stream the way the README tells internal consumers
// to: a consumer group, XREADGROUP, XACK. Entries carry ids and the type only, never the object.
func TestStream_ConsumerGroup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, b := whSetup(t)
	rdb := b.redis.Client
	key := s.StreamKey(whScope)
	require.True(t, strings.HasPrefix(key, b.redis.KeyPrefix+":{"+whScope.Account+"}:test:"), key)

	// The group is created before the first event (MKSTREAM) and reads from the start ("0").
	require.NoError(t, rdb.XGroupCreateMkStream(ctx, key, "audit", "0").Err())

	email := "stream.person@example.com"
	sess, created, err := s.CreateSession(ctx, whScope, store.SessionCreate{Type: "document",
		Metadata: map[string]string{"order": "stream-secret-order"}, ProvidedDetails: &store.ProvidedDetails{Email: &email}},
		store.Origin{})
	require.NoError(t, err)
	_, canceled, err := s.CancelSession(ctx, whScope, sess.ID, store.Origin{})
	require.NoError(t, err)
	want := slices.Concat(created, canceled)
	require.Len(t, want, 2)

	res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "audit", Consumer: "c1",
		Streams: []string{key, ">"}, Count: 10}).Result()
	require.NoError(t, err)
	require.Len(t, res, 1)
	msgs := res[0].Messages
	require.Len(t, msgs, 2)
	for i, m := range msgs {
		require.Equal(t, map[string]any{"id": want[i].ID, "type": want[i].Type, "object": sess.ID,
			"account": whScope.Account}, m.Values)
		for _, v := range m.Values {
			require.NotContains(t, v, "stream-secret-order")
			require.NotContains(t, v, email)
		}
	}

	// Unacknowledged entries stay in the group's pending list (a crashed consumer's work can be claimed).
	pending, err := rdb.XPending(ctx, key, "audit").Result()
	require.NoError(t, err)
	require.EqualValues(t, 2, pending.Count)
	n, err := rdb.XAck(ctx, key, "audit", msgs[0].ID, msgs[1].ID).Result()
	require.NoError(t, err)
	require.EqualValues(t, 2, n)
	pending, err = rdb.XPending(ctx, key, "audit").Result()
	require.NoError(t, err)
	require.EqualValues(t, 0, pending.Count)

	// A second group sees the same entries independently; nothing new for the first one.
	require.NoError(t, rdb.XGroupCreate(ctx, key, "search", "0").Err())
	res, err = rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "search", Consumer: "c1",
		Streams: []string{key, ">"}, Count: 10}).Result()
	require.NoError(t, err)
	require.Len(t, res[0].Messages, 2)
	_, err = rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "audit", Consumer: "c1",
		Streams: []string{key, ">"}, Count: 10, Block: -1}).Result()
	require.ErrorIs(t, err, redis.Nil)
}

// TestStream_Bounded: the stream is trimmed (MAXLEN ~), so it never grows with the number of events.
func TestStream_Bounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, b := whSetup(t)
	s.StreamMaxLen = 10
	for range 150 { // 300 events
		sess, _, err := s.CreateSession(ctx, whScope, store.SessionCreate{Type: "document"}, store.Origin{})
		require.NoError(t, err)
		_, _, err = s.CancelSession(ctx, whScope, sess.ID, store.Origin{})
		require.NoError(t, err)
	}
	n, err := b.redis.Client.XLen(ctx, s.StreamKey(whScope)).Result()
	require.NoError(t, err)
	// Approximate trimming drops whole radix-tree nodes (100 entries by default), so up to about one node
	// more than MAXLEN remains — far fewer than the 300 appended.
	require.Less(t, n, int64(150))
	require.GreaterOrEqual(t, n, int64(10))
}
