package worker

import (
	"context"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/groupcommit"
)

// Single-session redaction tasks that run at the same time in one worker process share their Redis work (a
// groupcommit.Group keyed by scope): each handler puts its session on its scope's waiting list and waits; a
// few drain goroutines per scope take everything waiting (up to coalesceMaxBatch) and scrub it with the batched
// path (RedactBatch's one transaction). Under load, the batches grow to the number of handlers waiting; alone,
// a session is scrubbed at once in a batch of one. Every handler still returns only after its own session's
// outcome is known, so asynq acknowledges a task only once its session is redacted, and a process that dies
// mid-batch leaves every task unacknowledged for a retry. A handler whose context ends stops waiting, but its
// session stays in its batch (a retry finds it redacted), so batches run on goroutines of their own, never
// inline in a handler. Nothing crosses processes.

// coalesceMaxBatch caps one shared batch, as the store's bulk batches are capped.
const coalesceMaxBatch = 100

// redactShared redacts one session through a shared batch and returns that session's outcome, or ctx's
// error when the handler's context ends first (the batch still finishes; a retry finds the session redacted).
func (w *Worker) redactShared(ctx context.Context, sc store.Scope, id string) error {
	return w.coalescer().Do(ctx, sc, id)
}

// coalescer returns the worker's group of shared redactions, built on first use (a Worker is a struct literal).
func (w *Worker) coalescer() *groupcommit.Group[store.Scope, string] {
	w.groupsOnce.Do(func() {
		w.groups = groupcommit.New(func(ctx context.Context, sc store.Scope, ids []string) []error {
			if w.beforeBatch != nil {
				w.beforeBatch(ids)
			}
			return w.redactEach(ctx, sc, ids)
		}, groupcommit.Options{MaxBatch: coalesceMaxBatch, MaxRunning: w.drainLimit})
	})
	return w.groups
}
