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

// TypeBulkRedaction walks the sessions of a bulk redaction job and requests their redaction page by page.
// Payload: BulkPayload.
const TypeBulkRedaction = "redaction:bulk"

// BulkPayload names a bulk redaction job.
type BulkPayload struct {
	ScopePayload
	BulkRedactionID string `json:"bulk_redaction"`
}

// bulkTaskID is deterministic: one walk task per job, however often it is enqueued.
func bulkTaskID(sc store.Scope, id string) string { return "bulk:" + sc.String() + ":" + id }

// bulkMaxRetry bounds the retries of a walk that keeps failing; then the job is marked failed.
const bulkMaxRetry = 20

// EnqueueBulkRedaction starts the walk of a bulk redaction job; a duplicate is a no-op.
func (c *Client) EnqueueBulkRedaction(ctx context.Context, sc store.Scope, id string) error {
	_, err := c.enqueueOnce(ctx, "bulk redaction", TypeBulkRedaction, BulkPayload{ScopePayload: scopePayload(sc), BulkRedactionID: id},
		asynq.TaskID(bulkTaskID(sc, id)), asynq.Queue(c.Queues.Redact), asynq.MaxRetry(bulkMaxRetry),
		asynq.Timeout(time.Hour), asynq.Retention(24*time.Hour))
	return err
}

// HandleBulkRedaction runs a job's walk to its end. It resumes from the job's saved cursor, so a retry after a
// crash or a timeout continues where the last committed page ended; when the last retry fails, the job is
// marked failed.
func (w *Worker) HandleBulkRedaction(ctx context.Context, t *asynq.Task) error {
	var p BulkPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("decode bulk payload: %w: %w", err, asynq.SkipRetry)
	}
	sc := p.scope()
	return w.handleJobRun(ctx, jobRun{kind: "bulk redaction", key: "bulk_redaction", id: p.BulkRedactionID,
		run: func(ctx context.Context) error { return w.RunBulkRedaction(ctx, sc, p.BulkRedactionID) },
		fail: func(ctx context.Context, reason string) error {
			return w.Store.FailBulkRedaction(ctx, sc, p.BulkRedactionID, reason)
		}})
}

// RunBulkRedaction walks a job page by page until its walk is done. Each page is committed atomically with
// the job's counters and cursor (store.BulkRedactionStep); after it, the page's sessions are counted, its
// events published and its scrub batches enqueued.
func (w *Worker) RunBulkRedaction(ctx context.Context, sc store.Scope, id string) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		step, err := w.Store.BulkRedactionStep(ctx, sc, id, w.Walk)
		if err != nil {
			return fmt.Errorf("bulk redaction %s: %w", id, err)
		}
		w.afterRequest(ctx, sc, step.Requested, step.Events, step.Batches)
		if w.afterBulkPage != nil {
			w.afterBulkPage(step)
		}
		if step.Done {
			return nil
		}
	}
}

// afterRequest follows a committed page of redaction requests: count the sessions once, publish the events,
// enqueue the scrub batches. A failed enqueue is only logged: the sessions are in the pending index, and the
// reconciler enqueues them one by one once their batch task is found missing.
func (w *Worker) afterRequest(ctx context.Context, sc store.Scope, ids []string, evs []*store.Event, batches []store.RedactionBatch) {
	if len(ids) > 0 {
		w.Metrics.RedactionsRequested.Add(float64(len(ids)))
	}
	w.published(ctx, sc, evs)
	for _, b := range batches {
		if err := w.Client.EnqueueRedactBatch(ctx, sc, b); err != nil {
			w.logger().Warn("redaction batch enqueue failed; the reconciler will retry", "batch", b.ID, "err", err)
		}
	}
}

// reconcileBulk makes sure every job whose walk has not finished has a live walk task: a missing one is
// enqueued (a job created while the queue was unreachable still runs), and one left archived or completed —
// its worker died during the last attempt — is replaced.
func (w *Worker) reconcileBulk(ctx context.Context, sc store.Scope) error { //nolint:dupl // the same job-walk shape as redelivery.go; a shared runner for both job kinds is a refactor of its own
	ids, err := w.Store.WalkingBulkRedactions(ctx, sc)
	if err != nil {
		return err
	}
	for _, id := range ids {
		info, err := w.Inspector.GetTaskInfo(w.Client.Queues.Redact, bulkTaskID(sc, id))
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
		case err != nil:
			return fmt.Errorf("inspect bulk task: %w", err)
		case info.State == asynq.TaskStateArchived || info.State == asynq.TaskStateCompleted:
			if err := w.Inspector.DeleteTask(w.Client.Queues.Redact, info.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				return fmt.Errorf("delete stale bulk task: %w", err)
			}
		default:
			continue // pending, scheduled, active or retrying
		}
		if err := w.Client.EnqueueBulkRedaction(ctx, sc, id); err != nil {
			return err
		}
	}
	return nil
}
