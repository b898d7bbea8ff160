package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// floorBatch is how many sessions one step of the I/O floor moves: the store's scrub batch size.
const floorBatch = 100

// redactionIOFloor measures what a bulk redaction costs Redis alone, to put (c) in proportion: for up to n
// sessions that are not redacted (the bench-rest ones, so their documents have their real sizes), batches of
// floorBatch read the sessions' indexes and every document a redaction rewrites (store.RedactionKeys), write
// each one back unchanged (KEEPTTL), and write one event document and one stream entry per session — a
// redaction's reads and writes in the fewest round trips, with none of its CPU work (no scrubbing, JSON or
// compression) — from concurrency goroutines. An implementation that rewrites every stored copy of a
// session's data cannot redact faster than this on the same Redis. The sessions are left as they were; the
// event keys and the stream are the run's own and go with its cleanup.
func (env *benchEnv) redactionIOFloor(ctx context.Context, n, concurrency int) (float64, error) {
	ids, err := env.sessionIDs(ctx, benchRefRest)
	if err != nil {
		return 0, err
	}
	ids = ids[:min(n, len(ids))]
	if len(ids) == 0 {
		return 0, fmt.Errorf("no sessions for the I/O floor")
	}
	scratch := env.tag + ":floor:"
	batches := (len(ids) + floorBatch - 1) / floorBatch
	start := time.Now()
	err = ParallelRange(0, batches, concurrency, func(b int) error {
		return env.rewriteUnchanged(ctx, ids[b*floorBatch:min((b+1)*floorBatch, len(ids))], scratch)
	})
	if err != nil {
		return 0, fmt.Errorf("I/O floor: %w", err)
	}
	return float64(len(ids)) / time.Since(start).Seconds(), nil
}

// rewriteUnchanged is one step of redactionIOFloor: indexes (one pipeline), documents (one MGET), writes (one
// MULTI/EXEC, as a redaction commits).
func (env *benchEnv) rewriteUnchanged(ctx context.Context, ids []string, scratch string) error {
	keys, err := env.st.RedactionKeys(ctx, env.scope, ids)
	if err != nil {
		return err
	}
	vals, err := env.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return err
	}
	_, err = env.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, v := range vals {
			if s, ok := v.(string); ok {
				pipe.SetArgs(ctx, keys[i], s, redis.SetArgs{KeepTTL: true})
			}
		}
		for _, id := range ids {
			pipe.Set(ctx, scratch+"ev:"+id, id, 0)
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: scratch + "stream", Values: []any{"session", id}})
		}
		return nil
	})
	return err
}
