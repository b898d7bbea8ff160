package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/worker"
)

// The verification and redaction delays are floors. asynq keeps a scheduled task's time in whole seconds, so the
// client rounds a time within a second up; these tests read the time asynq stored instead of waiting for it.
func TestClient_DelaysAreFloors(t *testing.T) {
	t.Parallel()
	// An hour ahead, so asynq schedules the tasks instead of queueing them, and 0.43s past a whole second.
	now := time.Now().Add(time.Hour).Truncate(time.Second).Add(430 * time.Millisecond)
	setup := func(t *testing.T) (*worker.Client, *testBundle) {
		t.Helper()
		b := setup(t)
		c := &worker.Client{Asynq: asynq.NewClientFromRedisClient(b.redis.Client), Queues: b.queues,
			VerificationDelay: time.Second, RedactionDelay: 3 * time.Second, Now: func() time.Time { return now }}
		t.Cleanup(func() { _ = c.Asynq.Close() })
		return c, b
	}
	scheduledAt := func(t *testing.T, b *testBundle, queue string) time.Time {
		t.Helper()
		tasks, err := b.inspector.ListScheduledTasks(queue)
		require.NoError(t, err)
		require.Len(t, tasks, 1)
		return tasks[0].NextProcessAt
	}
	requireFloor := func(t *testing.T, got, floor time.Time) {
		t.Helper()
		require.False(t, got.Before(floor), "scheduled for %s, before the delay ends at %s", got, floor)
		require.True(t, got.Before(floor.Add(time.Second)), "scheduled for %s, a second or more after %s", got, floor)
	}

	t.Run("Verify", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		require.NoError(t, c.EnqueueVerify(context.Background(), b.scope, "vs_1", "sub_1"))
		requireFloor(t, scheduledAt(t, b, b.queues.Verify), now.Add(time.Second))
	})
	t.Run("Redact", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		require.NoError(t, c.EnqueueRedact(context.Background(), b.scope, "vs_1"))
		requireFloor(t, scheduledAt(t, b, b.queues.Redact), now.Add(3*time.Second))
	})
	t.Run("RedactBatch", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		require.NoError(t, c.EnqueueRedactBatch(context.Background(), b.scope, store.RedactionBatch{ID: "rb_1", SessionIDs: []string{"vs_1"}}))
		requireFloor(t, scheduledAt(t, b, b.queues.Redact), now.Add(3*time.Second))
	})
	t.Run("NoDelayIsQueuedAtOnce", func(t *testing.T) {
		t.Parallel()
		_, b := setup(t)
		c := &worker.Client{Asynq: asynq.NewClientFromRedisClient(b.redis.Client), Queues: b.queues}
		t.Cleanup(func() { _ = c.Asynq.Close() })
		require.NoError(t, c.EnqueueVerify(context.Background(), b.scope, "vs_1", "sub_1"))
		pending, err := b.inspector.ListPendingTasks(b.queues.Verify)
		require.NoError(t, err)
		require.Len(t, pending, 1, "a zero delay does not wait for the next whole second")
	})
}
