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

// TypeRedactBatch scrubs a batch of sessions whose redaction was requested by a bulk job or a retention run,
// with pipelined Redis round trips. Payload: RedactBatchPayload.
const TypeRedactBatch = "session:redact_batch"

// RedactBatchPayload carries ids only.
type RedactBatchPayload struct {
	ScopePayload
	BatchID    string   `json:"batch"`
	SessionIDs []string `json:"session_ids"`
}

// batchTaskID is deterministic, so the reconciler can look a session's batch task up.
func batchTaskID(sc store.Scope, batchID string) string {
	return "redact_batch:" + sc.String() + ":" + batchID
}

// batchMaxRetry is low on purpose: once a batch task is archived, the reconciler hands its unfinished sessions
// to the single-session path, with its own retries and failure records.
const batchMaxRetry = 3

// EnqueueRedactBatch schedules the scrub of a batch after the redaction delay; a duplicate is a no-op.
func (c *Client) EnqueueRedactBatch(ctx context.Context, sc store.Scope, b store.RedactionBatch) error {
	_, err := c.enqueueOnce(ctx, "redaction batch", TypeRedactBatch,
		RedactBatchPayload{ScopePayload: scopePayload(sc), BatchID: b.ID, SessionIDs: b.SessionIDs},
		asynq.TaskID(batchTaskID(sc, b.ID)), asynq.Queue(c.Queues.Redact), c.processAt(c.now().Add(c.RedactionDelay)),
		asynq.MaxRetry(batchMaxRetry), asynq.Retention(time.Hour))
	return err
}

// HandleRedactBatch is idempotent like HandleRedact: every session ends redacted with exactly one event.
func (w *Worker) HandleRedactBatch(ctx context.Context, t *asynq.Task) error {
	var p RedactBatchPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("decode redact batch payload: %w: %w", err, asynq.SkipRetry)
	}
	return w.RedactBatch(ctx, p.scope(), p.SessionIDs)
}

// RedactBatch scrubs and completes many sessions of one scope in one transaction (store.CompleteRedactions). Sessions gone, never requested or already redacted are
// skipped. When the batch transaction keeps losing races, the sessions go through the single path one by one.
func (w *Worker) RedactBatch(ctx context.Context, sc store.Scope, ids []string) error {
	states, err := w.Store.RedactionStatuses(ctx, sc, ids)
	if err != nil {
		return fmt.Errorf("load batch: %w", err)
	}
	var todo []string
	for i, state := range states {
		if state == store.RedactionProcessing {
			todo = append(todo, ids[i])
		}
	}
	return errors.Join(w.scrubAndComplete(ctx, sc, todo)...)
}

// redactEach is Redact for many sessions of one scope at once, with one outcome per id: sessions whose
// redaction is processing share one batched transaction; the rest (already redacted, never
// requested, missing) get exactly the single path's answer. ids may repeat.
func (w *Worker) redactEach(ctx context.Context, sc store.Scope, ids []string) []error {
	errs := make([]error, len(ids))
	unique := make([]string, 0, len(ids))
	first := make(map[string]int, len(ids))
	for _, id := range ids {
		if _, seen := first[id]; !seen {
			first[id] = len(unique)
			unique = append(unique, id)
		}
	}
	states, err := w.Store.RedactionStatuses(ctx, sc, unique)
	if err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("load %s: %w", ids[i], err)
		}
		return errs
	}
	outcome := make([]error, len(unique))
	var todo []string
	var todoAt []int
	for i, state := range states {
		switch state {
		case store.RedactionProcessing:
			todo = append(todo, unique[i])
			todoAt = append(todoAt, i)
		case store.RedactionRedacted:
		default:
			outcome[i] = w.Redact(ctx, sc, unique[i]) // names the reason: missing, or never requested
		}
	}
	for j, err := range w.scrubAndComplete(ctx, sc, todo) {
		outcome[todoAt[j]] = err
	}
	for i, id := range ids {
		errs[i] = outcome[first[id]]
	}
	return errs
}

// scrubAndComplete scrubs and completes sessions whose redaction is processing in one transaction, returning
// one outcome per id. When the transaction keeps losing races, each session goes through the single path.
func (w *Worker) scrubAndComplete(ctx context.Context, sc store.Scope, todo []string) []error {
	errs := make([]error, len(todo))
	if len(todo) == 0 {
		return errs
	}
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	res, err := w.Store.CompleteRedactions(ctx, sc, todo)
	if errors.Is(err, store.ErrConflict) {
		for i, id := range todo {
			errs[i] = w.Redact(ctx, sc, id)
		}
		return errs
	}
	if err != nil {
		return fail(fmt.Errorf("complete batch: %w", err))
	}
	var evs []*store.Event
	now := w.Store.Now()
	for _, r := range res {
		if r == nil || !r.New {
			continue
		}
		w.Metrics.RedactionsCompleted.Inc()
		if r.RequestedAtMillis > 0 {
			w.Metrics.RedactionDuration.Observe(max(now.Sub(time.UnixMilli(r.RequestedAtMillis)).Seconds(), 0))
		}
		evs = append(evs, r.Events...)
	}
	w.published(ctx, sc, evs)
	return errs
}

// batchCoverage tells, for pending sessions, which ones a live batch task will scrub; the reconciler leaves
// those alone. A session whose batch task is gone, finished or archived is no longer covered: its batch entry
// is dropped so the single path takes over. live caches task states across one reconcile round.
func (w *Worker) batchCoverage(ctx context.Context, sc store.Scope, ids []string, live map[string]bool) ([]bool, error) {
	batches, err := w.Store.RedactionBatches(ctx, sc, ids)
	if err != nil {
		return nil, err
	}
	covered := make([]bool, len(ids))
	for i, b := range batches {
		if b == "" {
			continue
		}
		taskID := batchTaskID(sc, b)
		alive, seen := live[taskID]
		if !seen {
			info, err := w.Inspector.GetTaskInfo(w.Client.Queues.Redact, taskID)
			switch {
			case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
			case err != nil:
				return nil, fmt.Errorf("inspect redaction batch task: %w", err)
			default:
				alive = info.State != asynq.TaskStateCompleted && info.State != asynq.TaskStateArchived
			}
			live[taskID] = alive
		}
		if alive {
			covered[i] = true
		} else if err := w.Store.ForgetRedactionBatch(ctx, sc, ids[i]); err != nil {
			return nil, err
		}
	}
	return covered, nil
}
