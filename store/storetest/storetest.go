// Package storetest gives each test its own Redis namespace: real Redis when TEST_REDIS_URL is set (CI sets
// it), an in-process miniredis otherwise, so the same tests run everywhere and in parallel.
package storetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"maps"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/identityd/identityd/store"
)

// Redis is one test's Redis: a client, the URL to hand to a process, and unique key and queue prefixes.
type Redis struct {
	Client      redis.UniversalClient
	URL         string
	KeyPrefix   string
	QueuePrefix string
	// Mini is the in-process server when TEST_REDIS_URL is unset (nil on real Redis).
	Mini *miniredis.Miniredis
	// ClusterAddrs are the seed addresses when the test runs on a Redis Cluster (NewCluster); URL is empty then.
	ClusterAddrs []string
	// ClusterPassword and ClusterCAFile are the cluster's password and the PEM file of the CA of its TLS
	// certificates (empty: no password, no TLS), from ClusterPasswordEnv and ClusterCAEnv.
	ClusterPassword, ClusterCAFile string
}

// Real reports whether the tests run against a real Redis.
func Real() bool { return os.Getenv("TEST_REDIS_URL") != "" }

// New returns a Redis for t; everything under its prefixes is deleted when the test ends.
func New(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{KeyPrefix: "t" + store.RandomString(10), QueuePrefix: "q" + store.RandomString(10)}
	if url := os.Getenv("TEST_REDIS_URL"); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("TEST_REDIS_URL: %v", err)
		}
		r.URL = url
		r.Client = redis.NewClient(opt)
	} else {
		r.Mini = miniredis.RunT(t)
		r.URL = "redis://" + r.Mini.Addr() + "/0"
		r.Client = redis.NewClient(&redis.Options{Addr: r.Mini.Addr()})
	}
	t.Cleanup(func() {
		if r.Mini == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r.deleteOwnKeys(ctx)
		}
		_ = r.Client.Close()
	})
	return r
}

// ClusterEnv names the variable holding the comma-separated seed addresses of the Redis Cluster the cluster
// suite runs on. .ci/run starts a real 3-master cluster on loopback and sets it.
const ClusterEnv = "TEST_REDIS_CLUSTER_ADDRS"

// ClusterPasswordEnv and ClusterCAEnv name the variables holding the cluster's password and the path of the CA
// certificate its nodes' TLS certificates are signed by; .ci/run's cluster requires both.
const (
	ClusterPasswordEnv = "TEST_REDIS_CLUSTER_PASSWORD" //nolint:gosec // G101: the name of a variable, not a password
	ClusterCAEnv       = "TEST_REDIS_CLUSTER_CA"
)

// NewCluster returns a Redis for t on the Redis Cluster named by TEST_REDIS_CLUSTER_ADDRS, with unique
// prefixes that are cleaned up when the test ends. Without the variable the test is skipped: CI sets it (and
// fails when it cannot create the cluster), so the cluster suite always runs there.
func NewCluster(t testing.TB) *Redis {
	t.Helper()
	raw := os.Getenv(ClusterEnv)
	if raw == "" {
		t.Skip(ClusterEnv + " is not set (.ci/run starts a Redis Cluster and sets it)")
	}
	r := &Redis{KeyPrefix: "t" + store.RandomString(10), QueuePrefix: "q" + store.RandomString(10)}
	for a := range strings.SplitSeq(raw, ",") {
		if a = strings.TrimSpace(a); a != "" {
			r.ClusterAddrs = append(r.ClusterAddrs, a)
		}
	}
	r.ClusterPassword, r.ClusterCAFile = os.Getenv(ClusterPasswordEnv), os.Getenv(ClusterCAEnv)
	opt := &redis.ClusterOptions{Addrs: r.ClusterAddrs, Password: r.ClusterPassword}
	if r.ClusterCAFile != "" {
		pem, err := os.ReadFile(r.ClusterCAFile)
		if err != nil {
			t.Fatalf("%s: %v", ClusterCAEnv, err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			t.Fatalf("%s: no PEM certificate in %s", ClusterCAEnv, r.ClusterCAFile)
		}
		opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	}
	r.Client = redis.NewClusterClient(opt)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.deleteOwnKeys(ctx)
		_ = r.Client.Close()
	})
	return r
}

// deleteOwnKeys removes the test's store keys and its asynq queues' keys from a shared real Redis (on a
// cluster: from every master, one key per DEL so no command spans slots).
func (r *Redis) deleteOwnKeys(ctx context.Context) {
	if cc, ok := r.Client.(*redis.ClusterClient); ok {
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			r.deleteOwnKeysOn(ctx, node)
			return nil
		})
	} else {
		r.deleteOwnKeysOn(ctx, r.Client)
	}
	r.Client.SRem(ctx, "asynq:queues", r.QueuePrefix+"-redact", r.QueuePrefix+"-verify", r.QueuePrefix+"-default",
		r.QueuePrefix+"-webhook")
}

func (r *Redis) deleteOwnKeysOn(ctx context.Context, node redis.Cmdable) {
	for _, pattern := range []string{r.KeyPrefix + ":*", "asynq:{" + r.QueuePrefix + "-*"} {
		iter := node.Scan(ctx, 0, pattern, 1000).Iterator()
		pipe := node.Pipeline()
		for iter.Next(ctx) {
			pipe.Del(ctx, iter.Val())
			if pipe.Len() == 500 {
				_, _ = pipe.Exec(ctx)
			}
		}
		if pipe.Len() > 0 {
			_, _ = pipe.Exec(ctx)
		}
	}
}

// Store returns a store on this Redis with the test's prefix and the given clock (nil: wall clock).
func (r *Redis) Store(clock store.Clock) *store.Store {
	return store.New(r.Client, store.Config{Prefix: r.KeyPrefix, Clock: clock})
}

// FakeClock is a settable clock for tests.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock starts at t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{now: t} }

// Now returns the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// ScanAll returns every key in the database with its full contents as text (all types), for privacy scans and
// before/after comparisons: hash fields and set members are sorted so unchanged data renders identically.
// Compressed documents (store.EncodeDoc) are rendered decoded, so a personal value inside one is seen; a string
// value that carries the compression marker but does not decode fails the scan. On a cluster it scans every
// master.
func ScanAll(ctx context.Context, rdb redis.UniversalClient) (map[string]string, error) {
	out := map[string]string{}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			part, err := ScanAll(ctx, node)
			mu.Lock()
			defer mu.Unlock()
			maps.Copy(out, part)
			return err
		})
		return out, err
	}
	// Documents are strings: one that carries the marker and does not decode fails the scan. In other types
	// (asynq's binary task messages, say) such a value is left as it is.
	var decErr error
	dec := func(v string) string {
		if doc, err := store.DecodeDoc([]byte(v)); err == nil {
			return string(doc)
		}
		return v
	}
	decDoc := func(v string) string {
		doc, err := store.DecodeDoc([]byte(v))
		if err != nil {
			decErr = err
			return v
		}
		return string(doc)
	}
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		typ, err := rdb.Type(ctx, key).Result()
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		switch typ {
		case "string":
			v, _ := rdb.Get(ctx, key).Result()
			b.WriteString(decDoc(v))
		case "hash":
			m, _ := rdb.HGetAll(ctx, key).Result()
			for k, v := range m {
				m[k] = dec(v)
			}
			fields := make([]string, 0, len(m))
			for k := range m {
				fields = append(fields, k)
			}
			sort.Strings(fields) // a stable rendering, so two scans of unchanged data compare equal
			for _, k := range fields {
				b.WriteString(k + "\x00" + m[k] + "\x00")
			}
		case "list":
			vs, _ := rdb.LRange(ctx, key, 0, -1).Result()
			for i, v := range vs {
				vs[i] = dec(v)
			}
			b.WriteString(strings.Join(vs, "\x00"))
		case "set":
			vs, _ := rdb.SMembers(ctx, key).Result()
			sort.Strings(vs)
			b.WriteString(strings.Join(vs, "\x00"))
		case "zset":
			vs, _ := rdb.ZRange(ctx, key, 0, -1).Result()
			b.WriteString(strings.Join(vs, "\x00"))
		case "stream":
			xs, _ := rdb.XRange(ctx, key, "-", "+").Result()
			for _, x := range xs {
				fields := make([]string, 0, len(x.Values))
				for k := range x.Values {
					fields = append(fields, k)
				}
				sort.Strings(fields)
				b.WriteString(x.ID + "\x00")
				for _, k := range fields {
					b.WriteString(k + "\x00" + dec(toString(x.Values[k])) + "\x00")
				}
			}
		}
		if decErr != nil {
			return nil, fmt.Errorf("%s: %w", key, decErr)
		}
		out[key] = key + "\x00" + b.String()
	}
	return out, iter.Err()
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}
