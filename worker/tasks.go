package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/identityd/identityd/store"
)

// Task types.
const (
	// TypeVerifySession turns a submission into a report and a verified/requires_input session. Payload: VerifyPayload.
	TypeVerifySession = "session:verify"
	// TypeRedactSession scrubs one session and everything that refers to it. Payload: RedactPayload.
	TypeRedactSession = "session:redact"
	// TypeReconcile re-enqueues every pending redaction or verification whose task is missing. No payload.
	TypeReconcile = "redaction:reconcile"
)

// ScopePayload names an account and mode.
type ScopePayload struct {
	Account  string `json:"account"`
	Livemode bool   `json:"livemode"`
}

func (p ScopePayload) scope() store.Scope {
	return store.Scope{Account: p.Account, Livemode: p.Livemode}
}

func scopePayload(sc store.Scope) ScopePayload {
	return ScopePayload{Account: sc.Account, Livemode: sc.Livemode}
}

// VerifyPayload carries ids only: the submitted data is in the store.
type VerifyPayload struct {
	ScopePayload
	SessionID    string `json:"session_id"`
	SubmissionID string `json:"submission_id"`
}

// RedactPayload carries ids only: personal data never enters the queue.
type RedactPayload struct {
	ScopePayload
	SessionID string `json:"session_id"`
}

// Queues names the asynq queues; tests give each test its own. Webhook is served by a pool of its own
// (NewWebhookServer), so a receiver that never answers cannot hold a slot redaction needs.
type Queues struct {
	Redact, Verify, Default, Webhook string
}

// NewQueues returns the queue names under prefix ("identityd" in production).
func NewQueues(prefix string) Queues {
	return Queues{Redact: prefix + "-redact", Verify: prefix + "-verify", Default: prefix + "-default",
		Webhook: prefix + "-webhook"}
}

// Weights are the priorities of the main pool's queues: redaction first. Webhook deliveries are not among
// them: they have their own pool.
func (q Queues) Weights() map[string]int {
	return map[string]int{q.Redact: 6, q.Verify: 3, q.Default: 1}
}

// Names lists every queue, the webhook queue included.
func (q Queues) Names() []string {
	return []string{q.Redact, q.Verify, q.Default, q.Webhook}
}

// redactTaskID is deterministic, so a duplicate enqueue (API retry, reconciler) is refused by asynq.
func redactTaskID(sc store.Scope, sessionID string) string {
	return "redact:" + sc.String() + ":" + sessionID
}

func verifyTaskID(sc store.Scope, submissionID string) string {
	return "verify:" + sc.String() + ":" + submissionID
}

// How long a finished redaction task keeps its id reserved, so late duplicates are refused.
const redactRetention = 24 * time.Hour

// redactMaxRetry is how often a failing scrub is retried before it is recorded as failed (the reconciler
// still retries it later).
const redactMaxRetry = 12

// Client enqueues tasks; it implements api.Queue.
type Client struct {
	Asynq  *asynq.Client
	Queues Queues
	// VerificationDelay and RedactionDelay are floors: a task never runs before its delay has passed.
	VerificationDelay time.Duration
	RedactionDelay    time.Duration
	// Now is the clock the delays count from (nil: time.Now); tests set it.
	Now func() time.Time
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// processAt runs a task no earlier than at. asynq keeps a scheduled task's time in whole seconds (at.Unix())
// and moves the task to its queue once that second has begun, so a time within a second is rounded up to the
// next whole second; otherwise a 1s delay could end after 0.4s. A time already past is left alone, so a task
// without delay is queued at once.
func (c *Client) processAt(at time.Time) asynq.Option {
	if at.After(c.now()) {
		if whole := at.Truncate(time.Second); whole.Before(at) {
			at = whole.Add(time.Second)
		}
	}
	return asynq.ProcessAt(at)
}

// EnqueueVerify schedules the verification of a submission after the verification delay.
func (c *Client) EnqueueVerify(ctx context.Context, sc store.Scope, sessionID, submissionID string) error {
	_, err := c.enqueueVerifyAt(ctx, sc, sessionID, submissionID, c.now().Add(c.VerificationDelay))
	return err
}

// enqueueOnce enqueues a task with a deterministic id (set in opts) and reports whether it is new: a task with
// that id already existing is success, not an error — the point of deterministic ids.
func (c *Client) enqueueOnce(ctx context.Context, what string, typ string, payload any, opts ...asynq.Option) (bool, error) {
	body, _ := json.Marshal(payload) // payloads are id-only structs; they always marshal
	_, err := c.Asynq.EnqueueContext(ctx, asynq.NewTask(typ, body), opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("enqueue %s: %w", what, err)
	}
	return true, nil
}

// enqueueVerifyAt reports whether a new task was enqueued.
func (c *Client) enqueueVerifyAt(ctx context.Context, sc store.Scope, sessionID, submissionID string, at time.Time) (bool, error) {
	return c.enqueueOnce(ctx, "verify", TypeVerifySession,
		VerifyPayload{ScopePayload: scopePayload(sc), SessionID: sessionID, SubmissionID: submissionID},
		asynq.TaskID(verifyTaskID(sc, submissionID)), asynq.Queue(c.Queues.Verify), c.processAt(at),
		asynq.MaxRetry(20), asynq.Retention(time.Hour))
}

// EnqueueRedact schedules the scrub of a session after the redaction delay; a duplicate is a no-op.
func (c *Client) EnqueueRedact(ctx context.Context, sc store.Scope, sessionID string) error {
	_, err := c.enqueueRedactAt(ctx, sc, sessionID, c.now().Add(c.RedactionDelay))
	return err
}

// enqueueRedactAt reports whether a new task was enqueued.
func (c *Client) enqueueRedactAt(ctx context.Context, sc store.Scope, sessionID string, at time.Time) (bool, error) {
	return c.enqueueOnce(ctx, "redact", TypeRedactSession, RedactPayload{ScopePayload: scopePayload(sc), SessionID: sessionID},
		asynq.TaskID(redactTaskID(sc, sessionID)), asynq.Queue(c.Queues.Redact), c.processAt(at),
		asynq.MaxRetry(redactMaxRetry), asynq.Retention(redactRetention))
}
