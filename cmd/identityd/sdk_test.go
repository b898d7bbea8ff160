package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store/storetest"
)

// The SDK compatibility suite: one scenario through three official SDKs — stripe-go (in this process), Stripe's
// Node SDK (testdata/sdk/node, the npm package pinned in its lock file) and Debian's python3-stripe 5.0.0
// (testdata/sdk/python) — against a real identityd process. Each SDK reports one JSON line per check; every
// answer it got is validated against Stripe's OpenAPI schema for that object (testdata/sdk/openapi).

// sdkCheck is one line of a scenario's report.
type sdkCheck struct {
	Check   string          `json:"check"`
	Schema  string          `json:"schema"` // a component or "GET /path"; empty: nothing to validate
	OK      bool            `json:"ok"`
	Message string          `json:"message"`
	Body    json.RawMessage `json:"body"`
}

// sdkChecks are the checks every SDK's scenario reports, in order; a scenario that stops early misses some.
var sdkChecks = []string{
	"webhook_endpoint_create", "session_create", "session_retrieve", "session_create_page_of_25",
	"session_list_first_page", "session_list_auto_pagination", "session_update", "session_cancel",
	"session_list_filters", "session_submit_test_helper", "session_verified_expanded", "report_retrieve",
	"report_list", "session_redact", "session_redacted", "error_404_missing_id", "error_400_bad_param",
	"idempotent_retry_same_object", "idempotency_key_reused_with_other_params", "webhook_verified_signature",
	"webhook_redacted_signature", "webhook_event_object", "event_retrieve",
}

// sdkLanguage runs the scenario through one SDK against base with key and returns its report (JSON lines).
type sdkLanguage struct {
	name string
	key  string // an account of its own, so lists see only the scenario's sessions
	// prepare skips or fails the test when the SDK is missing and returns the scenario to run.
	prepare func(t *testing.T) func(ctx context.Context, base, key string) ([]byte, error)
}

var sdkLanguages = []sdkLanguage{
	{"go", "sk_test_sdkgo000000000000000000000=acct_sdk_go", func(*testing.T) func(context.Context, string, string) ([]byte, error) {
		return goScenario
	}},
	{"node", "sk_test_sdknode0000000000000000000=acct_sdk_node", nodeScenario},
	{"python", "sk_test_sdkpython00000000000000000=acct_sdk_python", pythonScenario},
}

// TestSDKCompat runs the scenario through every SDK, in parallel, against one identityd process.
func TestSDKCompat(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary and three SDKs; skipped with -short")
	}
	t.Parallel()
	spec, err := loadOpenAPISpec(filepath.FromSlash(specPath))
	require.NoError(t, err)
	base := startSDKDaemon(t)
	for _, lang := range sdkLanguages {
		t.Run(lang.name, func(t *testing.T) {
			t.Parallel()
			scenario := lang.prepare(t)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			secret, _, _ := strings.Cut(lang.key, "=")
			out, err := scenario(ctx, base, secret)
			if err != nil {
				t.Errorf("the %s scenario did not finish: %v", lang.name, err)
			}
			passed, failures := judgeSDKReport(spec, lang.name, out)
			for _, f := range failures {
				t.Error(f)
			}
			t.Logf("sdk checks: %s %d/%d", lang.name, passed, len(sdkChecks))
		})
	}
}

// startSDKDaemon runs `identityd serve` as its own process on the test's Redis with one key per SDK, and
// returns its base URL. The SDKs' webhook receivers listen on 127.0.0.1, so it allows private addresses.
func startSDKDaemon(t *testing.T) string {
	t.Helper()
	r := storetest.New(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := []string{"serve", "--addr", addr, "--admin-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--key-prefix", r.KeyPrefix, "--queue-prefix", r.QueuePrefix, "--verification-delay", "0s",
		"--redaction-delay", "0s", "--webhook-backoff", "1s", "--webhook-allow-private", "--concurrency", "8", "--log-level", "info"}
	args = append(args, redisFlags(r)...)
	for _, lang := range sdkLanguages {
		args = append(args, "--api-key", lang.key)
	}
	p := newProcessGroup(t).start("identityd serve", identitydBinary(t), args...)
	p.waitOutput(t, `msg="identityd started"`, 60*time.Second)
	return "http://" + addr
}

// judgeSDKReport reads a scenario's report and returns how many of the expected checks passed and a line for
// every failed check, every schema violation (with its path), every line that is no check, and every expected
// check the report misses.
func judgeSDKReport(spec *openAPISpec, lang string, out []byte) (passed int, failures []string) {
	fail := func(format string, args ...any) { failures = append(failures, lang+" "+fmt.Sprintf(format, args...)) }
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var c sdkCheck
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			fail("report line is not a check: %q", sc.Text())
			continue
		}
		if !slices.Contains(sdkChecks, c.Check) || seen[c.Check] {
			fail("%s: unexpected or repeated check: %s", c.Check, c.Message)
			continue
		}
		seen[c.Check] = true
		if !c.OK {
			fail("%s: %s\nbody: %s", c.Check, c.Message, c.Body)
			continue
		}
		var problems []string
		if c.Schema != "" {
			var err error
			if problems, err = spec.validate(c.Schema, c.Body); err != nil {
				problems = []string{err.Error()}
			}
		}
		for _, p := range problems {
			fail("%s: the answer breaks Stripe's %s schema: %s", c.Check, c.Schema, p)
		}
		if len(problems) == 0 {
			passed++
		}
	}
	if err := sc.Err(); err != nil {
		fail("reading the report: %v", err)
	}
	for _, name := range sdkChecks {
		if !seen[name] {
			fail("%s: not reported", name)
		}
	}
	return passed, failures
}
