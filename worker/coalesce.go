package worker

import (
	"context"
	"runtime"
	"sync"

	"github.com/identityd/identityd/store"
)

// Single-session redaction tasks that run at the same time in one worker process share their Redis work: each
// handler puts its session on its scope's waiting list and waits; a few drain goroutines per scope take
// everything waiting (up to coalesceMaxBatch) and scrub it with the batched path (RedactBatch's one
// transaction). Under load, the batches grow to the number of handlers waiting; alone, a
// session is scrubbed at once in a batch of one. Every handler still returns only after its own session's
// outcome is known, so asynq acknowledges a task only once its session is redacted, and a process that dies
// mid-batch leaves every task unacknowledged for a retry. Nothing crosses processes.

// coalesceMaxBatch caps one shared batch, as the store's bulk batches are capped.
const coalesceMaxBatch = 100

// redactGroups is the waiting list and drain state of each scope. Its zero value is ready.
type redactGroups struct {
	mu     sync.Mutex
	scopes map[store.Scope]*scopeGroup
}

// scopeGroup is one scope's waiting sessions and how many drains are scrubbing them.
type scopeGroup struct {
	waiting []*redactWaiter
	drains  int
}

// redactWaiter is one handler waiting for its session's outcome.
type redactWaiter struct {
	id   string
	done chan error // buffered: a drain never blocks on a handler that gave up
}

// maxDrains is how many batches of one scope may be in flight at once: while one waits on Redis, the next
// collects.
func maxDrains() int { return max(2, runtime.GOMAXPROCS(0)) }

// redactShared redacts one session through a shared batch and returns that session's outcome, or ctx's
// error when the handler's context ends first (the batch still finishes; a retry finds the session redacted).
func (w *Worker) redactShared(ctx context.Context, sc store.Scope, id string) error {
	waiter := &redactWaiter{id: id, done: make(chan error, 1)}
	g := &w.groups
	g.mu.Lock()
	if g.scopes == nil {
		g.scopes = map[store.Scope]*scopeGroup{}
	}
	sg := g.scopes[sc]
	if sg == nil {
		sg = &scopeGroup{}
		g.scopes[sc] = sg
	}
	sg.waiting = append(sg.waiting, waiter)
	limit := w.drainLimit
	if limit == 0 {
		limit = maxDrains()
	}
	if sg.drains < limit {
		sg.drains++
		go w.drain(context.WithoutCancel(ctx), sc, sg)
	}
	g.mu.Unlock()
	select {
	case err := <-waiter.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain scrubs batches of sc's waiting sessions until none are left.
func (w *Worker) drain(ctx context.Context, sc store.Scope, sg *scopeGroup) {
	g := &w.groups
	for {
		g.mu.Lock()
		if len(sg.waiting) == 0 {
			sg.drains--
			if sg.drains == 0 && g.scopes[sc] == sg {
				delete(g.scopes, sc)
			}
			g.mu.Unlock()
			return
		}
		n := min(len(sg.waiting), coalesceMaxBatch)
		batch := make([]*redactWaiter, n)
		copy(batch, sg.waiting)
		sg.waiting = append(sg.waiting[:0], sg.waiting[n:]...)
		g.mu.Unlock()

		ids := make([]string, len(batch))
		for i, wt := range batch {
			ids[i] = wt.id
		}
		if w.beforeBatch != nil {
			w.beforeBatch(ids)
		}
		errs := w.redactEach(ctx, sc, ids)
		for i, wt := range batch {
			wt.done <- errs[i]
		}
	}
}

// waitingRedactions counts the sessions of sc waiting for a shared batch (tests).
func (w *Worker) waitingRedactions(sc store.Scope) int {
	w.groups.mu.Lock()
	defer w.groups.mu.Unlock()
	if sg := w.groups.scopes[sc]; sg != nil {
		return len(sg.waiting)
	}
	return 0
}
