package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// writeSecret writes content to a file of its own in t's temp dir (mode 0600, as a mounted secret) and
// returns its path.
func writeSecret(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// clearSecretEnv unsets every variable these tests read, so the environment of the machine cannot leak in.
func clearSecretEnv(t *testing.T) {
	t.Helper()
	for _, name := range []string{"IDENTITYD_API_KEYS", "IDENTITYD_API_KEYS_FILE", "IDENTITYD_ADMIN_PASSWORD",
		"IDENTITYD_ADMIN_PASSWORD_FILE", "REDIS_URL", "REDIS_CLUSTER_ADDRS"} {
		t.Setenv(name, "")
	}
}

func parseServe(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
	if err := m.ParseFlags(append([]string{"serve"}, args...)); err != nil {
		return nil, err
	}
	return m.cfg, nil
}

func secrets(keys []string, cfg *Config) []string {
	for _, k := range cfg.APIKeys {
		keys = append(keys, k.Secret)
	}
	return keys
}

func TestSecretFiles_APIKeys(t *testing.T) { // not parallel: t.Setenv
	clearSecretEnv(t)
	file := writeSecret(t, "# identityd keys\nsk_test_fromfile1=acct_one\n\n  sk_test_fromfile2 , sk_test_fromfile3\n")

	cfg, err := parseServe(t, "--api-keys-file", file)
	require.NoError(t, err)
	require.Equal(t, []string{"sk_test_fromfile1", "sk_test_fromfile2", "sk_test_fromfile3"}, secrets(nil, cfg))
	require.Equal(t, "acct_one", cfg.APIKeys[0].Scope.Account)

	t.Setenv("IDENTITYD_API_KEYS_FILE", file)
	cfg, err = parseServe(t)
	require.NoError(t, err, "from the environment")
	require.Len(t, cfg.APIKeys, 3)

	cfg, err = parseServe(t, "--api-key", "sk_test_fromflag")
	require.NoError(t, err, "a flag wins over the environment")
	require.Equal(t, []string{"sk_test_fromflag"}, secrets(nil, cfg))

	_, err = parseServe(t, "--api-key", "sk_test_fromflag", "--api-keys-file", file)
	require.ErrorContains(t, err, "--api-key and --api-keys-file are mutually exclusive")

	t.Setenv("IDENTITYD_API_KEYS", "sk_test_fromenv")
	_, err = parseServe(t)
	require.ErrorContains(t, err, "IDENTITYD_API_KEYS and IDENTITYD_API_KEYS_FILE are both set")
	cfg, err = parseServe(t, "--api-keys-file", file)
	require.NoError(t, err, "a flag settles it")
	require.Len(t, cfg.APIKeys, 3)

	t.Setenv("IDENTITYD_API_KEYS", "")
	t.Setenv("IDENTITYD_API_KEYS_FILE", "")
	_, err = parseServe(t, "--api-keys-file", filepath.Join(t.TempDir(), "missing"))
	require.ErrorContains(t, err, "--api-keys-file: open ")
	_, err = parseServe(t, "--api-keys-file", writeSecret(t, "\n"))
	require.ErrorContains(t, err, "the file is empty")
	_, err = parseServe(t, "--api-keys-file", writeSecret(t, "sk_live_CHANGE_ME\n"))
	require.ErrorContains(t, err, "placeholder CHANGE_ME", "the file's keys are checked like the flag's")
}

func TestSecretFiles_AdminPassword(t *testing.T) { // not parallel: t.Setenv
	clearSecretEnv(t)
	file := writeSecret(t, "correct horse battery staple\n")

	cfg, err := parseServe(t, "--admin-password-file", file)
	require.NoError(t, err)
	require.Equal(t, "correct horse battery staple", cfg.AdminPassword, "the final line break is not part of it")

	t.Setenv("IDENTITYD_ADMIN_PASSWORD_FILE", file)
	cfg, err = parseServe(t)
	require.NoError(t, err)
	require.Equal(t, "correct horse battery staple", cfg.AdminPassword)
	cfg, err = parseServe(t, "--admin-password", "from-flag")
	require.NoError(t, err)
	require.Equal(t, "from-flag", cfg.AdminPassword, "a flag wins over the environment")

	t.Setenv("IDENTITYD_ADMIN_PASSWORD", "from-env")
	_, err = parseServe(t)
	require.ErrorContains(t, err, "IDENTITYD_ADMIN_PASSWORD and IDENTITYD_ADMIN_PASSWORD_FILE are both set")
	_, err = parseServe(t, "--admin-password", "a", "--admin-password-file", file)
	require.ErrorContains(t, err, "--admin-password and --admin-password-file are mutually exclusive")

	t.Setenv("IDENTITYD_ADMIN_PASSWORD_FILE", "")
	cfg, err = parseServe(t)
	require.NoError(t, err)
	require.Equal(t, "from-env", cfg.AdminPassword)
}

// A daemon whose key and password come from files serves that key and guards its admin list with that password.
func TestSecretFiles_DaemonUsesThem(t *testing.T) { // not parallel: t.Setenv
	clearSecretEnv(t)
	keys := writeSecret(t, "sk_test_filekey00000000000000000=acct_file\n")
	password := writeSecret(t, "s3cret-from-file\n")
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	m := NewMain(stdout, stderr)
	require.NoError(t, m.ParseFlags([]string{"serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--api-keys-file", keys, "--admin-password-file", password, "--log-level", "error"}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, m.Close())
	})
	select {
	case <-m.Ready:
	case err := <-done:
		t.Fatalf("exited before ready: %v\n%s", err, stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("not ready\n%s", stderr.String())
	}
	require.Empty(t, stdout.String(), "no key is generated")

	status := func(url, user, pass string) int {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		require.NoError(t, err)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	api := "http://" + m.APIAddr + "/v1/identity/verification_sessions"
	require.Equal(t, http.StatusOK, status(api, "sk_test_filekey00000000000000000", ""))
	require.Equal(t, http.StatusUnauthorized, status(api, "sk_test_other", ""))
	admin := "http://" + m.AdminAddr + pathFailedRedactions
	require.Equal(t, http.StatusOK, status(admin, adminUser, "s3cret-from-file"))
	require.Equal(t, http.StatusUnauthorized, status(admin, adminUser, "s3cret-from-file\n"))
	require.Equal(t, http.StatusUnauthorized, status(admin, "", ""))
}

func TestConfig_RedisClusterPasswordAndTLS(t *testing.T) { // not parallel: t.Setenv
	clearSecretEnv(t)
	for _, name := range []string{"REDIS_CLUSTER_PASSWORD", "REDIS_CLUSTER_PASSWORD_FILE", "REDIS_CLUSTER_TLS", "REDIS_CLUSTER_CA_FILE"} {
		t.Setenv(name, "")
	}
	cfg, err := parseServe(t, "--redis-cluster", "127.0.0.1:7000,127.0.0.1:7001", "--redis-cluster-password", "pw", "--redis-cluster-tls")
	require.NoError(t, err)
	opt, err := cfg.clusterOptions()
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.1:7000", "127.0.0.1:7001"}, opt.Addrs)
	require.Equal(t, "pw", opt.Password)
	require.NotNil(t, opt.TLSConfig)
	require.Nil(t, opt.TLSConfig.RootCAs, "the system's roots")

	cfg, err = parseServe(t, "--redis-cluster", "127.0.0.1:7000")
	require.NoError(t, err)
	opt, err = cfg.clusterOptions()
	require.NoError(t, err)
	require.Empty(t, opt.Password)
	require.Nil(t, opt.TLSConfig, "plain TCP unless asked")

	t.Setenv("REDIS_CLUSTER_ADDRS", "127.0.0.1:7000")
	t.Setenv("REDIS_CLUSTER_PASSWORD_FILE", writeSecret(t, "from-file\n"))
	t.Setenv("REDIS_CLUSTER_TLS", "true")
	cfg, err = parseServe(t)
	require.NoError(t, err)
	opt, err = cfg.clusterOptions()
	require.NoError(t, err)
	require.Equal(t, "from-file", opt.Password)
	require.NotNil(t, opt.TLSConfig)
	t.Setenv("REDIS_CLUSTER_PASSWORD", "from-env")
	_, err = parseServe(t)
	require.ErrorContains(t, err, "REDIS_CLUSTER_PASSWORD and REDIS_CLUSTER_PASSWORD_FILE are both set")
	t.Setenv("REDIS_CLUSTER_PASSWORD_FILE", "")
	t.Setenv("REDIS_CLUSTER_TLS", "maybe")
	_, err = parseServe(t)
	require.ErrorContains(t, err, `invalid --redis-cluster-tls "maybe"`)
	t.Setenv("REDIS_CLUSTER_TLS", "")
	t.Setenv("REDIS_CLUSTER_ADDRS", "")

	_, err = parseServe(t, "--redis-url", "redis://127.0.0.1:6379/0", "--redis-cluster-password", "pw")
	require.ErrorContains(t, err, "need --redis-cluster")
	_, err = parseServe(t, "--redis-cluster", "127.0.0.1:7000", "--redis-cluster-ca-file", filepath.Join(t.TempDir(), "none.pem"))
	require.ErrorContains(t, err, "--redis-cluster-ca-file: open ")
	_, err = parseServe(t, "--redis-cluster", "127.0.0.1:7000", "--redis-cluster-ca-file", writeSecret(t, "not a certificate"))
	require.ErrorContains(t, err, "no PEM certificate in it")

	out, _, err := runArgs(t, "--help")
	require.NoError(t, err)
	require.Contains(t, out, "  --redis-cluster-tls\n", "a switch shows no kind")
	require.Contains(t, out, "  --redis-cluster-ca-file path\n")
}
