package worker

import (
	"context"
	"time"

	"github.com/hibiken/asynq"

	"github.com/identityd/identityd/store"
)

// TypeRetention requests redaction of every session created longer ago than the retention period. No payload.
const TypeRetention = "redaction:retention"

// RetentionInterval is how often the scheduler runs the retention sweep for a retention period: a tenth of it,
// between one second and one hour.
func RetentionInterval(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Second), time.Hour)
}

// HandleRetention runs one retention sweep.
func (w *Worker) HandleRetention(ctx context.Context, _ *asynq.Task) error {
	_, err := w.RunRetention(ctx)
	return err
}

// RunRetention requests, in every known scope and in pages, the redaction of each session created before
// now − w.Retention, skipping sessions in verification (a later run takes them) and those already in
// redaction. The audit records name the run (requested_by {type: retention, id: ret_…}). It returns how many
// sessions it put into redaction; with no retention period it does nothing.
func (w *Worker) RunRetention(ctx context.Context) (int, error) {
	if w.Retention <= 0 {
		return 0, nil
	}
	by := store.Requester{Type: store.RequestedByRetention, ID: store.NewID("ret")}
	cutoff := w.Store.Now().Add(-w.Retention).Unix()
	scopes, err := w.Store.Scopes(ctx)
	if err != nil {
		return 0, err
	}
	requested, skipped := 0, 0
	for _, sc := range scopes {
		cursor, err := w.Store.RetentionStart(ctx, sc)
		if err != nil {
			return requested, err
		}
		advance := true
		for {
			if err := ctx.Err(); err != nil {
				return requested, err
			}
			step, err := w.Store.RetentionPage(ctx, sc, cutoff, cursor, advance, by, w.Walk)
			if err != nil {
				return requested, err
			}
			w.afterRequest(ctx, sc, step.Requested, step.Events, step.Batches)
			requested += len(step.Requested)
			skipped += step.SkippedProcessing
			cursor, advance = step.Cursor, step.Advance
			if step.Done {
				break
			}
		}
	}
	if requested > 0 || skipped > 0 {
		w.logger().Info("retention sweep", "run", by.ID, "requested", requested, "skipped_processing", skipped,
			"cutoff", cutoff)
	}
	return requested, nil
}
