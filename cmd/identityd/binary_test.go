package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// buildBinary compiles cmd/identityd into a temporary directory: the real binary, so exit codes and output are
// those a shell sees. Every test that runs the executable builds it here.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "identityd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// cleanEnv is the test process's environment without identityd's own variables, so the binary sees only its flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IDENTITYD_") && !strings.HasPrefix(kv, "REDIS_") {
			env = append(env, kv)
		}
	}
	return env
}

// runExits runs the binary with a clean environment, requires it to exit with code, and returns its output.
func runExits(t *testing.T, bin string, code int, args ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "want exit %d, got %v", code, err)
	require.Equal(t, code, exit.ExitCode(), "stderr: %s", errOut.String())
	return out.String(), errOut.String()
}

// TestBinary runs the real executable: embedded Redis with a generated key, one request, SIGTERM → exit 0;
// a bad flag → exit 2 with one line; `version`.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	t.Parallel()
	bin := buildBinary(t)

	t.Run("ServeThenSIGTERM", func(t *testing.T) {
		t.Parallel()
		cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
		cmd.Env = cleanEnv()
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		stderr, err := cmd.StderrPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		exited := false
		t.Cleanup(func() {
			if !exited {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})

		keys := make(chan string, 1)
		var outText bytes.Buffer
		outDone := make(chan struct{})
		go func() {
			defer close(outDone)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				outText.WriteString(sc.Text() + "\n")
				if k := regexp.MustCompile(`sk_test_[0-9A-Za-z]+`).FindString(sc.Text()); k != "" {
					select {
					case keys <- k:
					default: // printed twice: the count below fails
					}
				}
			}
		}()
		addrs := make(chan string, 1)
		var errText bytes.Buffer
		errDone := make(chan struct{})
		go func() {
			defer close(errDone)
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				errText.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), "api listening") {
					if m := regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(sc.Text()); m != nil {
						select {
						case addrs <- m[1]:
						default:
						}
					}
				}
			}
		}()
		var key, addr string
		for key == "" || addr == "" {
			select {
			case key = <-keys:
			case addr = <-addrs:
			case <-time.After(30 * time.Second):
				t.Fatalf("binary did not print its key and address (key %q, addr %q)", key, addr)
			}
		}

		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/identity/verification_sessions", strings.NewReader("type=document"))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, string(body))
		require.Contains(t, string(body), `"status":"requires_input"`)

		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		waitErr := make(chan error, 1)
		go func() {
			<-outDone // the pipes must be drained before Wait
			<-errDone
			waitErr <- cmd.Wait()
		}()
		select {
		case err = <-waitErr:
			exited = true
		case <-time.After(30 * time.Second):
			t.Fatalf("no exit 30s after SIGTERM")
		}
		require.NoError(t, err, "exit code 0 after SIGTERM\n%s", errText.String())
		require.Equal(t, 1, strings.Count(outText.String(), "sk_test_"), "the key is printed once")
		require.Contains(t, errText.String(), "EMBEDDED IN-MEMORY REDIS")
		require.Contains(t, errText.String(), "stopped")
	})

	t.Run("BadFlagExitsWithOneLine", func(t *testing.T) {
		t.Parallel()
		stdout, stderr := runExits(t, bin, 2, "serve", "--redaction-delay", "soon")
		require.Equal(t, "identityd: invalid --redaction-delay \"soon\": want a duration such as 30s, 5m or 720h\n", stderr)
		require.Empty(t, stdout)
	})

	t.Run("ExternalRedisWithoutKeyExits1", func(t *testing.T) {
		t.Parallel()
		_, stderr := runExits(t, bin, 1, "serve", "--redis-url", "redis://127.0.0.1:1/0", "--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
		require.Contains(t, stderr, "--api-key")
	})

	t.Run("UnreachableRedisIsOneLine", func(t *testing.T) {
		t.Parallel()
		_, stderr := runExits(t, bin, 1, "serve", "--redis-url", "redis://:s3cret@127.0.0.1:1/0", "--api-key", "sk_test_abc",
			"--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
		require.Equal(t, 1, strings.Count(stderr, "\n"), "one line, no go-redis pool logs: %q", stderr)
		require.True(t, strings.HasPrefix(stderr, "identityd: --redis-url: Redis does not answer: "), stderr)
		require.NotContains(t, stderr, "s3cret")
	})

	t.Run("APIWithoutRedisExits2", func(t *testing.T) {
		t.Parallel()
		stdout, stderr := runExits(t, bin, 2, "api", "--api-key", "sk_test_abc")
		require.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
		require.Contains(t, stderr, "--redis-url")
		require.Empty(t, stdout)
	})

	t.Run("Version", func(t *testing.T) {
		t.Parallel()
		out, err := exec.Command(bin, "version").Output()
		require.NoError(t, err)
		require.Regexp(t, `^identityd \S+ commit \S+( \(modified\))? go\S+\n$`, string(out))
		flagOut, err := exec.Command(bin, "--version").Output()
		require.NoError(t, err)
		require.Equal(t, string(out), string(flagOut))
	})

	t.Run("HelpExits0", func(t *testing.T) {
		t.Parallel()
		for _, arg := range []string{"--help", "-h"} {
			cmd := exec.Command(bin, arg)
			cmd.Env = cleanEnv()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			require.NoError(t, cmd.Run(), arg)
			require.Contains(t, stdout.String(), "--verification-delay duration", arg)
			require.Empty(t, stderr.String(), arg)
		}
	})

	t.Run("UnknownFlagIsOneLineExit2", func(t *testing.T) {
		t.Parallel()
		stdout, stderr := runExits(t, bin, 2, "--colour")
		require.Equal(t, "identityd: unknown flag --colour; see identityd --help\n", stderr)
		require.Empty(t, stdout)
	})
}
