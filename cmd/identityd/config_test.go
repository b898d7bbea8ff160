package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store/storetest"
)

// Tests that use t.Setenv cannot be parallel; Go runs them before the parallel tests resume, so no parallel
// test ever sees their environment.

func TestConfig_FlagsWinOverEnv(t *testing.T) {
	t.Setenv("IDENTITYD_ADDR", "127.0.0.1:9001")
	t.Setenv("IDENTITYD_ADMIN_ADDR", "127.0.0.1:9002")
	t.Setenv("REDIS_URL", "redis://127.0.0.1:6399/3")
	t.Setenv("IDENTITYD_API_KEYS", "sk_test_fromenv1, sk_live_fromenv2fromenv2fromenv2xx=acct_env")
	t.Setenv("IDENTITYD_REDACTION_DELAY", "5s")
	t.Setenv("IDENTITYD_LOG_LEVEL", "debug")
	t.Setenv("IDENTITYD_CONCURRENCY", "7")

	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	require.NoError(t, m.ParseFlags([]string{"api"}))
	cfg := m.cfg
	require.Equal(t, "127.0.0.1:9001", cfg.Addr, "env applies without a flag")
	require.Equal(t, "redis://127.0.0.1:6399/3", cfg.RedisURL)
	require.Equal(t, 5*time.Second, cfg.RedactionDelay)
	require.Equal(t, 7, cfg.Concurrency)
	require.Len(t, cfg.APIKeys, 2)
	require.Equal(t, "sk_test_fromenv1", cfg.APIKeys[0].Secret)
	require.Equal(t, "acct_env", cfg.APIKeys[1].Scope.Account)
	require.True(t, cfg.APIKeys[1].Scope.Livemode)

	m = NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	require.NoError(t, m.ParseFlags([]string{"serve", "--addr", "127.0.0.1:9101", "--redis-url", "redis://127.0.0.1:6398/4",
		"--api-key", "sk_test_fromflag", "--redaction-delay", "1s", "--concurrency", "3"}))
	cfg = m.cfg
	require.Equal(t, "127.0.0.1:9101", cfg.Addr)
	require.Equal(t, "127.0.0.1:9002", cfg.AdminAddr, "env still fills what no flag set")
	require.Equal(t, "redis://127.0.0.1:6398/4", cfg.RedisURL)
	require.Equal(t, time.Second, cfg.RedactionDelay)
	require.Equal(t, 3, cfg.Concurrency)
	require.Equal(t, "debug", cfg.LogLevel)
	require.Len(t, cfg.APIKeys, 1, "--api-key replaces IDENTITYD_API_KEYS, it does not add to it")
	require.Equal(t, "sk_test_fromflag", cfg.APIKeys[0].Secret)
}

func TestConfig_InvalidEnvFailsFast(t *testing.T) {
	t.Setenv("IDENTITYD_VERIFICATION_DELAY", "soon")
	err := NewMain(&bytes.Buffer{}, &bytes.Buffer{}).ParseFlags([]string{"serve"})
	require.ErrorContains(t, err, "--verification-delay")
	// A flag overrides a bad env value.
	require.NoError(t, NewMain(&bytes.Buffer{}, &bytes.Buffer{}).ParseFlags([]string{"serve", "--verification-delay", "1s"}))
}

func TestConfig_InvalidFailsWithOneClearLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"BadDuration", []string{"--verification-delay", "two seconds"}, "--verification-delay"},
		{"NegativeDuration", []string{"--redaction-delay", "-1s"}, "--redaction-delay"},
		{"BadRetention", []string{"--retention", "30d"}, "--retention"},
		{"BadRedisURL", []string{"--redis-url", "http://127.0.0.1:6379"}, "--redis-url"},
		{"RedisURLNotAURL", []string{"--redis-url", "::::"}, "invalid --redis-url: no scheme; want redis://"},
		{"RedisURLHostPortOnly", []string{"--redis-url", "localhost:6379"}, "invalid --redis-url: no scheme; want redis://"},
		{"RedisURLEmptyScheme", []string{"--redis-url", "redis//cache:6379"}, "invalid --redis-url: no scheme; want redis://"},
		{"RedisURLHTTP", []string{"--redis-url", "http://cache:6379"}, `invalid --redis-url: scheme "http" is not redis`},
		{"RedisURLBadPort", []string{"--redis-url", "redis://:s3cret@cache:abc/0"}, `invalid --redis-url: invalid port ":abc" after host`},
		{"RedisURLBadDB", []string{"--redis-url", "redis://:s3cret@cache:6379/x"}, `invalid --redis-url: invalid database number`},
		{"URLAndCluster", []string{"--redis-url", "redis://127.0.0.1:6379/0", "--redis-cluster", "127.0.0.1:7000"}, "mutually exclusive"},
		{"SameAddrs", []string{"--addr", "127.0.0.1:8080", "--admin-addr", "127.0.0.1:8080"}, "--admin-addr"},
		{"AddrWithoutPort", []string{"--addr", "localhost"}, "--addr"},
		{"KeyPrefixWithSpace", []string{"--key-prefix", "my idv"}, "--key-prefix"},
		{"KeyPrefixWithBrace", []string{"--key-prefix", "idv{x}"}, "--key-prefix"},
		{"EmptyKeyPrefix", []string{"--key-prefix", ""}, "--key-prefix"},
		{"QueuePrefixWithColon", []string{"--queue-prefix", "a:b"}, "--queue-prefix"},
		{"PublishableKey", []string{"--api-key", "pk_test_abc"}, "--api-key"},
		{"BareKeyPrefix", []string{"--api-key", "sk_test_"}, "--api-key"},
		{"BadAccount", []string{"--api-key", "sk_test_abc=cus_1"}, "--api-key"},
		{"PlaceholderKey", []string{"--api-key", "sk_live_CHANGE_ME=acct_CHANGE_ME"}, "invalid --api-key: a key still holds the placeholder CHANGE_ME"},
		{"PlaceholderAccount", []string{"--api-key", "sk_live_0123456789abcdef0123456789abcdef=acct_CHANGE_ME"}, "placeholder CHANGE_ME"},
		{"PlaceholderTestKey", []string{"--api-key", "sk_test_CHANGE_ME"}, "placeholder CHANGE_ME"},
		{"ShortLiveKey", []string{"--api-key", "sk_live_s3cretbutshort"}, "invalid --api-key: a live key needs at least 24 characters after sk_live_"},
		{"DuplicateKey", []string{"--api-key", "sk_test_abc", "--api-key", "sk_test_abc=acct_x"}, "--api-key"},
		{"BadLogLevel", []string{"--log-level", "loud"}, "--log-level"},
		{"BadLogFormat", []string{"--log-format", "xml"}, "--log-format"},
		{"ZeroConcurrency", []string{"--concurrency", "0"}, "--concurrency"},
		{"BadRateLimit", []string{"--rate-limit", "-2"}, "--rate-limit"},
		{"BadPublicURL", []string{"--public-url", "ftp://files"}, "--public-url"},
		{"BadBackoff", []string{"--webhook-backoff", "5s,,1m"}, "--webhook-backoff"},
		{"ZeroWebhookConcurrency", []string{"--webhook-concurrency", "0"}, "invalid --webhook-concurrency"},
		{"BadEndpointConcurrency", []string{"--webhook-endpoint-concurrency", "two"}, "invalid --webhook-endpoint-concurrency"},
		{"TooFastReconcile", []string{"--reconcile-interval", "10ms"}, "--reconcile-interval"},
		{"StrayArgument", []string{"extra"}, "extra"},
		{"UnknownCommand", []string{"serv"}, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			args := tc.args
			if tc.name != "UnknownCommand" {
				args = append([]string{"serve"}, args...)
			}
			err := NewMain(&stdout, &stderr).ParseFlags(args)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "s3cret", "a password or key is never echoed")
			if tc.name != "UnknownCommand" { // that one adds the usage on purpose
				require.NotContains(t, err.Error(), "\n", "one line")
				require.Empty(t, stderr.String(), "nothing else is printed")
			}
			require.Empty(t, stdout.String())
		})
	}
}

func TestConfig_WebhookDefaults(t *testing.T) {
	t.Parallel()
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	require.NoError(t, m.ParseFlags([]string{"serve"}))
	require.Equal(t, events.DefaultBackoff, m.cfg.WebhookBackoff, "the flag's default is the schedule events documents")
	var total time.Duration
	for _, d := range m.cfg.WebhookBackoff {
		total += d
	}
	require.GreaterOrEqual(t, total, 72*time.Hour, "retries span at least Stripe's three days")
	require.Equal(t, 16, m.cfg.WebhookConcurrency)
	require.Equal(t, events.DefaultEndpointConcurrency, m.cfg.WebhookEndpointConcurrency)
}

func TestConfig_APIAndWorkerRefuseEmbeddedRedis(t *testing.T) { // not parallel: t.Setenv
	t.Setenv("REDIS_URL", "")
	t.Setenv("REDIS_CLUSTER_ADDRS", "")
	for _, role := range []string{"api", "worker"} {
		var stdout, stderr bytes.Buffer
		err := NewMain(&stdout, &stderr).ParseFlags([]string{role, "--api-key", "sk_test_abc"})
		require.Error(t, err, role)
		require.Contains(t, err.Error(), "identityd "+role+" needs the Redis it shares")
		require.Contains(t, err.Error(), "--redis-url")
		require.Contains(t, err.Error(), "--redis-cluster")
		require.NotContains(t, err.Error(), "\n")
		require.Empty(t, stdout.String())
		require.Empty(t, stderr.String())
	}
	for _, args := range [][]string{{"serve"}, {"api", "--redis-url", "redis://127.0.0.1:6379/0"},
		{"worker", "--redis-cluster", "127.0.0.1:7000"}} {
		require.NoError(t, NewMain(&bytes.Buffer{}, &bytes.Buffer{}).ParseFlags(args), args)
	}
}

func TestConfig_ExternalRedisWithoutKeyRefuses(t *testing.T) {
	t.Setenv("IDENTITYD_API_KEYS", "")
	r := storetest.New(t)
	var stdout, stderr bytes.Buffer
	m := NewMain(&stdout, &stderr)
	require.NoError(t, m.ParseFlags([]string{"serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--redis-url", r.URL, "--key-prefix", r.KeyPrefix, "--queue-prefix", r.QueuePrefix}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := m.Run(ctx)
	require.Error(t, err)
	require.Contains(t, err.Error(), "--api-key")
	require.NotContains(t, err.Error(), "\n")
	require.NotContains(t, stdout.String(), "sk_test_", "no key is generated for an external Redis")
	require.NoError(t, m.Close())
}

func TestConfig_EmbeddedGeneratesOneTestKey(t *testing.T) {
	t.Setenv("IDENTITYD_API_KEYS", "")
	t.Setenv("REDIS_URL", "")
	t.Setenv("REDIS_CLUSTER_ADDRS", "")
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	m := NewMain(stdout, stderr)
	require.NoError(t, m.ParseFlags([]string{"--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--log-level", "warn"}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case <-m.Ready:
	case err := <-done:
		t.Fatalf("exited before ready: %v\n%s", err, stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("not ready\n%s", stderr.String())
	}
	require.Contains(t, stderr.String(), "EMBEDDED IN-MEMORY REDIS")
	out := stdout.String()
	require.Equal(t, 1, strings.Count(out, "sk_test_"), "the key is printed once: %q", out)
	i := strings.Index(out, "sk_test_")
	require.GreaterOrEqual(t, i, 0)
	key := out[i:]
	key = strings.TrimSpace(key)
	require.Regexp(t, `^sk_test_[0-9A-Za-z]{24}$`, key)

	sc := stripe.NewClient(key, stripe.WithBackends(stripe.NewBackendsWithConfig(&stripe.BackendConfig{
		URL: stripe.String("http://" + m.APIAddr), MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}})))
	vs, err := sc.V1IdentityVerificationSessions.Create(context.Background(), &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
	require.NoError(t, err)
	require.False(t, vs.Livemode)

	cancel()
	require.NoError(t, <-done)
	require.NoError(t, m.Close())
	require.Equal(t, 1, strings.Count(stdout.String(), "sk_test_"))
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var stdout, stderr bytes.Buffer
		m := NewMain(&stdout, &stderr)
		require.NoError(t, m.ParseFlags(args))
		require.NoError(t, m.Run(context.Background()))
		require.Equal(t, "identityd "+buildVersion()+"\n", stdout.String(), args)
		require.Empty(t, stderr.String())
	}
	require.ErrorContains(t, NewMain(&bytes.Buffer{}, &bytes.Buffer{}).ParseFlags([]string{"version", "--short"}),
		"unknown flag --short")
}

func TestVersion_FromBuildInfo(t *testing.T) {
	t.Parallel()
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "63dd077c0ffee"}, {Key: "vcs.modified", Value: "true"}}}
	require.Equal(t, "v1.4.0 commit 63dd077c0ffee (modified) go1.26.8", versionString(bi))
	bi = &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}
	require.Equal(t, "(devel) commit unknown go1.26.8", versionString(bi), "built without VCS stamping")
}
