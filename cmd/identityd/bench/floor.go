package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// floorBatch is how many sessions one step of the I/O floor moves: the store's scrub batch size.
const floorBatch = 100

// redactionIOFloor measures what a bulk redaction costs Redis alone, to put (c) in proportion: for up to n
// sessions that are not redacted (the bench-rest ones, so their documents have their real sizes), batches of
// floorBatch read the sessions' indexes and every document a redaction rewrites (sessionKeys), write each one
// back unchanged (KEEPTTL), and write one event document and one stream entry per session — a redaction's
// reads and writes in the fewest round trips, with none of its CPU work (no scrubbing, JSON or compression) —
// from concurrency goroutines. An implementation that rewrites every stored copy of a session's data cannot
// redact faster than this on the same Redis. The sessions are left as they were; the event keys and the stream
// are the run's own and go with its cleanup.
func (env *benchEnv) redactionIOFloor(ctx context.Context, n, concurrency int) (float64, error) {
	ids, err := env.sessionIDs(ctx, benchRefRest)
	if err != nil {
		return 0, err
	}
	ids = ids[:min(n, len(ids))]
	if len(ids) == 0 {
		return 0, errors.New("no sessions for the I/O floor")
	}
	keys, err := env.sessionKeys(ctx, ids, concurrency)
	if err != nil {
		return 0, fmt.Errorf("I/O floor: %w", err)
	}
	scratch := env.tag + ":floor:"
	batches := (len(ids) + floorBatch - 1) / floorBatch
	start := time.Now()
	err = ParallelRange(0, batches, concurrency, func(b int) error {
		return env.rewriteUnchanged(ctx, keys[b*floorBatch:min((b+1)*floorBatch, len(keys))], scratch)
	})
	if err != nil {
		return 0, fmt.Errorf("I/O floor: %w", err)
	}
	return float64(len(ids)) / time.Since(start).Seconds(), nil
}

// rewriteUnchanged is one step of redactionIOFloor: indexes (one pipeline), documents (one MGET), writes (one
// MULTI/EXEC, as a redaction commits).
func (env *benchEnv) rewriteUnchanged(ctx context.Context, sessions []*floorKeys, scratch string) error {
	var docs []string
	_, err := env.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, s := range sessions {
			for _, k := range s.zsets {
				pipe.ZRange(ctx, k, 0, -1)
			}
			for _, k := range s.sets {
				pipe.SCard(ctx, k)
			}
			docs = append(docs, s.docs...)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	vals, err := env.rdb.MGet(ctx, docs...).Result()
	if err != nil {
		return err
	}
	_, err = env.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, v := range vals {
			if s, ok := v.(string); ok {
				pipe.SetArgs(ctx, docs[i], s, redis.SetArgs{KeepTTL: true})
			}
		}
		for _, s := range sessions {
			pipe.Set(ctx, scratch+"ev:"+s.id, s.id, 0)
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: scratch + "stream", Values: []any{"session", s.id}})
		}
		return nil
	})
	return err
}

// floorKeys are the keys of one session that its redaction reads or rewrites, by Redis type.
type floorKeys struct {
	id          string
	docs        []string // strings: the session, its personal-data record, audit record and reports
	zsets, sets []string // its indexes
}

// sessionKeys finds, before the floor is timed, the keys of each session of ids in the run's account: every key
// one of whose name's parts is the session's id or the id of one of its reports. The store's key layout stays
// the store's: the bench only relies on an object's keys naming its id, and asks Redis for their types.
func (env *benchEnv) sessionKeys(ctx context.Context, ids []string, concurrency int) ([]*floorKeys, error) {
	owner := make(map[string]*floorKeys, len(ids))
	out := make([]*floorKeys, len(ids))
	reports := make([][]string, len(ids))
	err := ParallelRange(0, len(ids), concurrency, func(i int) error {
		var err error
		reports[i], err = env.st.SessionReportIDs(ctx, env.scope, ids[i])
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		out[i] = &floorKeys{id: id}
		owner[id] = out[i]
		for _, r := range reports[i] {
			owner[r] = out[i]
		}
	}
	var found []string
	var of []*floorKeys
	iter := env.rdb.Scan(ctx, 0, env.st.Prefix()+":{"+env.scope.Account+"}:*", 2000).Iterator()
	for iter.Next(ctx) {
		for part := range strings.SplitSeq(iter.Val(), ":") {
			if fk := owner[part]; fk != nil {
				found, of = append(found, iter.Val()), append(of, fk)
				break
			}
		}
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	types := make([]*redis.StatusCmd, len(found))
	if _, err := env.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, k := range found {
			types[i] = pipe.Type(ctx, k)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for i, k := range found {
		switch types[i].Val() {
		case "string":
			of[i].docs = append(of[i].docs, k)
		case "zset":
			of[i].zsets = append(of[i].zsets, k)
		case "set":
			of[i].sets = append(of[i].sets, k)
		}
	}
	return out, nil
}
