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

// HandleRedact is idempotent: running it twice, or concurrently, leaves the same state and emits one event.
// Handlers running at the same time share one batched transaction (coalesce.go). When its last retry fails, the
// failure is recorded in identityd's own keys and counted.
func (w *Worker) HandleRedact(ctx context.Context, t *asynq.Task) error {
	var p RedactPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("decode redact payload: %w: %w", err, asynq.SkipRetry)
	}
	err := w.redactShared(ctx, p.scope(), p.SessionID)
	if err != nil && !errors.Is(err, asynq.SkipRetry) {
		retry, _ := asynq.GetRetryCount(ctx)
		maxRetry, ok := asynq.GetMaxRetry(ctx)
		if ok && retry >= maxRetry {
			w.recordFailure(context.WithoutCancel(ctx), p.scope(), p.SessionID, err)
		}
	}
	return err
}

// Redact scrubs one session whose redaction was requested — its personal-data record, reports and the session
// itself — together with the redacted flag, the audit record and the `.redacted` event, in one transaction.
func (w *Worker) Redact(ctx context.Context, sc store.Scope, sessionID string) error {
	sess, err := w.Store.GetSession(ctx, sc, sessionID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("session %s not found: %w", sessionID, asynq.SkipRetry)
	}
	if err != nil {
		return fmt.Errorf("load %s: %w", sessionID, err)
	}
	if sess.Redaction == nil {
		return fmt.Errorf("session %s has no redaction request: %w", sessionID, asynq.SkipRetry)
	}
	if sess.Redaction.Status == store.RedactionRedacted {
		return nil
	}
	res, err := w.Store.CompleteRedaction(ctx, sc, sessionID)
	if err != nil {
		return fmt.Errorf("complete %s: %w", sessionID, err)
	}
	if res.New {
		w.Metrics.RedactionsCompleted.Inc()
		if res.RequestedAtMillis > 0 {
			d := w.Store.Now().Sub(time.UnixMilli(res.RequestedAtMillis))
			w.Metrics.RedactionDuration.Observe(max(d.Seconds(), 0))
		}
		w.published(ctx, sc, res.Events)
	}
	return nil
}

// recordFailure writes the durable failure record (once per session) and counts it. The error text holds
// ids and Redis errors only.
func (w *Worker) recordFailure(ctx context.Context, sc store.Scope, sessionID string, cause error) {
	first, err := w.Store.RecordRedactionFailure(ctx, sc, sessionID, cause.Error())
	if err != nil {
		w.logger().Error("could not record redaction failure", "session", sessionID, "err", err)
		return
	}
	if first {
		w.Metrics.RedactionsFailed.Inc()
	}
	w.logger().Error("redaction failed after retries; the reconciler will try again", "session", sessionID, "err", cause)
}
