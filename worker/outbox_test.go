package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
	"github.com/identityd/identityd/worker"
)

// TestReconcile_FinishesInterruptedFanout: an event whose process died between its commit and its fan-out is
// fanned out by the reconciler once its outbox entry is older than the grace period, and not before; a second
// pass sends nothing more.
func TestReconcile_FinishesInterruptedFanout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := storetest.New(t)
	clock := storetest.NewFakeClock(time.Now())
	st := r.Store(clock)
	queues := worker.NewQueues(r.QueuePrefix)
	ac := asynq.NewClientFromRedisClient(r.Client)
	inspector := asynq.NewInspectorFromRedisClient(r.Client)
	w := &worker.Worker{Store: st, Client: &worker.Client{Asynq: ac, Queues: queues}, Inspector: inspector,
		Emitter: &events.Emitter{}, Metrics: events.NewMetrics(nil),
		Webhooks: &events.Webhooks{Store: st, Asynq: ac, Queue: queues.Default}}
	sc := store.Scope{Account: "acct_outbox"}
	ep, err := st.CreateEndpoint(ctx, sc, store.EndpointCreate{URL: "http://127.0.0.1:1/hook", EnabledEvents: []string{"*"}}, events.NewSecret())
	require.NoError(t, err)
	// The process that committed this event never fanned it out (it was killed, as far as anyone can tell).
	_, evs, err := st.CreateSession(ctx, sc, store.SessionCreate{Type: "document"}, store.Origin{})
	require.NoError(t, err)
	deliveries := func() []string {
		tasks, err := inspector.ListPendingTasks(queues.Default)
		if err != nil {
			return nil // no queue yet
		}
		var out []string
		for _, task := range tasks {
			if task.Type != events.TypeDeliverWebhook {
				continue
			}
			var p events.DeliverPayload
			require.NoError(t, json.Unmarshal(task.Payload, &p))
			out = append(out, p.EventID+">"+p.EndpointID)
		}
		return out
	}

	_, err = w.Reconcile(ctx)
	require.NoError(t, err)
	require.Empty(t, deliveries(), "within the grace period the committing process may still fan out")

	clock.Advance(worker.FanoutGrace + time.Second)
	_, err = w.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{evs[0].ID + ">" + ep.ID}, deliveries())
	ev, err := st.GetEvent(ctx, sc, evs[0].ID)
	require.NoError(t, err)
	require.Equal(t, 1, ev.PendingWebhooks)
	due, err := st.OutboxDue(ctx, sc, clock.Now(), 10)
	require.NoError(t, err)
	require.Empty(t, due, "fanned out: no longer due")

	_, err = w.Reconcile(ctx)
	require.NoError(t, err)
	require.Len(t, deliveries(), 1, "a second pass enqueues nothing")
}
