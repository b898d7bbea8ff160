package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/identityd/identityd/api"
	"github.com/identityd/identityd/events"
)

// Config is the daemon's configuration. Flags win over environment variables.
type Config struct {
	Addr         string
	AdminAddr    string
	RedisURL     string
	RedisCluster []string
	// RedisClusterPassword, RedisClusterTLS and RedisClusterCAFile reach a cluster that requires a password
	// (requirepass/masterauth) or TLS; a CA file implies TLS.
	RedisClusterPassword string
	RedisClusterTLS      bool
	RedisClusterCAFile   string
	APIKeys              []api.APIKey
	Concurrency          int
	VerificationDelay    time.Duration
	RedactionDelay       time.Duration
	Retention            time.Duration
	PublicURL            string
	AdminPassword        string
	WebhookBackoff       []time.Duration
	// WebhookConcurrency sizes the webhook delivery pool, apart from the redaction pool (Concurrency);
	// WebhookEndpointConcurrency is how many of its slots one endpoint may hold.
	WebhookConcurrency         int
	WebhookEndpointConcurrency int
	// WebhookAddresses says which addresses deliveries may connect to (--webhook-allow-private,
	// --webhook-allow-cidr).
	WebhookAddresses  events.AddressPolicy
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

// boolText is a switch flag (--name alone means true) that keeps its value as text, checked after parsing like
// the other daemon flags' values.
type boolText struct{ s string }

func (b *boolText) String() string     { return b.s }
func (b *boolText) Set(v string) error { b.s = v; return nil }
func (b *boolText) IsBoolFlag() bool   { return true }

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

// daemonFlags are the flags serve, api and worker share, in the order --help lists them.
var daemonFlags = []flagDoc{
	{"addr", "IDENTITYD_ADDR", "127.0.0.1:8080", "host:port", "public API listener"},
	{"admin-addr", "IDENTITYD_ADMIN_ADDR", "127.0.0.1:8081", "host:port", "admin listener: /healthz /readyz /metrics /dashboard/"},
	{"redis-url", "REDIS_URL", "", "url", "redis://[:password@]host:port/db or rediss://… (TLS); required by api and worker; serve without it runs an embedded in-memory Redis that keeps nothing"},
	{"redis-cluster", "REDIS_CLUSTER_ADDRS", "", "host:port,…", "Redis Cluster seed addresses, instead of --redis-url"},
	{"redis-cluster-password", "REDIS_CLUSTER_PASSWORD", "", "string", "password of the Redis Cluster's nodes"},
	{"redis-cluster-password-file", "REDIS_CLUSTER_PASSWORD_FILE", "", "path", "file holding the Redis Cluster's password, instead of --redis-cluster-password"},
	{"redis-cluster-tls", "REDIS_CLUSTER_TLS", "false", "", "connect to the Redis Cluster's nodes over TLS"},
	{"redis-cluster-ca-file", "REDIS_CLUSTER_CA_FILE", "", "path", "PEM file of the CA that signed the cluster nodes' certificates, instead of the system's; implies --redis-cluster-tls"},
	{"api-key", "IDENTITYD_API_KEYS", "", "key", "sk_test_… or sk_live_…, optionally =acct_… to name its account; repeatable; the env variable is comma-separated"},
	{"api-keys-file", "IDENTITYD_API_KEYS_FILE", "", "path", "file of API keys, one per line (# starts a comment line), instead of --api-key"},
	{"concurrency", "IDENTITYD_CONCURRENCY", "20", "int", "worker goroutines"},
	{"verification-delay", "IDENTITYD_VERIFICATION_DELAY", "2s", "duration", "the least time the simulated verification check of a submission takes"},
	{"redaction-delay", "IDENTITYD_REDACTION_DELAY", "0s", "duration", "grace period before a requested redaction is scrubbed"},
	{"retention", "IDENTITYD_RETENTION", "0", "duration", "auto-redact sessions created longer ago than this; 0 = off"},
	{"public-url", "IDENTITYD_PUBLIC_URL", "", "url", "base of the hosted verification url; empty = http://<addr>"},
	{"admin-password", "IDENTITYD_ADMIN_PASSWORD", "", "string", "basic-auth password (user admin) for the dashboard; empty = read-only dashboard"},
	{"admin-password-file", "IDENTITYD_ADMIN_PASSWORD_FILE", "", "path", "file holding the dashboard password, instead of --admin-password"},
	{"webhook-concurrency", "IDENTITYD_WEBHOOK_CONCURRENCY", "16", "int", "webhook delivery goroutines, a pool apart from --concurrency; one account holds at most half of it"},
	{"webhook-endpoint-concurrency", "IDENTITYD_WEBHOOK_ENDPOINT_CONCURRENCY", "8", "int", "webhook delivery slots one endpoint may hold at once"},
	{"webhook-backoff", "IDENTITYD_WEBHOOK_BACKOFF", "5s,5m,30m,2h,5h,10h,10h,12h,12h,12h,12h", "durations", "comma-separated delays between webhook delivery attempts (the default spans 3 days)"},
	{"webhook-allow-private", "IDENTITYD_WEBHOOK_ALLOW_PRIVATE", "", "", "let webhook deliveries connect to loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7) and carrier-grade NAT (100.64/10) addresses; " +
		"on by default only in serve with the embedded Redis (a local trial), off otherwise; =false turns it off there too"},
	{"webhook-allow-cidr", "IDENTITYD_WEBHOOK_ALLOW_CIDR", "", "cidr,…", "comma-separated address ranges webhook deliveries may connect to although they are not public (e.g. 10.20.0.0/16)"},
	{"request-log-ttl", "IDENTITYD_REQUEST_LOG_TTL", "720h", "duration", "how long request logs are kept"},
	{"rate-limit", "IDENTITYD_RATE_LIMIT", "0", "float", "per-key requests per second, burst twice that; 0 = off"},
	{"log-level", "IDENTITYD_LOG_LEVEL", "info", "level", "debug, info, warn or error"},
	{"log-format", "IDENTITYD_LOG_FORMAT", "text", "format", "text or json"},
	{"reconcile-interval", "IDENTITYD_RECONCILE_INTERVAL", "30s", "duration", "how often the reconciler re-enqueues lost work"},
	{"key-prefix", "IDENTITYD_KEY_PREFIX", "idv", "string", "prefix of identityd's Redis keys, to share one Redis between deployments"},
	{"queue-prefix", "IDENTITYD_QUEUE_PREFIX", "identityd", "string", "prefix of identityd's asynq queue names"},
}

// parseDaemonFlags fills cfg from env and then args; every role accepts the same flags. Values are read as
// text and checked afterwards, so a bad value gets the same message from a flag as from its env variable.
func parseDaemonFlags(name string, args []string) (*Config, error) {
	fs := flag.NewFlagSet("identityd "+name, flag.ContinueOnError)
	var keys stringList
	raw := map[string]*string{}
	for _, d := range daemonFlags {
		switch {
		case d.name == "api-key":
			fs.Var(&keys, d.name, d.usage)
		case d.kind == "": // a switch: --name alone means true
			v := &boolText{s: env(d.env, d.def)}
			fs.Var(v, d.name, d.usage)
			raw[d.name] = &v.s
		default:
			raw[d.name] = fs.String(d.name, env(d.env, d.def), d.usage)
		}
	}
	if err := parseFlagSet(fs, args, "identityd"); err != nil {
		return nil, err
	}
	cfg := Config{Addr: *raw["addr"], AdminAddr: *raw["admin-addr"], RedisURL: *raw["redis-url"],
		PublicURL: *raw["public-url"], LogLevel: *raw["log-level"],
		LogFormat: *raw["log-format"], KeyPrefix: *raw["key-prefix"], QueuePrefix: *raw["queue-prefix"]}
	cluster, concurrency, backoff, rateLimit := *raw["redis-cluster"], *raw["concurrency"], *raw["webhook-backoff"], *raw["rate-limit"]
	set := setFlags(fs)
	var err error
	if cfg.rawKeys, err = apiKeySpecs(set, keys, raw); err != nil {
		return nil, err
	}
	if cfg.AdminPassword, err = secretValue(set, raw, "admin-password"); err != nil {
		return nil, err
	}
	if cfg.RedisClusterPassword, err = secretValue(set, raw, "redis-cluster-password"); err != nil {
		return nil, err
	}
	if cfg.RedisClusterTLS, err = strconv.ParseBool(cmp.Or(*raw["redis-cluster-tls"], "false")); err != nil {
		return nil, fmt.Errorf("invalid --redis-cluster-tls %q: want true or false", *raw["redis-cluster-tls"])
	}
	cfg.RedisClusterCAFile = *raw["redis-cluster-ca-file"]
	if cluster != "" {
		for a := range strings.SplitSeq(cluster, ",") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.RedisCluster = append(cfg.RedisCluster, a)
			}
		}
	}
	if cfg.Concurrency, err = strconv.Atoi(concurrency); err != nil || cfg.Concurrency < 1 || cfg.Concurrency > 10000 {
		return nil, fmt.Errorf("invalid --concurrency %q: want a whole number from 1 to 10000", concurrency)
	}
	ints := []struct {
		flag     string
		dst      *int
		min, max int
	}{{"webhook-concurrency", &cfg.WebhookConcurrency, 1, 10000}, {"webhook-endpoint-concurrency", &cfg.WebhookEndpointConcurrency, 1, 10000}}
	for _, n := range ints {
		if *n.dst, err = strconv.Atoi(*raw[n.flag]); err != nil || *n.dst < n.min || *n.dst > n.max {
			return nil, fmt.Errorf("invalid --%s %q: want a whole number from %d to %d", n.flag, *raw[n.flag], n.min, n.max)
		}
	}
	durations := []struct {
		flag string
		dst  *time.Duration
	}{{"verification-delay", &cfg.VerificationDelay}, {"redaction-delay", &cfg.RedactionDelay},
		{"retention", &cfg.Retention}, {"request-log-ttl", &cfg.RequestLogTTL},
		{"reconcile-interval", &cfg.ReconcileInterval}}
	for _, d := range durations {
		if *d.dst, err = parseDuration(*raw[d.flag]); err != nil {
			return nil, fmt.Errorf("invalid --%s %q: %w", d.flag, *raw[d.flag], err)
		}
	}
	if cfg.RequestLogTTL <= 0 {
		return nil, errors.New("invalid --request-log-ttl: must be positive")
	}
	if cfg.ReconcileInterval < time.Second {
		return nil, errors.New("invalid --reconcile-interval: must be at least 1s")
	}
	for part := range strings.SplitSeq(backoff, ",") {
		d, err := parseDuration(strings.TrimSpace(part))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("invalid --webhook-backoff %q: want comma-separated positive durations", backoff)
		}
		cfg.WebhookBackoff = append(cfg.WebhookBackoff, d)
	}
	if cfg.WebhookAddresses, err = webhookAddresses(*raw["webhook-allow-private"], *raw["webhook-allow-cidr"], cfg.embedded()); err != nil {
		return nil, err
	}
	if cfg.RateLimit, err = strconv.ParseFloat(rateLimit, 64); err != nil || cfg.RateLimit < 0 {
		return nil, fmt.Errorf("invalid --rate-limit %q: want a number ≥ 0", rateLimit)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if name != "serve" && cfg.embedded() {
		// An embedded Redis lives in its process: an api and a worker would each get their own, and the worker
		// would never see what the API enqueued.
		return nil, fmt.Errorf("identityd %s needs the Redis it shares with the other role: pass --redis-url redis://host:6379/0 "+
			"or --redis-cluster host:port,… (only serve runs an embedded Redis)", name)
	}
	return &cfg, nil
}

// webhookAddresses reads --webhook-allow-private and --webhook-allow-cidr. Without --webhook-allow-private,
// private addresses are allowed only with the embedded Redis: that process is a local trial, whose user runs
// a receiver on the same machine; a deployment on a shared Redis refuses them unless told otherwise.
func webhookAddresses(allowPrivate, cidrs string, embedded bool) (events.AddressPolicy, error) {
	p := events.AddressPolicy{AllowPrivate: embedded}
	if allowPrivate != "" {
		var err error
		if p.AllowPrivate, err = strconv.ParseBool(allowPrivate); err != nil {
			return p, fmt.Errorf("invalid --webhook-allow-private %q: want true or false", allowPrivate)
		}
	}
	for part := range strings.SplitSeq(cidrs, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(part)
		if err != nil {
			addr, aerr := netip.ParseAddr(part)
			if aerr != nil || addr.Zone() != "" {
				return p, fmt.Errorf("invalid --webhook-allow-cidr %q: want comma-separated ranges such as 10.20.0.0/16 or fd00:1::/64", part)
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		p.AllowCIDRs = append(p.AllowCIDRs, prefix.Masked())
	}
	return p, nil
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
		return errors.New("--addr and --admin-addr must differ (the admin listener is never the public one)")
	}
	if c.RedisURL != "" && len(c.RedisCluster) > 0 {
		return errors.New("--redis-url and --redis-cluster are mutually exclusive")
	}
	if c.RedisURL != "" {
		if _, err := parseRedisURL(c.RedisURL); err != nil {
			return err
		}
	}
	if len(c.RedisCluster) == 0 && (c.RedisClusterPassword != "" || c.RedisClusterTLS || c.RedisClusterCAFile != "") {
		return errors.New("--redis-cluster-password, --redis-cluster-tls and --redis-cluster-ca-file need --redis-cluster")
	}
	if _, err := c.clusterOptions(); err != nil {
		return err
	}
	c.APIKeys = nil
	seen := map[string]bool{}
	for _, raw := range c.rawKeys {
		k, err := api.ParseAPIKey(raw)
		if err != nil {
			return fmt.Errorf("invalid --api-key: %w", err)
		}
		if err := checkKeyStrength(raw, k); err != nil {
			return fmt.Errorf("invalid --api-key: %w", err)
		}
		if seen[k.Secret] {
			return errors.New("invalid --api-key: the same key is configured twice")
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
		return errors.New("invalid --key-prefix or --queue-prefix: must be non-empty, without spaces or braces")
	}
	return nil
}

// minLiveKeyLen is the least number of characters a live key has after sk_live_: Stripe's are far longer, and
// a short one can be guessed. Test keys stay free-form, for tests and trials.
const minLiveKeyLen = 24

// checkKeyStrength refuses the placeholder the deployment examples ship with and live keys short enough to
// guess. Its errors never echo the key.
func checkKeyStrength(raw string, k api.APIKey) error {
	if strings.Contains(raw, "CHANGE_ME") {
		return errors.New("a key still holds the placeholder CHANGE_ME; put a key of your own in its place")
	}
	if rest, live := strings.CutPrefix(k.Secret, "sk_live_"); live && len(rest) < minLiveKeyLen {
		return fmt.Errorf("a live key needs at least %d characters after sk_live_ (openssl rand -hex 16 makes 32)", minLiveKeyLen)
	}
	return nil
}

// embedded reports whether the process runs its own in-memory Redis.
func (c *Config) embedded() bool { return c.RedisURL == "" && len(c.RedisCluster) == 0 }
