package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/identityd/identityd/store/groupcommit"
)

// Errors returned by the store. Callers test them with errors.Is; no caller needs go-redis to detect a miss.
var (
	// ErrNotFound means the object does not exist in the caller's account and mode.
	ErrNotFound = errors.New("not found")
	// ErrInvalidTransition means the call is not allowed in the object's current state.
	ErrInvalidTransition = errors.New("status transition invalid")
	// ErrTooManyMetadataKeys means an update would leave more than MaxMetadataKeys keys (Stripe's limit).
	ErrTooManyMetadataKeys = errors.New("too many metadata keys")
	// ErrConflict means an optimistic transaction kept losing races and gave up.
	ErrConflict = errors.New("too much contention")
)

// MaxMetadataKeys is Stripe's limit on metadata keys per object.
const MaxMetadataKeys = 50

// Clock tells the time. Tests inject a fake one so that `created`, TTLs and deadlines need no sleeping.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Scope names whose objects a call may touch: one account in one mode (test or live).
type Scope struct {
	Account  string
	Livemode bool
}

func (sc Scope) mode() string {
	if sc.Livemode {
		return "live"
	}
	return "test"
}

// Store is identityd's persistence layer. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	clock  Clock
	// RequestLogTTL is how long request logs are kept.
	RequestLogTTL time.Duration
	// IdempotencyTTL is how long a cached idempotent response is replayed.
	IdempotencyTTL time.Duration
	// PublicURL is the base of a session's hosted verification url.
	PublicURL string
	// StreamMaxLen bounds each account's event stream (approximate trimming).
	StreamMaxLen int64
	// registered remembers the scopes this process already added to the registry (see registerCreator).
	registered sync.Map
	// logs groups the request logs saved at the same time (requestlog_group.go); beforeLogBatch is a test
	// hook called with each of its batches' size before the batch runs.
	logs           *groupcommit.Group[Scope, *logWrite]
	beforeLogBatch atomic.Pointer[func(n int)]
}

// Config configures New. Zero values pick the defaults.
type Config struct {
	// Prefix starts every key (default "idv"); tests give each test its own.
	Prefix    string
	Clock     Clock
	PublicURL string
}

// New returns a Store over rdb.
func New(rdb redis.UniversalClient, opts Config) *Store {
	if opts.Prefix == "" {
		opts.Prefix = "idv"
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.PublicURL == "" {
		opts.PublicURL = "http://127.0.0.1:8080"
	}
	s := &Store{
		rdb:            rdb,
		prefix:         opts.Prefix,
		clock:          opts.Clock,
		RequestLogTTL:  30 * 24 * time.Hour,
		IdempotencyTTL: 24 * time.Hour,
		PublicURL:      opts.PublicURL,
		StreamMaxLen:   100000,
	}
	s.logs = s.newLogGroup(0)
	return s
}

// Redis returns the client the store uses.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// Prefix returns the root key prefix.
func (s *Store) Prefix() string { return s.prefix }

// Now returns the store's clock reading.
func (s *Store) Now() time.Time { return s.clock.Now() }

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// lastIDTime is the timestamp of the last id this process made (unix nanoseconds, strictly increasing).
var lastIDTime atomic.Int64

// NewID returns prefix + "_" + 24 base62 characters, the shape of Stripe ids. The first 11 characters encode
// a strictly increasing nanosecond timestamp and the other 13 are random: lists are ordered by (created, id)
// and `created` has one-second resolution, so ids must sort in creation order for objects made within the
// same second (a session's `.created` and `.processing` events, two quick reports) to list newest first.
func NewID(prefix string) string {
	var ts int64
	for {
		last := lastIDTime.Load()
		ts = max(time.Now().UnixNano(), last+1)
		if lastIDTime.CompareAndSwap(last, ts) {
			break
		}
	}
	var b [24]byte
	n := uint64(ts)
	for i := 10; i >= 0; i-- { // 62^11 > 2^64: eleven digits hold any timestamp
		b[i] = idAlphabet[n%62]
		n /= 62
	}
	copy(b[11:], RandomString(13))
	return prefix + "_" + string(b[:])
}

// RandomString returns n random base62 characters from crypto/rand.
func RandomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // the OS random source failing is not recoverable
	}
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}

// maxTxRetries bounds optimistic-transaction retries before ErrConflict.
const maxTxRetries = 50

// watchedTx is an optimistic transaction whose keys are watched; its writes go through commit.
type watchedTx struct {
	*redis.Tx
	committed bool
}

// commit writes what fn queues in one MULTI/EXEC; EXEC fails with redis.TxFailedErr (and watchLoad retries)
// when a watched key changed since it was read.
func (w *watchedTx) commit(ctx context.Context, fn func(pipe redis.Pipeliner) error) error {
	w.committed = true
	_, err := w.TxPipelined(ctx, fn)
	return err
}

// watchLoad runs fn on the current values of keys (MGET's answer: a string, or nil where a key is missing)
// under WATCH, and retries it while another client changed them. WATCH and the read travel in one round trip,
// so an optimistic transaction costs two (read, then MULTI/EXEC) instead of three. When fn ends without
// committing, the keys are unwatched before the connection goes back to the pool. On Redis Cluster the
// client must see the keys to pick the node, so WATCH goes first, on its own.
func (s *Store) watchLoad(ctx context.Context, keys []string, fn func(tx *watchedTx, vals []any) error) error {
	if len(keys) == 0 {
		return s.watchRetry(ctx, func(tx *redis.Tx) error { return fn(&watchedTx{Tx: tx}, nil) })
	}
	if _, cluster := s.rdb.(*redis.ClusterClient); cluster {
		return s.watchRetry(ctx, func(tx *redis.Tx) error {
			vals, err := tx.MGet(ctx, keys...).Result()
			if err != nil {
				return err
			}
			return fn(&watchedTx{Tx: tx}, vals)
		}, keys...)
	}
	watch := make([]any, 0, len(keys)+1)
	watch = append(watch, "watch")
	for _, k := range keys {
		watch = append(watch, k)
	}
	return s.watchRetry(ctx, func(tx *redis.Tx) error {
		var read *redis.SliceCmd
		_, err := tx.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Do(ctx, watch...)
			read = pipe.MGet(ctx, keys...)
			return nil
		})
		wtx := &watchedTx{Tx: tx}
		if err == nil {
			err = fn(wtx, read.Val())
		}
		if !wtx.committed {
			if uerr := tx.Unwatch(ctx).Err(); err == nil {
				err = uerr
			}
		}
		return err
	})
}

// watchRetry runs fn under WATCH on keys and retries it while another client changed them.
func (s *Store) watchRetry(ctx context.Context, fn func(tx *redis.Tx) error, keys ...string) error {
	for i := range maxTxRetries {
		err := s.rdb.Watch(ctx, fn, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		if i > 3 {
			time.Sleep(time.Duration(i) * time.Millisecond)
		}
	}
	return ErrConflict
}
