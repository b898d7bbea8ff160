package events

import (
	"context"

	"github.com/identityd/identityd/store"
)

// Fanout receives events after the transaction that recorded them committed (webhook delivery plugs in here).
type Fanout interface {
	Fanout(ctx context.Context, sc store.Scope, evs []*store.Event) error
}

// Emitter is told of every committed event. The events are already stored and on the account's stream (same
// transaction as the change); the emitter counts them and hands them to the fan-out.
type Emitter struct {
	Metrics *Metrics
	Fanout  Fanout
}

// Published is called after a store transaction that emitted evs committed. A fan-out failure is returned
// for logging; it never undoes the change.
func (e *Emitter) Published(ctx context.Context, sc store.Scope, evs []*store.Event) error {
	if e == nil || len(evs) == 0 {
		return nil
	}
	if e.Metrics != nil {
		for _, ev := range evs {
			e.Metrics.EventsEmitted.WithLabelValues(ev.Type).Inc()
		}
	}
	if e.Fanout != nil {
		return e.Fanout.Fanout(ctx, sc, evs)
	}
	return nil
}
