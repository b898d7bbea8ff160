package events

import (
	"context"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/identityd/identityd/store"
)

// redeliverParallel is how many enqueues one EnqueueRedeliveries call keeps in flight.
const redeliverParallel = 16

// EnqueueRedeliveries queues one delivery task of the redelivery job jobID per event to endpointID, to be sent
// now. The task ids are deterministic per (event, endpoint, job), so enqueueing the same events again after a
// crash queues nothing twice; a delivery that is pending with an earlier task in its backoff is sent now by
// this one, and whichever finishes it first makes the other do nothing.
func (w *Webhooks) EnqueueRedeliveries(ctx context.Context, sc store.Scope, jobID, endpointID string, eventIDs []string) error {
	ctx = context.WithoutCancel(ctx)
	var (
		g      errgroup.Group // no shared context: one failed enqueue does not stop the others
		failed atomic.Int64
	)
	g.SetLimit(redeliverParallel)
	for _, id := range eventIDs {
		g.Go(func() error {
			err := w.enqueueTask(ctx, sc, id, endpointID, deliverTaskID(sc, id, endpointID)+":"+jobID)
			if err != nil {
				failed.Add(1)
			}
			return err
		})
	}
	if first := g.Wait(); first != nil {
		return fmt.Errorf("%d of %d redelivery tasks not enqueued: %w", failed.Load(), len(eventIDs), first)
	}
	return nil
}
