package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

// scriptRuns is a go-redis hook counting the scripts Redis ran alone (n; an EVALSHA answered NOSCRIPT is not a
// run, the EVAL after it is) and the pipelines that held script calls (pipelines).
type scriptRuns struct{ n, pipelines atomic.Int64 }

func (h *scriptRuns) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *scriptRuns) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if isScript(cmd) && (err == nil || errors.Is(err, redis.Nil)) {
			h.n.Add(1)
		}
		return err
	}
}

func (h *scriptRuns) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if slices.ContainsFunc(cmds, isScript) {
			h.pipelines.Add(1)
		}
		return next(ctx, cmds)
	}
}

func isScript(cmd redis.Cmder) bool { return cmd.Name() == "evalsha" || cmd.Name() == "eval" }

// holdFirstLogBatch makes the first shared request-log batch of b's store wait until, with it, total logs
// are taken or waiting, so the rest pile up behind one flusher and go out together.
func holdFirstLogBatch(t *testing.T, b *testBundle, total int) {
	t.Helper()
	store.SetLogFlushLimit(b.st, 1)
	var once sync.Once
	store.SetBeforeLogBatch(b.st, func(n int) {
		once.Do(func() {
			deadline := time.Now().Add(10 * time.Second)
			for n+store.WaitingLogs(b.st, b.sc) < total && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		})
	})
}

// storedLog reads a request log as stored (decoded JSON), or "" when it is missing.
func storedLog(t *testing.T, b *testBundle, id string) string {
	t.Helper()
	raw, err := b.redis.Client.Get(context.Background(), b.key("req:"+id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	require.NoError(t, err)
	doc, err := store.DecodeDoc(raw)
	require.NoError(t, err)
	return string(doc)
}

// TestSaveRequestLog_GroupCommit: request logs saved at the same time in one scope go out in fewer script
// runs than logs, and every one is stored, with its TTL, and indexed under each of its objects.
func TestSaveRequestLog_GroupCommit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	sess := b.create(t, store.SessionCreate{})
	const logs = 24
	holdFirstLogBatch(t, b, logs)
	runs := &scriptRuns{}
	b.redis.Client.AddHook(runs)

	ids := make([]string, logs)
	var wg sync.WaitGroup
	errs := make(chan error, logs)
	for i := range logs {
		ids[i] = store.NewID("req")
		wg.Go(func() {
			l := &store.RequestLog{ID: ids[i], Created: b.clock.Now().Unix(), Method: "GET",
				Path: "/v1/identity/verification_sessions/" + sess.ID, Status: 200,
				Objects: []string{sess.ID, fmt.Sprintf("vr_%d", i)}}
			errs <- b.st.SaveRequestLog(ctx, b.sc, l)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	// One run for the logs the flusher took first (often one), one for those that waited behind them.
	require.LessOrEqual(t, runs.n.Load(), int64(2), "%d logs", logs)
	require.Positive(t, runs.n.Load())

	for i, id := range ids {
		require.Contains(t, storedLog(t, b, id), `"id":"`+id+`"`)
		ttl, err := b.redis.Client.PTTL(ctx, b.key("req:"+id)).Result()
		require.NoError(t, err)
		require.InDelta(t, float64(b.st.RequestLogTTL), float64(ttl), float64(time.Minute))
		for _, obj := range []string{sess.ID, fmt.Sprintf("vr_%d", i)} {
			_, err := b.redis.Client.ZScore(ctx, b.key("ix:req:obj:"+obj), fmt.Sprintf("%012d:%s", b.clock.Now().Unix(), id)).Result()
			require.NoError(t, err, "log %s indexed under %s", id, obj)
		}
	}
	require.Zero(t, store.WaitingLogs(b.st, b.sc))
	require.Eventually(t, func() bool { return store.LogScopes(b.st) == 0 }, 5*time.Second, time.Millisecond,
		"a scope with nothing waiting or being written keeps no entry")
}

// TestSaveRequestLog_GroupFailureIsEachLogs: when a shared run fails because of one log (an index key of the
// wrong type), only that log's caller gets the error; the logs next to it are written and indexed, after one
// more round trip for all of them together.
func TestSaveRequestLog_GroupFailureIsEachLogs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	sess := b.create(t, store.SessionCreate{})
	require.NoError(t, b.redis.Client.Set(ctx, b.key("ix:req:obj:vr_bad"), "not a sorted set", 0).Err())
	objects := []string{"vr_ok1", "vr_bad", "vr_ok2"}
	holdFirstLogBatch(t, b, len(objects)+1)
	runs := &scriptRuns{}
	b.redis.Client.AddHook(runs)

	save := func(id string, objects ...string) error {
		return b.st.SaveRequestLog(ctx, b.sc, &store.RequestLog{ID: id, Created: b.clock.Now().Unix(), Method: "GET",
			Path: "/v1/identity/verification_reports", Status: 200, Objects: objects})
	}
	// The first log goes out alone and holds the flusher until the three others wait behind it.
	first := make(chan error, 1)
	go func() { first <- save(store.NewID("req"), sess.ID) }()
	require.Eventually(t, func() bool { return store.LogScopes(b.st) == 1 }, 5*time.Second, time.Millisecond)
	ids := make([]string, len(objects))
	errs := make([]error, len(objects))
	var wg sync.WaitGroup
	for i, obj := range objects {
		ids[i] = store.NewID("req")
		wg.Go(func() {
			errs[i] = save(ids[i], sess.ID, obj)
		})
	}
	wg.Wait()
	require.NoError(t, <-first)
	for i, obj := range objects {
		if obj == "vr_bad" {
			require.ErrorContains(t, errs[i], "WRONGTYPE")
			continue
		}
		require.NoError(t, errs[i], obj)
		require.Contains(t, storedLog(t, b, ids[i]), `"id":"`+ids[i]+`"`)
		n, err := b.redis.Client.ZCard(ctx, b.key("ix:req:obj:"+obj)).Result()
		require.NoError(t, err)
		require.EqualValues(t, 1, n, "log indexed under %s", obj)
	}
	require.EqualValues(t, 1, runs.pipelines.Load(), "the logs of a failed run are retried together, in one pipeline")
}

// TestSaveRequestLog_CancelledCallerDoesNotHang: a caller whose context ends while its log waits behind a
// busy batch gets its context's error at once; its log is not written, and the batch in flight finishes.
func TestSaveRequestLog_CancelledCallerDoesNotHang(t *testing.T) {
	t.Parallel()
	b := setup(t)
	store.SetLogFlushLimit(b.st, 1)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	store.SetBeforeLogBatch(b.st, func(int) {
		once.Do(func() {
			close(entered)
			<-release
		})
	})
	newLog := func() *store.RequestLog {
		return &store.RequestLog{ID: store.NewID("req"), Created: b.clock.Now().Unix(), Method: "GET",
			Path: "/v1/identity/verification_sessions", Status: 200, Objects: []string{"vr_1"}}
	}
	first, second := newLog(), newLog()
	firstDone := make(chan error, 1)
	go func() { firstDone <- b.st.SaveRequestLog(context.Background(), b.sc, first) }()
	<-entered // the only flusher holds the first log's batch

	ctx, cancel := context.WithCancel(context.Background())
	secondDone := make(chan error, 1)
	go func() { secondDone <- b.st.SaveRequestLog(ctx, b.sc, second) }()
	require.Eventually(t, func() bool { return store.WaitingLogs(b.st, b.sc) == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	select {
	case err := <-secondDone:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled caller still waits for its batch")
	}

	close(release)
	require.NoError(t, <-firstDone)
	require.NotEmpty(t, storedLog(t, b, first.ID))
	require.Eventually(t, func() bool { return store.WaitingLogs(b.st, b.sc) == 0 }, 5*time.Second, time.Millisecond)
	require.Empty(t, storedLog(t, b, second.ID), "a log whose caller gave up before its batch is not written")
}
