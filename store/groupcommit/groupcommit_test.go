package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/identityd/identityd/store/groupcommit"
)

// TestMain fails the package when a goroutine outlives its tests: flushers end once nothing waits.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a RunFunc that records its batches, can hold the first one until released, and fails the items
// named in fail with their own error.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	ctxs    []context.Context
	fail    map[int]bool
	hold    chan struct{} // nil: batches run at once
	entered chan struct{} // closed when the first batch starts
	once    sync.Once
}

func newRecorder() *recorder {
	return &recorder{fail: map[int]bool{}, entered: make(chan struct{})}
}

func (r *recorder) run(ctx context.Context, _ string, items []int) []error {
	r.mu.Lock()
	r.batches = append(r.batches, append([]int(nil), items...))
	r.ctxs = append(r.ctxs, ctx)
	first := len(r.batches) == 1
	r.mu.Unlock()
	if first {
		r.once.Do(func() { close(r.entered) })
		if r.hold != nil {
			<-r.hold
		}
	}
	errs := make([]error, len(items))
	for i, it := range items {
		if r.fail[it] {
			errs[i] = fmt.Errorf("item %d failed", it)
		}
	}
	return errs
}

// ran returns every item run, in batch order, and the number of batches.
func (r *recorder) ran() (items []int, batches int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.batches {
		items = append(items, b...)
	}
	return items, len(r.batches)
}

// doAll calls Do for items from one goroutine each and returns their outcomes by item.
func doAll(ctx context.Context, g *groupcommit.Group[string, int], key string, items []int) map[int]error {
	var mu sync.Mutex
	out := map[int]error{}
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Go(func() {
			err := g.Do(ctx, key, it)
			mu.Lock()
			out[it] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// seq returns the ints from..to-1.
func seq(from, to int) []int {
	s := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func TestGroup_ConcurrentCallersShareBatches(t *testing.T) {
	t.Parallel()
	for _, inline := range []bool{false, true} {
		t.Run(fmt.Sprintf("inline=%v", inline), func(t *testing.T) {
			t.Parallel()
			r := newRecorder()
			r.hold = make(chan struct{})
			g := groupcommit.New(r.run, groupcommit.Options{MaxRunning: 1, Inline: inline})
			const n = 40
			r.fail[7], r.fail[23] = true, true
			firstDone := make(chan error, 1)
			go func() { firstDone <- g.Do(context.Background(), "k", 0) }()
			<-r.entered
			outs := make(chan map[int]error, 1)
			go func() { outs <- doAll(context.Background(), g, "k", seq(1, n)) }()
			require.Eventually(t, func() bool { return g.Waiting("k") == n-1 }, 10*time.Second, time.Millisecond)
			close(r.hold)

			require.NoError(t, <-firstDone)
			for it, err := range <-outs {
				if r.fail[it] {
					require.EqualError(t, err, fmt.Sprintf("item %d failed", it), "each caller gets its own item's outcome")
				} else {
					require.NoError(t, err, "item %d", it)
				}
			}
			items, batches := r.ran()
			require.ElementsMatch(t, seq(0, n), items, "every item runs exactly once")
			require.Equal(t, 2, batches, "the first batch, then every caller that waited behind it together")
			require.Eventually(t, func() bool { return g.Active() == 0 }, 5*time.Second, time.Millisecond,
				"a key with nothing waiting or running keeps no entry")
		})
	}
}

func TestGroup_MaxBatchCapsABatch(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	r.hold = make(chan struct{})
	g := groupcommit.New(r.run, groupcommit.Options{MaxRunning: 1, MaxBatch: 4})
	outs := make(chan map[int]error, 2)
	go func() { outs <- doAll(context.Background(), g, "k", []int{0}) }()
	<-r.entered
	go func() { outs <- doAll(context.Background(), g, "k", seq(1, 11)) }()
	require.Eventually(t, func() bool { return g.Waiting("k") == 10 }, 10*time.Second, time.Millisecond)
	close(r.hold)
	<-outs
	<-outs
	r.mu.Lock()
	defer r.mu.Unlock()
	sizes := make([]int, len(r.batches))
	for i, b := range r.batches {
		sizes[i] = len(b)
	}
	require.Equal(t, []int{1, 4, 4, 2}, sizes)
}

func TestGroup_KeysDoNotWaitForEachOther(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	entered := make(chan struct{})
	g := groupcommit.New(func(_ context.Context, key string, items []int) []error {
		if key == "busy" {
			close(entered)
			<-hold
		}
		return make([]error, len(items))
	}, groupcommit.Options{MaxRunning: 1})
	busy := make(chan error, 1)
	go func() { busy <- g.Do(context.Background(), "busy", 1) }()
	<-entered
	require.NoError(t, g.Do(context.Background(), "free", 2), "another key's batch runs while the first is held")
	require.Equal(t, 1, g.Active())
	close(hold)
	require.NoError(t, <-busy)
}

func TestGroup_CancelledCallerReturnsAtOnce(t *testing.T) {
	t.Parallel()
	for _, drop := range []bool{true, false} {
		t.Run(fmt.Sprintf("drop=%v", drop), func(t *testing.T) {
			t.Parallel()
			r := newRecorder()
			r.hold = make(chan struct{})
			g := groupcommit.New(r.run, groupcommit.Options{MaxRunning: 1, DropAbandoned: drop})
			first := make(chan error, 1)
			go func() { first <- g.Do(context.Background(), "k", 1) }()
			<-r.entered
			ctx, cancel := context.WithCancel(context.Background())
			second := make(chan error, 1)
			go func() { second <- g.Do(ctx, "k", 2) }()
			require.Eventually(t, func() bool { return g.Waiting("k") == 1 }, 5*time.Second, time.Millisecond)
			cancel()
			require.ErrorIs(t, <-second, context.Canceled, "the caller returns while the batch ahead is still held")

			close(r.hold)
			require.NoError(t, <-first)
			require.Eventually(t, func() bool { return g.Active() == 0 }, 5*time.Second, time.Millisecond)
			items, _ := r.ran()
			if drop {
				require.Equal(t, []int{1}, items, "an item whose caller gave up before its batch is left out")
			} else {
				require.Equal(t, []int{1, 2}, items, "an item handed in runs even when its caller gave up")
			}
		})
	}
}

func TestGroup_BatchesRunWithoutTheCallersCancellation(t *testing.T) {
	t.Parallel()
	type ctxKey struct{}
	r := newRecorder()
	g := groupcommit.New(r.run, groupcommit.Options{})
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	defer cancel()
	require.NoError(t, g.Do(ctx, "k", 1))
	cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, r.ctxs, 1)
	require.NoError(t, r.ctxs[0].Err(), "a batch is not cancelled with the caller that started it")
	require.Equal(t, "v", r.ctxs[0].Value(ctxKey{}), "it keeps the caller's values")
}

func TestGroup_InlineRunsWithTheCallersContext(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	g := groupcommit.New(r.run, groupcommit.Options{Inline: true})
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, g.Do(ctx, "k", 1))
	cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, r.ctxs, 1)
	require.ErrorIs(t, r.ctxs[0].Err(), context.Canceled, "alone, the caller ran its batch of one with its own context")
	require.Zero(t, g.Active())
}

func TestGroup_BrokenRunFailsItsBatchOnly(t *testing.T) {
	t.Parallel()
	for name, run := range map[string]groupcommit.RunFunc[string, int]{
		"panic":          func(context.Context, string, []int) []error { panic("boom") },
		"wrong outcomes": func(context.Context, string, []int) []error { return nil },
	} {
		for _, inline := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/inline=%v", name, inline), func(t *testing.T) {
				t.Parallel()
				var calls sync.Mutex
				broken := true
				g := groupcommit.New(func(ctx context.Context, k string, items []int) []error {
					calls.Lock()
					b := broken
					broken = false
					calls.Unlock()
					if b {
						return run(ctx, k, items)
					}
					return make([]error, len(items))
				}, groupcommit.Options{Inline: inline})
				err := g.Do(context.Background(), "k", 1)
				require.ErrorContains(t, err, "groupcommit: batch of 1")
				require.NoError(t, g.Do(context.Background(), "k", 2), "the group goes on after a broken batch")
				require.Eventually(t, func() bool { return g.Active() == 0 }, 5*time.Second, time.Millisecond)
			})
		}
	}
}

func TestGroup_ErrorsAreTheRunsOwn(t *testing.T) {
	t.Parallel()
	sentinel := errors.New("sentinel")
	g := groupcommit.New(func(_ context.Context, _ string, items []int) []error {
		errs := make([]error, len(items))
		for i := range errs {
			errs[i] = fmt.Errorf("wrapped: %w", sentinel)
		}
		return errs
	}, groupcommit.Options{})
	require.ErrorIs(t, g.Do(context.Background(), "k", 1), sentinel)
}
