package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/identityd/identityd/store"
)

// jobRun is one run of a job's walk task (a bulk redaction, a webhook redelivery): what it is, and how to run
// and to fail the job.
type jobRun struct {
	kind string // "bulk redaction", "webhook redelivery": for errors
	key  string // "bulk_redaction", "webhook_redelivery": the log attribute of the job id
	id   string
	run  func(ctx context.Context) error
	fail func(ctx context.Context, reason string) error
}

// handleJobRun runs the walk. A job that does not exist is not retried; a walk whose last allowed run fails marks
// its job failed (the error is still returned, so asynq archives the task).
func (w *Worker) handleJobRun(ctx context.Context, j jobRun) error {
	err := j.run(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s %s not found: %w", j.kind, j.id, asynq.SkipRetry)
	}
	if err != nil {
		retry, _ := asynq.GetRetryCount(ctx)
		maxRetry, ok := asynq.GetMaxRetry(ctx)
		if ok && retry >= maxRetry {
			if ferr := j.fail(context.WithoutCancel(ctx), err.Error()); ferr != nil {
				w.logger().Error("could not mark "+j.kind+" failed", j.key, j.id, "err", ferr)
			}
		}
	}
	return err
}
