package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/identityd/identityd/store"
)

// ReconcileInterval is how often the scheduler runs the reconciler.
const ReconcileInterval = 30 * time.Second

// HandleReconcile re-enqueues pending redactions and verifications whose task is missing or archived.
func (w *Worker) HandleReconcile(ctx context.Context, _ *asynq.Task) error {
	_, err := w.Reconcile(ctx)
	return err
}

// Reconcile walks every scope's pending redactions and verifications, re-enqueues the walk of every bulk
// job and webhook redelivery not yet walked, and finishes the webhook fan-out of events a process committed and never fanned out
// (outbox.go). A pending session covered by a live batch task is left to it. A task that still exists
// (scheduled, pending, active, retrying) is left alone; a missing one is enqueued again with its deterministic
// id; an archived one (retries exhausted) is recorded as failed, deleted and enqueued again. It returns how
// many tasks it enqueued.
func (w *Worker) Reconcile(ctx context.Context) (int, error) {
	scopes, err := w.Store.Scopes(ctx)
	if err != nil {
		return 0, err
	}
	now := w.Store.Now()
	enqueued := 0
	live := map[string]bool{}
	for _, sc := range scopes {
		// Only redactions whose grace period (--redaction-delay) is over: the reconciler never scrubs early.
		ids, err := w.Store.PendingRedactions(ctx, sc, now.Add(-w.Client.RedactionDelay).UnixMilli(), 10000)
		if err != nil {
			return enqueued, err
		}
		covered, err := w.batchCoverage(ctx, sc, ids, live)
		if err != nil {
			return enqueued, err
		}
		if err := w.reconcileBulk(ctx, sc); err != nil {
			return enqueued, err
		}
		if _, err := w.reconcileOutbox(ctx, sc); err != nil {
			return enqueued, err
		}
		if err := w.reconcileRedeliveries(ctx, sc); err != nil {
			return enqueued, err
		}
		for i, id := range ids {
			if covered[i] {
				continue // a live batch task scrubs it
			}
			n, err := w.reconcileRedaction(ctx, sc, id)
			if err != nil {
				return enqueued, err
			}
			enqueued += n
		}
		pending, err := w.Store.PendingVerifications(ctx, sc, now.UnixMilli(), 10000)
		if err != nil {
			return enqueued, err
		}
		for _, pv := range pending {
			if err := w.reconcileVerification(ctx, sc, pv); err != nil {
				return enqueued, err
			}
		}
	}
	return enqueued, nil
}

func (w *Worker) reconcileRedaction(ctx context.Context, sc store.Scope, id string) (int, error) {
	ok, err := w.Client.enqueueRedactAt(ctx, sc, id, time.Now())
	if err != nil || ok {
		return boolInt(ok), err
	}
	info, err := w.Inspector.GetTaskInfo(w.Client.Queues.Redact, redactTaskID(sc, id))
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return 0, nil // gone between the two calls; the next round enqueues it
	}
	if err != nil {
		return 0, fmt.Errorf("inspect redact task: %w", err)
	}
	switch info.State {
	case asynq.TaskStateArchived:
		w.recordFailure(ctx, sc, id, fmt.Errorf("task archived after %d retries: %s", info.Retried, info.LastErr))
		fallthrough
	case asynq.TaskStateCompleted:
		// A completed task for a still-pending session means its run ended without finishing; run it again.
		if err := w.Inspector.DeleteTask(w.Client.Queues.Redact, info.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return 0, fmt.Errorf("delete stale redact task: %w", err)
		}
		ok, err := w.Client.enqueueRedactAt(ctx, sc, id, time.Now())
		return boolInt(ok), err
	default:
		// Pending, scheduled, active, retrying or aggregating: the task will still run.
	}
	return 0, nil
}

// reconcileVerification enqueues a pending verification whose task is missing, and runs again one whose task
// was archived: a session left in processing could never be verified, canceled or redacted.
func (w *Worker) reconcileVerification(ctx context.Context, sc store.Scope, pv store.PendingVerification) error {
	at := time.UnixMilli(pv.SubmittedAtMillis).Add(w.Client.VerificationDelay)
	ok, err := w.Client.enqueueVerifyAt(ctx, sc, pv.SessionID, pv.SubmissionID, at)
	if err != nil || ok {
		return err
	}
	info, err := w.Inspector.GetTaskInfo(w.Client.Queues.Verify, verifyTaskID(sc, pv.SubmissionID))
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return nil // gone between the two calls; the next round enqueues it
	}
	if err != nil {
		return fmt.Errorf("inspect verify task: %w", err)
	}
	if info.State != asynq.TaskStateArchived && info.State != asynq.TaskStateCompleted {
		return nil
	}
	w.logger().Warn("re-running a verification whose task ended without finishing", "session", pv.SessionID,
		"state", info.State.String())
	if err := w.Inspector.DeleteTask(w.Client.Queues.Verify, info.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		return fmt.Errorf("delete stale verify task: %w", err)
	}
	_, err = w.Client.enqueueVerifyAt(ctx, sc, pv.SessionID, pv.SubmissionID, time.Now())
	return err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
