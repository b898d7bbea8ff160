package events

import (
	"context"
	"errors"

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

// Resender resends one event to one endpoint (Webhooks does).
type Resender interface {
	Resend(ctx context.Context, sc store.Scope, eventID, endpointID string) error
}

// ErrNoDelivery is returned by Resend when this process has no webhook delivery.
var ErrNoDelivery = errors.New("webhook delivery is not configured")

// Resend hands a resend of one event to one endpoint to the fan-out.
func (e *Emitter) Resend(ctx context.Context, sc store.Scope, eventID, endpointID string) error {
	if r, ok := e.fanout().(Resender); ok {
		return r.Resend(ctx, sc, eventID, endpointID)
	}
	return ErrNoDelivery
}

func (e *Emitter) fanout() Fanout {
	if e == nil {
		return nil
	}
	return e.Fanout
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
	if beforeFanout != nil {
		beforeFanout()
	}
	if e.Fanout != nil {
		return e.Fanout.Fanout(ctx, sc, evs)
	}
	return nil
}
