package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/identityd/identityd/api"
)

// Config is the daemon's configuration (DESIGN §3). Flags win over environment variables.
type Config struct {
	Addr              string
	AdminAddr         string
	RedisURL          string
	RedisCluster      []string
	APIKeys           []api.APIKey
	Concurrency       int
	VerificationDelay time.Duration
	RedactionDelay    time.Duration
	Retention         time.Duration
	PublicURL         string
	AdminPassword     string
	WebhookBackoff    []time.Duration
	RequestLogTTL     time.Duration
	RateLimit         float64
	LogLevel          string
	LogFormat         string
	ReconcileInterval time.Duration
	// KeyPrefix and QueuePrefix isolate deployments sharing one Redis (tests use them).
	KeyPrefix   string
	QueuePrefix string

	rawKeys []string
}

type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// parseDaemonFlags fills cfg from env and then args; every role accepts the same flags.
func parseDaemonFlags(name string, args []string, stderr io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("identityd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg                                                      Config
		keys                                                     stringList
		cluster, concurrency, verifyDelay, redactDelay           string
		retention, backoff, logTTL, rateLimit, reconcileInterval string
	)
	fs.StringVar(&cfg.Addr, "addr", env("IDENTITYD_ADDR", "127.0.0.1:8080"), "public API listener")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", env("IDENTITYD_ADMIN_ADDR", "127.0.0.1:8081"), "admin listener: /healthz /readyz /metrics /dashboard/")
	fs.StringVar(&cfg.RedisURL, "redis-url", env("REDIS_URL", ""), "redis://[:pass@]host:port/db; empty = embedded in-memory Redis (keeps nothing)")
	fs.StringVar(&cluster, "redis-cluster", env("REDIS_CLUSTER_ADDRS", ""), "comma-separated Redis Cluster seed addresses")
	fs.Var(&keys, "api-key", "sk_test_… or sk_live_…, optionally =acct_…; repeatable (env IDENTITYD_API_KEYS, comma-separated)")
	fs.StringVar(&concurrency, "concurrency", env("IDENTITYD_CONCURRENCY", "20"), "worker goroutines")
	fs.StringVar(&verifyDelay, "verification-delay", env("IDENTITYD_VERIFICATION_DELAY", "2s"), "duration of the simulated verification check")
	fs.StringVar(&redactDelay, "redaction-delay", env("IDENTITYD_REDACTION_DELAY", "0s"), "grace period before a requested redaction is scrubbed")
	fs.StringVar(&retention, "retention", env("IDENTITYD_RETENTION", "0"), "auto-redact sessions older than this (0 = off)")
	fs.StringVar(&cfg.PublicURL, "public-url", env("IDENTITYD_PUBLIC_URL", ""), "base of the hosted verification url (default http://<addr>)")
	fs.StringVar(&cfg.AdminPassword, "admin-password", env("IDENTITYD_ADMIN_PASSWORD", ""), "basic-auth password (user admin) for the dashboard; empty = read-only dashboard")
	fs.StringVar(&backoff, "webhook-backoff", env("IDENTITYD_WEBHOOK_BACKOFF", "5s,5m,30m,2h,5h,10h,10h,12h,12h"), "delays between webhook delivery attempts")
	fs.StringVar(&logTTL, "request-log-ttl", env("IDENTITYD_REQUEST_LOG_TTL", "720h"), "how long request logs are kept")
	fs.StringVar(&rateLimit, "rate-limit", env("IDENTITYD_RATE_LIMIT", "0"), "per-key requests per second (0 = off)")
	fs.StringVar(&cfg.LogLevel, "log-level", env("IDENTITYD_LOG_LEVEL", "info"), "debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", env("IDENTITYD_LOG_FORMAT", "text"), "text or json")
	fs.StringVar(&reconcileInterval, "reconcile-interval", env("IDENTITYD_RECONCILE_INTERVAL", "30s"), "how often the reconciler re-enqueues lost work")
	fs.StringVar(&cfg.KeyPrefix, "key-prefix", env("IDENTITYD_KEY_PREFIX", "idv"), "prefix of identityd's Redis keys")
	fs.StringVar(&cfg.QueuePrefix, "queue-prefix", env("IDENTITYD_QUEUE_PREFIX", "identityd"), "prefix of identityd's asynq queue names")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.rawKeys = keys
	if len(keys) == 0 {
		for _, k := range strings.Split(env("IDENTITYD_API_KEYS", ""), ",") {
			if strings.TrimSpace(k) != "" {
				cfg.rawKeys = append(cfg.rawKeys, strings.TrimSpace(k))
			}
		}
	}
	if cluster != "" {
		for _, a := range strings.Split(cluster, ",") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.RedisCluster = append(cfg.RedisCluster, a)
			}
		}
	}
	var err error
	if cfg.Concurrency, err = strconv.Atoi(concurrency); err != nil || cfg.Concurrency < 1 || cfg.Concurrency > 10000 {
		return nil, fmt.Errorf("invalid --concurrency %q: want a whole number from 1 to 10000", concurrency)
	}
	durations := []struct {
		flag string
		raw  string
		dst  *time.Duration
	}{{"verification-delay", verifyDelay, &cfg.VerificationDelay}, {"redaction-delay", redactDelay, &cfg.RedactionDelay},
		{"retention", retention, &cfg.Retention}, {"request-log-ttl", logTTL, &cfg.RequestLogTTL},
		{"reconcile-interval", reconcileInterval, &cfg.ReconcileInterval}}
	for _, d := range durations {
		if *d.dst, err = parseDuration(d.raw); err != nil {
			return nil, fmt.Errorf("invalid --%s %q: %v", d.flag, d.raw, err)
		}
	}
	if cfg.RequestLogTTL <= 0 {
		return nil, fmt.Errorf("invalid --request-log-ttl: must be positive")
	}
	if cfg.ReconcileInterval < time.Second {
		return nil, fmt.Errorf("invalid --reconcile-interval: must be at least 1s")
	}
	for _, part := range strings.Split(backoff, ",") {
		d, err := parseDuration(strings.TrimSpace(part))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("invalid --webhook-backoff %q: want comma-separated positive durations", backoff)
		}
		cfg.WebhookBackoff = append(cfg.WebhookBackoff, d)
	}
	if cfg.RateLimit, err = strconv.ParseFloat(rateLimit, 64); err != nil || cfg.RateLimit < 0 {
		return nil, fmt.Errorf("invalid --rate-limit %q: want a number ≥ 0", rateLimit)
	}
	return &cfg, cfg.Validate()
}

// parseDuration accepts Go durations and a bare 0.
func parseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want a duration such as 30s, 5m or 720h")
	}
	if d < 0 {
		return 0, errors.New("must not be negative")
	}
	return d, nil
}

// Validate checks everything that can be checked before connecting.
func (c *Config) Validate() error {
	for _, a := range []struct{ flag, addr string }{{"addr", c.Addr}, {"admin-addr", c.AdminAddr}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("invalid --%s %q: want host:port", a.flag, a.addr)
		}
	}
	if c.Addr == c.AdminAddr && !strings.HasSuffix(c.Addr, ":0") {
		return fmt.Errorf("--addr and --admin-addr must differ (the admin listener is never the public one)")
	}
	if c.RedisURL != "" && len(c.RedisCluster) > 0 {
		return fmt.Errorf("--redis-url and --redis-cluster are mutually exclusive")
	}
	if c.RedisURL != "" {
		if _, err := redis.ParseURL(c.RedisURL); err != nil {
			return fmt.Errorf("invalid --redis-url: %v", err)
		}
	}
	c.APIKeys = nil
	seen := map[string]bool{}
	for _, raw := range c.rawKeys {
		k, err := api.ParseAPIKey(raw)
		if err != nil {
			return fmt.Errorf("invalid --api-key: %v", err)
		}
		if seen[k.Secret] {
			return fmt.Errorf("invalid --api-key: the same key is configured twice")
		}
		seen[k.Secret] = true
		c.APIKeys = append(c.APIKeys, k)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("invalid --public-url %q: want an http(s) URL", c.PublicURL)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("invalid --log-format %q: want text or json", c.LogFormat)
	}
	if c.KeyPrefix == "" || strings.ContainsAny(c.KeyPrefix, "{} ") || c.QueuePrefix == "" || strings.ContainsAny(c.QueuePrefix, "{} :") {
		return fmt.Errorf("invalid --key-prefix or --queue-prefix: must be non-empty, without spaces or braces")
	}
	return nil
}

// embedded reports whether the process runs its own in-memory Redis.
func (c *Config) embedded() bool { return c.RedisURL == "" && len(c.RedisCluster) == 0 }
