package events

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/identityd/identityd/store"
)

// Defaults of Limits.
const (
	// DefaultEndpointConcurrency is how many attempts to one endpoint may be in flight at once
	// (--webhook-endpoint-concurrency): a receiver that never answers holds at most this many slots. It is
	// as many as an account's share of the default pool: a healthy endpoint with a backlog (a redelivery job)
	// then keeps its account's share busy, where a lower limit leaves most of the pool deferring its tasks
	// over and over (redelivering 10,000 events on 2 cores: 766 events/s at 8, 206 at 2 —
	// BenchmarkWebhookRedelivery).
	// An endpoint that hangs is paused by its circuit breaker; another account is never slowed.
	DefaultEndpointConcurrency = 8
	// DefaultAccountConcurrency is how many attempts of one account and mode may be in flight at once: half
	// of the default --webhook-concurrency, so one account's receivers never take the whole pool.
	DefaultAccountConcurrency = 8
	// DefaultBreakerThreshold consecutive timeouts or connection failures open an endpoint's circuit.
	DefaultBreakerThreshold = 5
	// DefaultBreakerCooldown is how long an open circuit defers attempts before one probe is let through.
	DefaultBreakerCooldown = time.Minute
)

// SpareRetries is how many runs a delivery task may take beyond one per attempt of the schedule: a deferral
// does not count as an attempt, and asynq archives a task whose last allowed run returns an error, so the
// last attempt must not be the task's last allowed run.
const SpareRetries = 1

// Limits bound the webhook delivery pool per endpoint and per account, and say when an endpoint that keeps
// not answering is left alone for a while. Zero fields take the defaults above.
type Limits struct {
	EndpointConcurrency int
	AccountConcurrency  int
	BreakerThreshold    int
	BreakerCooldown     time.Duration
}

func (l Limits) store() store.DeliveryLimits {
	pick := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	cooldown := l.BreakerCooldown
	if cooldown <= 0 {
		cooldown = DefaultBreakerCooldown
	}
	return store.DeliveryLimits{
		EndpointSlots:    pick(l.EndpointConcurrency, DefaultEndpointConcurrency),
		AccountSlots:     pick(l.AccountConcurrency, DefaultAccountConcurrency),
		Lease:            taskTimeout,
		BreakerThreshold: pick(l.BreakerThreshold, DefaultBreakerThreshold),
		BreakerCooldown:  cooldown,
	}
}

// taskTimeout bounds one run of a delivery task; it is also the lease of a delivery permit, so a worker
// killed mid-attempt holds its endpoint's slot no longer than a run could have lasted.
const taskTimeout = AttemptTimeout + 20*time.Second

// Deferred is the error of a delivery run that made no attempt because the endpoint or the account had no
// free slot, or the endpoint's circuit is open. The queue runs the task again After, and the run does not
// count against the delivery's retries (see DeferredFor).
type Deferred struct { //nolint:errname // reads as the verdict at its use: *events.Deferred
	EndpointID string
	Reason     store.AdmitCode
	After      time.Duration
}

func (d *Deferred) Error() string {
	return fmt.Sprintf("webhook to %s deferred (%s) for %s", d.EndpointID, d.Reason, d.After.Round(time.Millisecond))
}

// DeferredFor reports whether err is a deferral, and how long the task is to wait before it runs again.
func DeferredFor(err error) (time.Duration, bool) {
	if d, ok := errors.AsType[*Deferred](err); ok {
		return d.After, true
	}
	return 0, false
}

// deferral turns a refused admission into the wait before the next try. An open circuit waits out its
// cool-down (with up to a second of jitter, so the deferred tasks do not come back at once); a full set of
// slots is usually free again well before the lease of its oldest permit ends, so the task comes back after
// one to three seconds, never later than that lease.
func deferral(endpointID string, a store.Admission) *Deferred {
	jitter := rand.N(time.Second) //nolint:gosec // G404: spreads retries in time; nothing depends on it being unpredictable
	after := a.Wait + jitter
	if a.Code != store.CircuitOpen {
		after = min(a.Wait, time.Second+2*jitter)
	}
	return &Deferred{EndpointID: endpointID, Reason: a.Code, After: max(after, time.Second)}
}

// admit asks for a slot for one attempt to endpointID.
func (w *Webhooks) admit(ctx context.Context, sc store.Scope, endpointID string) (store.Admission, *Deferred, error) {
	a, err := w.Store.AdmitDelivery(ctx, sc, endpointID, w.Limits.store())
	if err != nil {
		return a, nil, err
	}
	if a.Code == store.Admitted || a.Code == store.AdmittedProbe {
		return a, nil, nil
	}
	d := deferral(endpointID, a)
	if w.Metrics != nil {
		w.Metrics.WebhookDeferrals.WithLabelValues(a.Code.String()).Inc()
	}
	return a, d, nil
}

// dialOutcome is what an attempt tells the circuit breaker: any response means the receiver is reachable;
// none is a timeout or a connection failure, unless the run itself was ending (shutdown, task deadline),
// which says nothing about the receiver.
func (r result) dialOutcome(ctx context.Context) store.DialOutcome {
	switch {
	case r.status != nil:
		return store.Answered
	case ctx.Err() != nil:
		return store.NotDialled
	}
	return store.Unreachable
}

// release gives the slot back and tells the circuit breaker what the attempt found. It runs even when ctx
// ended: the permit must not wait for its lease.
func (w *Webhooks) release(ctx context.Context, sc store.Scope, endpointID string, a store.Admission, outcome store.DialOutcome) {
	opened, err := w.Store.ReleaseDelivery(context.WithoutCancel(ctx), sc, endpointID, a, outcome, w.Limits.store())
	if err != nil {
		w.logger().Warn("webhook delivery slot not released; its lease ends it", "endpoint", endpointID, "err", err)
		return
	}
	if opened {
		w.logger().Warn("webhook endpoint not answering; deliveries to it paused", "account", sc.Account,
			"endpoint", endpointID, "cooldown", w.Limits.store().BreakerCooldown)
		if w.Metrics != nil {
			w.Metrics.WebhookCircuitsOpened.Inc()
		}
	}
}
