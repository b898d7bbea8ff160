package store

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// testClient is a client on real Redis with TEST_REDIS_URL, else on miniredis.
func testClient(t *testing.T) *redis.Client {
	t.Helper()
	opt := &redis.Options{}
	if url := os.Getenv("TEST_REDIS_URL"); url != "" {
		var err error
		if opt, err = redis.ParseURL(url); err != nil {
			t.Fatal(err)
		}
	} else {
		opt.Addr = miniredis.RunT(t).Addr()
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// commandLog records the names of the commands a client sends, pipelined or not.
type commandLog struct {
	mu    sync.Mutex
	names []string
}

func (l *commandLog) add(cmds ...redis.Cmder) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cmds {
		l.names = append(l.names, c.Name())
	}
}

func (l *commandLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.names
	l.names = nil
	return out
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { l.add(cmd); return next(ctx, cmd) }
}

func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { l.add(cmds...); return next(ctx, cmds) }
}

// A connection must never go back to the pool with keys still watched (a later MULTI/EXEC on it would abort
// for a change it never asked about): when fn ends without committing, watchLoad sends UNWATCH; when it
// commits, EXEC has released the keys and no UNWATCH round trip is spent.
func TestWatchLoad_UnwatchesOnlyWhenNothingIsCommitted(t *testing.T) {
	ctx := context.Background()
	rdb := testClient(t)
	log := &commandLog{}
	rdb.AddHook(log)
	s := New(rdb, Config{Prefix: "t" + RandomString(10)})
	key := s.Prefix() + ":watched"
	t.Cleanup(func() { rdb.Del(context.Background(), key) })
	require.NoError(t, rdb.Set(ctx, key, "a", 0).Err())
	log.take()

	refused := errors.New("refused")
	err := s.watchLoad(ctx, []string{key}, func(_ *watchedTx, vals []any) error {
		require.Equal(t, []any{"a"}, vals)
		return refused
	})
	require.ErrorIs(t, err, refused)
	require.Equal(t, []string{"watch", "mget", "unwatch"}, log.take())

	require.NoError(t, s.watchLoad(ctx, []string{key}, func(*watchedTx, []any) error { return nil }))
	require.Equal(t, []string{"watch", "mget", "unwatch"}, log.take(), "nothing to write is no commit either")

	err = s.watchLoad(ctx, []string{key}, func(tx *watchedTx, _ []any) error {
		return tx.commit(ctx, func(pipe redis.Pipeliner) error { pipe.Set(ctx, key, "b", 0); return nil })
	})
	require.NoError(t, err)
	require.Equal(t, []string{"watch", "mget", "multi", "set", "exec"}, log.take())
	require.Equal(t, "b", rdb.Get(ctx, key).Val())
}

func TestWatchLoad_RetriesWhenAWatchedKeyChanges(t *testing.T) {
	ctx := context.Background()
	rdb := testClient(t)
	other := redis.NewClient(rdb.Options())
	t.Cleanup(func() { _ = other.Close() })
	s := New(rdb, Config{Prefix: "t" + RandomString(10)})
	key, missing := s.Prefix()+":watched", s.Prefix()+":missing"
	t.Cleanup(func() { rdb.Del(context.Background(), key) })
	require.NoError(t, rdb.Set(ctx, key, "a", 0).Err())

	var seen []any
	err := s.watchLoad(ctx, []string{key, missing}, func(tx *watchedTx, vals []any) error {
		seen = append(seen, vals[0])
		require.Nil(t, vals[1], "a missing key reads as nil")
		if len(seen) == 1 {
			require.NoError(t, other.Set(ctx, key, "changed", 0).Err()) // another client, between read and commit
		}
		return tx.commit(ctx, func(pipe redis.Pipeliner) error { pipe.Set(ctx, key, vals[0].(string)+"!", 0); return nil })
	})
	require.NoError(t, err)
	require.Equal(t, []any{"a", "changed"}, seen, "the first commit must fail and the retry read the new value")
	require.Equal(t, "changed!", rdb.Get(ctx, key).Val())
}
