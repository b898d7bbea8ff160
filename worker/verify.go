package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/identityd/identityd/store"
)

// HandleVerify is idempotent: a second run finds the submission consumed and changes nothing.
func (w *Worker) HandleVerify(ctx context.Context, t *asynq.Task) error {
	var p VerifyPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("decode verify payload: %w: %w", err, asynq.SkipRetry)
	}
	return w.verify(ctx, p.scope(), p.SessionID, p.SubmissionID)
}

func (w *Worker) verify(ctx context.Context, sc store.Scope, sessionID, submissionID string) error {
	_, _, evs, err := w.Store.CompleteVerification(ctx, sc, sessionID, submissionID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("session %s not found: %w", sessionID, asynq.SkipRetry)
	}
	if err != nil {
		return fmt.Errorf("verify %s: %w", sessionID, err)
	}
	w.published(ctx, sc, evs)
	return nil
}
