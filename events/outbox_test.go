package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

// TestFanout_Outbox holds the outbox's contract: an event is due for fan-out from the commit that stores it,
// a fan-out that recorded and enqueued everything takes it out, and one whose enqueue failed leaves it in with
// its delivery pending, so that the next fan-out (the reconciler's) enqueues that delivery.
func TestFanout_Outbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	due := func(t *testing.T, st *store.Store) []string {
		t.Helper()
		ids, err := st.OutboxDue(ctx, scope, time.Now().Add(time.Hour), 100)
		require.NoError(t, err)
		return ids
	}

	t.Run("ClearedOnceEnqueued", func(t *testing.T) {
		t.Parallel()
		w, b := setupDeliver(t)
		newEndpoint(t, b.store, "http://127.0.0.1:1/all", "*")
		_, evs, err := b.store.CreateSession(ctx, scope, store.SessionCreate{Type: "document"}, store.Origin{})
		require.NoError(t, err)
		require.Equal(t, []string{evs[0].ID}, due(t, b.store), "the commit records the event as due")
		require.NoError(t, w.Fanout(ctx, scope, evs))
		require.Empty(t, due(t, b.store))
	})

	t.Run("ClearedWithoutEndpoints", func(t *testing.T) {
		t.Parallel()
		w, b := setupDeliver(t)
		_, evs, err := b.store.CreateSession(ctx, scope, store.SessionCreate{Type: "document"}, store.Origin{})
		require.NoError(t, err)
		require.NoError(t, w.Fanout(ctx, scope, evs))
		require.Empty(t, due(t, b.store))
	})

	t.Run("FailedEnqueueStaysDue", func(t *testing.T) {
		t.Parallel()
		w, b := setupDeliver(t)
		ep, _ := newEndpoint(t, b.store, "http://127.0.0.1:1/all", "*")
		_, evs, err := b.store.CreateSession(ctx, scope, store.SessionCreate{Type: "document"}, store.Origin{})
		require.NoError(t, err)

		good := w.Asynq
		dead := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond})
		t.Cleanup(func() { _ = dead.Close() })
		w.Asynq = dead
		require.Error(t, w.Fanout(ctx, scope, evs))
		require.Equal(t, []string{evs[0].ID}, due(t, b.store), "not enqueued: still due")
		state, err := b.store.DeliveryState(ctx, scope, evs[0].ID, ep.ID)
		require.NoError(t, err)
		require.Equal(t, store.DeliveryPending, state, "the delivery waits, pending, for its task")
		require.Equal(t, 1, pendingWebhooks(t, b.store, evs[0].ID))

		w.Asynq = good
		require.NoError(t, w.Fanout(ctx, scope, evs))
		require.Empty(t, due(t, b.store))
		tasks, err := asynq.NewInspectorFromRedisClient(b.redis.Client).ListPendingTasks(w.Queue)
		require.NoError(t, err)
		require.Len(t, tasks, 1, "the second fan-out enqueued the pending delivery")
		require.Equal(t, 1, pendingWebhooks(t, b.store, evs[0].ID), "counted once")
	})
}
