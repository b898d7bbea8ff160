// Package groupcommit lets concurrent callers share one batched operation (group commit): each caller puts its
// item on its key's waiting list and waits; a few flushers per key take everything waiting, up to a cap, run the
// batch once and hand each caller its own item's outcome. Alone, a caller's item goes out at once in a batch of
// one; under load, batches grow with the number of callers waiting. Nothing crosses processes.
//
// The store shares request-log writes this way, the worker single-session redactions.
package groupcommit

import (
	"context"
	"fmt"
	"runtime"
	"sync"
)

// RunFunc runs one batch of key's items and returns one outcome per item, in order. It is called with no lock
// held, possibly from several goroutines at once for one key (up to Options.MaxRunning), and must not keep
// items after it returns.
type RunFunc[K comparable, T any] func(ctx context.Context, key K, items []T) []error

// Options shape a Group. Zero values pick the defaults.
type Options struct {
	// MaxBatch caps the items of one batch (default 64).
	MaxBatch int
	// MaxRunning is how many batches of one key may be in flight at once: while one waits on its I/O, the next
	// collects (default max(2, GOMAXPROCS)).
	MaxRunning int
	// Inline lets a caller that finds nothing waiting and a free slot run its batch of one itself, with its own
	// context, instead of handing it to a goroutine: cheaper when callers do not overlap. Leave it off when a
	// caller must be able to stop waiting while its batch runs.
	Inline bool
	// DropAbandoned leaves out of its batch an item whose caller's context ended before the batch started (its
	// caller has already returned). Off, every item that was handed in runs.
	DropAbandoned bool
}

// Group shares batches between the concurrent callers of Do, per key. It is safe for concurrent use; build it
// with New.
type Group[K comparable, T any] struct {
	run  RunFunc[K, T]
	opts Options

	mu   sync.Mutex
	keys map[K]*queue[T] // a key has an entry while items wait or a batch of it runs
}

// queue is one key's waiting items and how many flushers hold its slots.
type queue[T any] struct {
	waiting []*waiter[T]
	running int
}

// waiter is one caller waiting for its item's outcome.
type waiter[T any] struct {
	ctx  context.Context // the caller's: with DropAbandoned, an item whose caller gave up is not run
	item T
	done chan error // buffered: a flusher never blocks on a caller that gave up
}

// New returns a Group that runs its batches with run.
func New[K comparable, T any](run RunFunc[K, T], opts Options) *Group[K, T] {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 64
	}
	if opts.MaxRunning <= 0 {
		opts.MaxRunning = max(2, runtime.GOMAXPROCS(0))
	}
	return &Group[K, T]{run: run, opts: opts, keys: map[K]*queue[T]{}}
}

// Do runs item in a batch of key shared with the callers waiting at the same time and returns the item's
// outcome, or ctx's error when ctx ends first: a batch that already took the item still runs it, and with
// Options.DropAbandoned one that had not is left out. Batches run with ctx's values but not its cancellation,
// so one caller giving up does not fail the others' items.
func (g *Group[K, T]) Do(ctx context.Context, key K, item T) error {
	g.mu.Lock()
	q := g.keys[key]
	if q == nil {
		q = &queue[T]{}
		g.keys[key] = q
	}
	if g.opts.Inline && len(q.waiting) == 0 && q.running < g.opts.MaxRunning {
		// The caller holds a slot while it runs, so items arriving meanwhile queue and go out together after it.
		q.running++
		g.mu.Unlock()
		err := g.runBatch(ctx, key, []T{item})[0]
		g.release(context.WithoutCancel(ctx), key, q)
		return err
	}
	w := &waiter[T]{ctx: ctx, item: item, done: make(chan error, 1)}
	q.waiting = append(q.waiting, w)
	if q.running < g.opts.MaxRunning {
		q.running++
		go g.flush(context.WithoutCancel(ctx), key, q)
	}
	g.mu.Unlock()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Waiting counts the items of key waiting for a batch.
func (g *Group[K, T]) Waiting(key K) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if q := g.keys[key]; q != nil {
		return len(q.waiting)
	}
	return 0
}

// Active counts the keys with items waiting or a batch running.
func (g *Group[K, T]) Active() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.keys)
}

// release gives up a slot of key after an inline batch, or hands it to a new flusher when items wait.
func (g *Group[K, T]) release(ctx context.Context, key K, q *queue[T]) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(q.waiting) > 0 {
		go g.flush(ctx, key, q)
		return
	}
	g.drop(key, q)
}

// drop gives up a slot of key and forgets the key once none is held. Call it with g.mu held.
func (g *Group[K, T]) drop(key K, q *queue[T]) {
	q.running--
	if q.running == 0 && len(q.waiting) == 0 && g.keys[key] == q {
		delete(g.keys, key)
	}
}

// flush runs batches of key's waiting items until none are left, holding one slot.
func (g *Group[K, T]) flush(ctx context.Context, key K, q *queue[T]) {
	for {
		batch := g.take(key, q)
		if batch == nil {
			return
		}
		if len(batch) == 0 {
			continue
		}
		items := make([]T, len(batch))
		for i, w := range batch {
			items[i] = w.item
		}
		for i, err := range g.runBatch(ctx, key, items) {
			batch[i].done <- err
		}
	}
}

// take removes the next batch from q's waiting list: nil (and the slot given up) when nothing waits, empty when
// every item taken was abandoned.
func (g *Group[K, T]) take(key K, q *queue[T]) []*waiter[T] {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(q.waiting) == 0 {
		g.drop(key, q)
		return nil
	}
	n := min(len(q.waiting), g.opts.MaxBatch)
	batch := make([]*waiter[T], 0, n)
	for _, w := range q.waiting[:n] {
		if !g.opts.DropAbandoned || w.ctx.Err() == nil {
			batch = append(batch, w)
		}
	}
	rest := copy(q.waiting, q.waiting[n:])
	clear(q.waiting[rest:]) // taken waiters hold items: do not keep them reachable from the queue
	q.waiting = q.waiting[:rest]
	return batch
}

// runBatch calls run and returns exactly one outcome per item: a run that panics or answers the wrong number
// of outcomes fails every item of its batch instead of the process or a caller.
func (g *Group[K, T]) runBatch(ctx context.Context, key K, items []T) (errs []error) {
	defer func() {
		if r := recover(); r != nil {
			errs = fill(len(items), fmt.Errorf("groupcommit: batch of %d panicked: %v", len(items), r))
		}
	}()
	errs = g.run(ctx, key, items)
	if len(errs) != len(items) {
		return fill(len(items), fmt.Errorf("groupcommit: batch of %d answered %d outcomes", len(items), len(errs)))
	}
	return errs
}

// fill returns n copies of err.
func fill(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}
