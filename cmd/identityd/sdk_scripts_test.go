package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// pythonStripe is the interpreter Debian's python3-stripe installs into: the system one, not whichever python3
// comes first on PATH.
const pythonStripe = "/usr/bin/python3"

// pythonStripeVersion is the python3-stripe the suite is written for (Debian 12's).
const pythonStripeVersion = "5.0.0"

// sdkMissing skips t when an SDK or its runtime is not installed, except in CI (CI=true), where .ci/run
// installs them and a missing one is a failure.
func sdkMissing(t *testing.T, what, install string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed: .ci/run installs it (%s)", what, install)
	}
	t.Skipf("%s is not installed (%s); the SDK compatibility suite needs it", what, install)
}

// npmCI installs the Node SDK from the committed lock file once per test process, when node_modules is missing.
var npmCI struct {
	once sync.Once
	err  error
}

func nodeScenario(t *testing.T) func(ctx context.Context, base, key string) ([]byte, error) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		sdkMissing(t, "node", "apt-get install nodejs npm")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		sdkMissing(t, "npm", "apt-get install nodejs npm")
	}
	dir, err := filepath.Abs(filepath.FromSlash("testdata/sdk/node"))
	if err != nil {
		t.Fatal(err)
	}
	npmCI.once.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "stripe", "package.json")); err == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			npmCI.err = fmt.Errorf("npm ci in %s: %w\n%s", dir, err, out)
		}
	})
	if npmCI.err != nil {
		t.Fatal(npmCI.err)
	}
	return func(ctx context.Context, base, key string) ([]byte, error) {
		return runSDKScript(ctx, dir, base, key, node, "scenario.js")
	}
}

func pythonScenario(t *testing.T) func(ctx context.Context, base, key string) ([]byte, error) {
	t.Helper()
	out, err := exec.Command(pythonStripe, "-c", "import stripe.version; print(stripe.version.VERSION)").Output()
	if err != nil {
		sdkMissing(t, "python3-stripe", "apt-get install python3-stripe")
	}
	if got := strings.TrimSpace(string(out)); got != pythonStripeVersion {
		t.Fatalf("python3-stripe is %s; the suite is written for %s", got, pythonStripeVersion)
	}
	dir, err := filepath.Abs(filepath.FromSlash("testdata/sdk/python"))
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, base, key string) ([]byte, error) {
		return runSDKScript(ctx, dir, base, key, pythonStripe, "scenario.py")
	}
}

// runSDKScript runs a scenario script in dir with the daemon's base URL and the key in its environment and
// returns its stdout, the report. A script that exits non-zero is an error carrying its stderr.
func runSDKScript(ctx context.Context, dir, base, key string, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), "IDENTITYD_BASE="+base, "SDK_API_KEY="+key, "PYTHONDONTWRITEBYTECODE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if exit, ok := errors.AsType[*exec.ExitError](err); ok {
			return stdout.Bytes(), fmt.Errorf("%s exited with %d: %w\nstderr: %s\nstdout: %s", argv[1], exit.ExitCode(), err, stderr.String(), stdout.String())
		}
		return nil, fmt.Errorf("run %s: %w", argv[1], err)
	}
	return stdout.Bytes(), nil
}
