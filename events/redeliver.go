package events

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/identityd/identityd/store"
)

// DeliveryTTL is how long a delivery's state is kept: its whole retry schedule, and as long as its attempts.
func (w *Webhooks) DeliveryTTL() time.Duration { return w.deliveryTTL() }

// redeliverParallel is how many enqueues one EnqueueRedeliveries call keeps in flight.
const redeliverParallel = 16

// EnqueueRedeliveries queues one delivery task of the redelivery job jobID per event to endpointID, to be sent
// now. The task ids are deterministic per (event, endpoint, job), so enqueueing the same events again after a
// crash queues nothing twice; a delivery that is pending with an earlier task in its backoff is sent now by
// this one, and whichever finishes it first makes the other do nothing.
func (w *Webhooks) EnqueueRedeliveries(ctx context.Context, sc store.Scope, jobID, endpointID string, eventIDs []string) error {
	ctx = context.WithoutCancel(ctx)
	var (
		mu     sync.Mutex
		first  error
		failed int
		wg     sync.WaitGroup
		next   = make(chan string)
	)
	for range min(redeliverParallel, len(eventIDs)) {
		wg.Go(func() {
			for id := range next {
				err := w.enqueueTask(ctx, sc, id, endpointID, deliverTaskID(sc, id, endpointID)+":"+jobID)
				if err != nil {
					mu.Lock()
					if failed++; first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, id := range eventIDs {
		next <- id
	}
	close(next)
	wg.Wait()
	if first != nil {
		return fmt.Errorf("%d of %d redelivery tasks not enqueued: %w", failed, len(eventIDs), first)
	}
	return nil
}
