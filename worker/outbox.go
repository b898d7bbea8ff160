package worker

import (
	"context"
	"time"

	"github.com/identityd/identityd/store"
)

// FanoutGrace is how old an event's webhook outbox entry must be before the reconciler fans the event out
// itself. A live process fans out within milliseconds of its commit; an entry older than this belongs to one
// that died or failed in between. A fan-out that merely ran late does no harm: a second fan-out sends nothing
// twice.
const FanoutGrace = 5 * time.Second

// outboxPage bounds how many events one reconcile pass fans out per scope; the next pass takes the rest.
const outboxPage = 1000

// reconcileOutbox finishes the fan-out of every event of sc whose outbox entry is older than FanoutGrace:
// their deliveries are recorded and enqueued as the dead process would have done, and the entries removed.
// An event that no longer exists has nothing to deliver. It returns how many events it fanned out.
func (w *Worker) reconcileOutbox(ctx context.Context, sc store.Scope) (int, error) {
	if w.Webhooks == nil {
		return 0, nil // no delivery in this process: the entries wait for a worker that has it
	}
	ids, err := w.Store.OutboxDue(ctx, sc, w.Store.Now().Add(-FanoutGrace), outboxPage)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	evs, err := w.Store.EventHeads(ctx, sc, ids)
	if err != nil {
		return 0, err
	}
	var gone []string
	found := evs[:0]
	for i, ev := range evs {
		if ev == nil {
			gone = append(gone, ids[i])
			continue
		}
		found = append(found, ev)
	}
	if err := w.Store.ClearOutbox(ctx, sc, gone...); err != nil {
		return 0, err
	}
	if err := w.Webhooks.Fanout(ctx, sc, found); err != nil {
		return 0, err
	}
	w.logger().Info("finished an interrupted webhook fan-out", "account", sc.Account, "events", len(found))
	return len(found), nil
}
