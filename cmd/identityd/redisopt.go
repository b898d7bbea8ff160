package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisTimeouts bound every Redis call of the process: a Redis that stops answering turns into errors within
// these, never into requests and tasks that wait for ever. With ContextTimeoutEnabled a caller's shorter
// deadline (a /readyz probe's, say) wins over them.
type redisTimeouts struct {
	Dial, Read, Write, Pool time.Duration
}

var defaultRedisTimeouts = redisTimeouts{Dial: 5 * time.Second, Read: 3 * time.Second, Write: 3 * time.Second,
	Pool: 4 * time.Second}

// apply sets the timeouts a --redis-url did not set itself (dial_timeout=, read_timeout=, …).
func (t redisTimeouts) apply(o *redis.Options) {
	o.DialTimeout = cmp.Or(o.DialTimeout, t.Dial)
	o.ReadTimeout = cmp.Or(o.ReadTimeout, t.Read)
	o.WriteTimeout = cmp.Or(o.WriteTimeout, t.Write)
	o.PoolTimeout = cmp.Or(o.PoolTimeout, t.Pool)
	o.ContextTimeoutEnabled = true
}

func (t redisTimeouts) applyCluster(o *redis.ClusterOptions) {
	o.DialTimeout = cmp.Or(o.DialTimeout, t.Dial)
	o.ReadTimeout = cmp.Or(o.ReadTimeout, t.Read)
	o.WriteTimeout = cmp.Or(o.WriteTimeout, t.Write)
	o.PoolTimeout = cmp.Or(o.PoolTimeout, t.Pool)
	o.ContextTimeoutEnabled = true
}

// parseRedisURL reads --redis-url. Its errors name the flag and never echo the URL, which may hold a password.
func parseRedisURL(raw string) (*redis.Options, error) {
	const want = "want redis://[:password@]host:port/db, or rediss://… for TLS"
	u, err := url.Parse(raw)
	slashes := strings.Contains(raw, "://")
	switch {
	case err != nil && slashes:
		var ue *url.Error
		if errors.As(err, &ue) && strings.HasPrefix(ue.Err.Error(), "invalid port") {
			return nil, fmt.Errorf("invalid --redis-url: %w; %s", ue.Err, want) // the port only, never the password
		}
		return nil, fmt.Errorf("invalid --redis-url: not a URL; %s", want)
	case err != nil || u.Scheme == "":
		return nil, fmt.Errorf("invalid --redis-url: no scheme; %s", want)
	case u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix" && !slashes:
		// "localhost:6379" parses with "localhost" as its scheme.
		return nil, fmt.Errorf("invalid --redis-url: no scheme; %s", want)
	case u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix":
		return nil, fmt.Errorf("invalid --redis-url: scheme %q is not redis, rediss or unix; %s", u.Scheme, want)
	case !slashes:
		return nil, fmt.Errorf("invalid --redis-url: %s", want)
	}
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid --redis-url: %s", strings.TrimPrefix(err.Error(), "redis: "))
	}
	return opt, nil
}

// quietRedisLogs silences go-redis's own logger: it prints a line per failed pool dial before identityd can
// say, once, which Redis did not answer. Errors reach identityd as values either way.
var quietRedisLogs = sync.OnceFunc(func() { redis.SetLogger(discardRedisLogger{}) })

type discardRedisLogger struct{}

func (discardRedisLogger) Printf(context.Context, string, ...any) {}

// unreachable describes a Redis that did not answer a PING, naming the flag that chose it.
func (m *Main) unreachable(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		err = errors.New("no answer within the deadline")
	}
	if len(m.cfg.RedisCluster) > 0 {
		return fmt.Errorf("--redis-cluster %s: Redis does not answer: %w", strings.Join(m.cfg.RedisCluster, ","), err)
	}
	return fmt.Errorf("--redis-url: Redis does not answer: %w", err)
}

// clusterOptions describes the --redis-cluster connection (nil without one): seeds, password and TLS. Its
// errors name the flag.
func (c *Config) clusterOptions() (*redis.ClusterOptions, error) {
	if len(c.RedisCluster) == 0 {
		return nil, nil
	}
	opt := &redis.ClusterOptions{Addrs: c.RedisCluster, Password: c.RedisClusterPassword}
	if c.RedisClusterTLS || c.RedisClusterCAFile != "" {
		opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if c.RedisClusterCAFile != "" {
			pem, err := os.ReadFile(c.RedisClusterCAFile)
			if err != nil {
				return nil, fmt.Errorf("--redis-cluster-ca-file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--redis-cluster-ca-file %s: no PEM certificate in it", c.RedisClusterCAFile)
			}
			opt.TLSConfig.RootCAs = pool
		}
	}
	return opt, nil
}
