package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/identityd/identityd/store"
)

// TypeDeliverWebhook posts one stored event to one webhook endpoint. Payload: DeliverPayload.
const TypeDeliverWebhook = "webhook:deliver"

// DeliverPayload carries ids only: the body is rendered from the stored event when the task runs, so a
// redaction that happened in between is reflected in what is sent.
type DeliverPayload struct {
	Account    string `json:"account"`
	Livemode   bool   `json:"livemode"`
	EventID    string `json:"event_id"`
	EndpointID string `json:"endpoint_id"`
}

// Scope returns the account and mode the delivery belongs to.
func (p DeliverPayload) Scope() store.Scope {
	return store.Scope{Account: p.Account, Livemode: p.Livemode}
}

// DefaultBackoff is the default --webhook-backoff: the waits between successive attempts (75 h 35 min in
// all, so twelve attempts over a little more than three days, the window Stripe retries a live-mode event
// in); a delivery that still fails after the last one fails for good.
var DefaultBackoff = []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 10 * time.Hour, 12 * time.Hour, 12 * time.Hour, 12 * time.Hour, 12 * time.Hour}

// RetryDelay returns how long to wait after failed attempt n+1 (n counts from 0, as asynq's retry count
// does). An empty schedule means DefaultBackoff; past its end the last wait repeats.
func RetryDelay(schedule []time.Duration, n int) time.Duration {
	if len(schedule) == 0 {
		schedule = DefaultBackoff
	}
	return schedule[max(0, min(n, len(schedule)-1))]
}

// Outbound HTTP limits of one attempt.
const (
	// AttemptTimeout bounds one attempt, from dialling to reading the response.
	AttemptTimeout = 10 * time.Second
	// MaxResponseRead is how much of a response body is read (then discarded); the rest is not.
	MaxResponseRead = 64 << 10
)

// NewHTTPClient returns the client deliveries use: AttemptTimeout per attempt, every address it connects to
// checked against policy when it is dialled, and redirects not followed (a 3xx answer is a failed attempt,
// so a receiver cannot bounce deliveries to another address). It connects to receivers directly, never
// through a proxy from the environment: the address check must see the receiver's own address.
func NewHTTPClient(policy AddressPolicy) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone() //nolint:forcetypeassert // net/http declares it an *http.Transport
	tr.Proxy = nil
	tr.DialContext = policy.dialer().DialContext
	tr.MaxIdleConnsPerHost = 8
	tr.ResponseHeaderTimeout = AttemptTimeout
	return &http.Client{
		Timeout:       AttemptTimeout,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Webhooks fans committed events out to the account's webhook endpoints (one asynq task per event and
// endpoint) and makes the delivery attempts. It implements Fanout.
type Webhooks struct {
	Store *store.Store
	// Asynq enqueues deliveries into Queue.
	Asynq *asynq.Client
	Queue string
	// Backoff is the retry schedule (--webhook-backoff); the asynq server must use the same one (see
	// worker.ServerConfig.WebhookBackoff). Empty means DefaultBackoff.
	Backoff []time.Duration
	Metrics *Metrics
	Logger  *slog.Logger
	// HTTP makes the attempts; nil means NewHTTPClient(AddressPolicy{}), which connects to public
	// addresses only.
	HTTP *http.Client
	// Limits bound the slots one endpoint or account may hold and pause endpoints that do not answer.
	Limits Limits
}

func (w *Webhooks) schedule() []time.Duration {
	if len(w.Backoff) == 0 {
		return DefaultBackoff
	}
	return w.Backoff
}

func (w *Webhooks) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Logger
}

// DeliveryTTL is how long a delivery's state is kept: its whole retry schedule, and as long as its attempts.
func (w *Webhooks) DeliveryTTL() time.Duration {
	ttl := store.AttemptTTL
	for _, d := range w.schedule() {
		ttl += d
	}
	return ttl
}

// deliverTaskID is deterministic, so a duplicate enqueue of one (event, endpoint) is refused by asynq.
func deliverTaskID(sc store.Scope, eventID, endpointID string) string {
	return "webhook:" + sc.String() + ":" + eventID + ":" + endpointID
}

// Fanout records a pending delivery for every enabled endpoint whose enabled_events match each event,
// enqueues one task per pending delivery, and then takes the event out of the webhook outbox. An event whose
// fan-out failed stays in the outbox with its deliveries pending, and the reconciler runs Fanout for it again:
// that is safe, because deliveries are recorded once per (event, endpoint) and tasks have deterministic ids.
// It finishes even if ctx is canceled (the events are committed).
func (w *Webhooks) Fanout(ctx context.Context, sc store.Scope, evs []*store.Event) error {
	if len(evs) == 0 {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	eps, err := w.Store.Endpoints(ctx, sc)
	if err != nil {
		return err
	}
	var errs []error
	done := make([]string, 0, len(evs))
	for _, ev := range evs {
		var ids []string
		for _, ep := range eps {
			if ep.Status == store.EndpointEnabled && Matches(ep.EnabledEvents, ev.Type) {
				ids = append(ids, ep.ID)
			}
		}
		due, err := w.Store.OpenDeliveries(ctx, sc, ev.ID, ids, w.DeliveryTTL())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ok := true
		for _, epID := range due {
			if err := w.enqueue(ctx, sc, ev.ID, epID); err != nil {
				errs = append(errs, err) // the delivery stays pending, the event in the outbox: retried later
				ok = false
			}
		}
		if ok {
			done = append(done, ev.ID)
		}
	}
	if err := w.Store.ClearOutbox(ctx, sc, done...); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Resend delivers one event to one endpoint again now, as a new delivery with the whole retry schedule,
// whatever happened to the earlier one (delivered, failed for good, canceled, or none: the endpoint need not
// be subscribed to the event's type). The endpoint must exist; the caller checks that it is enabled.
func (w *Webhooks) Resend(ctx context.Context, sc store.Scope, eventID, endpointID string) error {
	ctx = context.WithoutCancel(ctx)
	reopened, err := w.Store.ReopenDelivery(ctx, sc, eventID, endpointID, w.DeliveryTTL())
	if err != nil {
		return err
	}
	// Its own task id: a delivery still pending keeps its task, and this one sends now beside it.
	taskID := deliverTaskID(sc, eventID, endpointID) + ":resend:" + store.NewAttemptID(w.Store.Now())
	if err := w.enqueueTask(ctx, sc, eventID, endpointID, taskID); err != nil {
		if reopened { // without a task the delivery would stay pending for ever
			if _, ferr := w.Store.FinishDelivery(ctx, sc, eventID, endpointID, store.DeliveryCanceled); ferr != nil {
				err = errors.Join(err, ferr)
			}
		}
		return err
	}
	return nil
}

func (w *Webhooks) enqueue(ctx context.Context, sc store.Scope, eventID, endpointID string) error {
	return w.enqueueTask(ctx, sc, eventID, endpointID, deliverTaskID(sc, eventID, endpointID))
}

func (w *Webhooks) enqueueTask(ctx context.Context, sc store.Scope, eventID, endpointID, taskID string) error {
	payload, _ := json.Marshal(DeliverPayload{Account: sc.Account, Livemode: sc.Livemode, EventID: eventID, EndpointID: endpointID})
	_, err := w.Asynq.EnqueueContext(ctx, asynq.NewTask(TypeDeliverWebhook, payload),
		asynq.TaskID(taskID), asynq.Queue(w.Queue),
		asynq.MaxRetry(len(w.schedule())+SpareRetries), asynq.Timeout(taskTimeout))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("enqueue webhook delivery: %w", err)
	}
	return nil
}

// Deliver makes attempt number attempt (from 1) of one delivery; final says that no retry follows if it
// fails. It returns nil when nothing more is owed (delivered, or nothing to deliver), and an error naming
// only ids and the failure when the attempt failed, so the queue retries it on the schedule. When the
// endpoint or the account has no free slot, or the endpoint's circuit is open, it makes no attempt and
// returns a *Deferred, which is not an attempt. After a final failure the delivery is failed for good and
// the endpoint is disabled. Running it for a delivery that is
// already finished does nothing, so a duplicate task never sends twice after a recorded success.
func (w *Webhooks) Deliver(ctx context.Context, sc store.Scope, eventID, endpointID string, attempt int, final bool) error {
	state, err := w.Store.DeliveryState(ctx, sc, eventID, endpointID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && state != store.DeliveryPending) {
		return nil
	}
	if err != nil {
		return err
	}
	ep, secrets, err := w.Store.SigningSecrets(ctx, sc, endpointID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ep.Status != store.EndpointEnabled) {
		// Deleted or disabled since: the event is no longer owed to it.
		_, err := w.Store.FinishDelivery(ctx, sc, eventID, endpointID, store.DeliveryCanceled)
		return err
	}
	if err != nil {
		return err
	}
	// A slot first: a deferred run costs no rendering.
	slot, deferred, err := w.admit(ctx, sc, endpointID)
	if err != nil {
		return err
	}
	if deferred != nil {
		return deferred
	}
	ev, body, err := w.render(ctx, sc, eventID, endpointVersion(ep))
	if err != nil {
		w.release(ctx, sc, endpointID, slot, store.NotDialled)
	}
	if errors.Is(err, store.ErrNotFound) {
		if _, err := w.Store.FinishDelivery(ctx, sc, eventID, endpointID, store.DeliveryFailed); err != nil {
			return err
		}
		return fmt.Errorf("event %s not found: %w", eventID, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	now := w.Store.Now()
	res := w.post(ctx, ep.URL, secrets, ev.ID, now.Unix(), body)
	a := &store.WebhookAttempt{ID: store.NewAttemptID(now), Created: now.Unix(), WebhookEndpoint: endpointID,
		Event: eventID, EventType: ev.Type, Attempt: attempt, StatusCode: res.status,
		LatencyMS: res.latency.Milliseconds(), Error: res.err}
	switch {
	case res.err == nil:
		a.Outcome = store.AttemptDelivered
	case final:
		a.Outcome = store.AttemptFailed
	default:
		a.Outcome = store.AttemptRetrying
		next := now.Add(RetryDelay(w.schedule(), attempt-1)).Unix()
		a.NextAttempt = &next
	}
	if err := w.Store.RecordAttempt(ctx, sc, a, ev.ObjectID()); err != nil {
		w.logger().Warn("webhook attempt not recorded", "event", eventID, "endpoint", endpointID, "err", err)
	}
	w.release(ctx, sc, endpointID, slot, res.dialOutcome(ctx))
	if w.Metrics != nil {
		w.Metrics.WebhookDeliveries.WithLabelValues(a.Outcome).Inc()
	}
	switch a.Outcome {
	case store.AttemptDelivered:
		_, err := w.Store.FinishDelivery(ctx, sc, eventID, endpointID, store.DeliveryDelivered)
		return err
	case store.AttemptFailed:
		return w.fail(ctx, sc, eventID, endpointID, attempt, *res.err)
	}
	return fmt.Errorf("webhook %s to %s, attempt %d: %s", eventID, endpointID, attempt, *res.err)
}

// fail ends a delivery that used up its schedule, and disables the endpoint that kept failing, recording why
// and when on it. The run that disables it counts it and logs it, once.
func (w *Webhooks) fail(ctx context.Context, sc store.Scope, eventID, endpointID string, attempt int, reason string) error {
	if _, err := w.Store.FinishDelivery(ctx, sc, eventID, endpointID, store.DeliveryFailed); err != nil {
		return err
	}
	disabled := false
	_, err := w.Store.UpdateEndpoint(ctx, sc, endpointID, func(ep *store.WebhookEndpoint) error {
		disabled = ep.Status != store.EndpointDisabled
		if disabled {
			ep.SetStatus(store.EndpointDisabled, store.DisabledDeliveryFailed, w.Store.Now().Unix())
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("disable webhook endpoint %s: %w", endpointID, err)
	}
	if err == nil && disabled {
		w.logger().Warn("webhook endpoint disabled", "account", sc.Account, "livemode", sc.Livemode,
			"endpoint", endpointID, "reason", store.DisabledDeliveryFailed, "event", eventID, "attempts", attempt,
			"last_error", reason)
		if w.Metrics != nil {
			w.Metrics.WebhookEndpointsDisabled.WithLabelValues(store.DisabledDeliveryFailed).Inc()
		}
	}
	return fmt.Errorf("webhook %s to %s failed after %d attempts: %s: %w", eventID, endpointID, attempt, reason, asynq.SkipRetry)
}

// render returns the event as the body to send, rendered now from its stored reference in API version v:
// once the session's redaction was requested it renders scrubbed, even before the redaction worker ran, so
// no personal data leaves after a redaction request.
func (w *Webhooks) render(ctx context.Context, sc store.Scope, eventID, v string) (*store.Event, []byte, error) {
	ev, err := w.Store.GetEvent(ctx, sc, eventID)
	if err != nil {
		return nil, nil, err
	}
	ev = ev.In(v)
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, nil, err
	}
	return ev, body, nil
}

// endpointVersion is the API version an endpoint's deliveries are rendered with: its api_version, or the
// account default when it was created without one.
func endpointVersion(ep *store.WebhookEndpoint) string {
	if ep.APIVersion != nil {
		return *ep.APIVersion
	}
	return store.APIVersion
}

// result is one attempt's outcome; err is nil exactly when the receiver answered 2xx.
type result struct {
	status  *int
	latency time.Duration
	err     *string
}

// post sends one attempt signed with each of secrets. Nothing of the response but its status is kept.
func (w *Webhooks) post(ctx context.Context, target string, secrets []string, msgID string, t int64, body []byte) result {
	fail := func(r result, msg string) result {
		r.err = &msg
		return r
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fail(result{}, "invalid endpoint url")
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "identityd-webhooks/1")
	req.Header.Set("Stripe-Signature", StripeSignatures(secrets, t, body))
	req.Header.Set("webhook-id", msgID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(t, 10))
	if sig, err := StandardSignatures(secrets, msgID, t, body); err == nil {
		req.Header.Set("webhook-signature", sig)
	}
	client := w.HTTP
	if client == nil {
		client = NewHTTPClient(AddressPolicy{})
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return fail(result{latency: time.Since(start)}, transportError(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseRead))
	_ = resp.Body.Close()
	code := resp.StatusCode
	r := result{status: &code, latency: time.Since(start)}
	switch {
	case code >= 200 && code <= 299:
		return r
	case code >= 300 && code <= 399:
		return fail(r, fmt.Sprintf("HTTP %d: redirects are not followed", code))
	}
	return fail(r, fmt.Sprintf("HTTP %d", code))
}

// transportError describes a failed request without its URL (a URL may carry credentials or tokens).
func transportError(err error) string {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		if ue.Timeout() {
			return fmt.Sprintf("timeout: no complete response within %s", AttemptTimeout)
		}
		err = ue.Err
	}
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return msg
}
