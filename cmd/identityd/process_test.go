package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// builtBinary is the identityd binary, built once and shared by every test that runs the real program as
// a separate process; the last test to finish with it removes it.
var builtBinary struct {
	mu    sync.Mutex
	dir   string
	users int
}

// identitydBinary builds ./cmd/identityd (once per test process) and returns the path of the executable.
func identitydBinary(t testing.TB) string {
	t.Helper()
	b := &builtBinary
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir == "" {
		goBin, err := exec.LookPath("go")
		require.NoError(t, err, "the go tool is needed to build the binary under test")
		// Built once for every test of the package, so it outlives the test that built it: not t.TempDir().
		dir, err := os.MkdirTemp("", "identityd-bin-") //nolint:usetesting // shared by the package's tests
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		// The test runs in the package directory, so "." is ./cmd/identityd. Under -race the binary is built
		// with it too: it reuses the packages just compiled for the test and checks the real processes.
		args := []string{"build", "-o", filepath.Join(dir, "identityd")}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.CommandContext(ctx, goBin, append(args, ".")...).CombinedOutput()
		if err != nil {
			_ = os.RemoveAll(dir)
			t.Fatalf("go build ./cmd/identityd: %v\n%s", err, out)
		}
		b.dir = dir
	}
	b.users++
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.users--; b.users == 0 {
			_ = os.RemoveAll(b.dir)
			b.dir = ""
		}
	})
	return filepath.Join(b.dir, "identityd")
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// process is a child process the test started; its stdout and stderr go to one buffer.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // set before done is closed
}

// processGroup starts child processes, stops each of them by PID when the test ends and, if the test
// failed, prints what each of them wrote.
type processGroup struct {
	t     testing.TB
	mu    sync.Mutex
	procs []*process
}

func newProcessGroup(t testing.TB) *processGroup {
	t.Helper()
	g := &processGroup{t: t}
	t.Cleanup(func() {
		// Cleanups run last-in first-out: every process's own cleanup has killed it by now.
		if !t.Failed() {
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, p := range g.procs {
			t.Logf("---- output of %s (pid %d, exit: %v), last lines ----\n%s", p.name, p.cmd.Process.Pid, p.err, tail(p.out.String(), 150))
		}
	})
	return g
}

// start runs bin with args; the process is SIGKILLed by PID at the end of the test if still running.
func (g *processGroup) start(name, bin string, args ...string) *process {
	g.t.Helper()
	return g.startEnv(name, nil, bin, args...)
}

// startEnv is start with the environment env (nil: the test's own).
func (g *processGroup) startEnv(name string, env []string, bin string, args ...string) *process {
	g.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	p := &process{name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(g.t, cmd.Start(), "start %s", name)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()
	g.t.Cleanup(func() { p.kill(g.t) })
	return p
}

// kill sends SIGKILL to the process (by its PID) and waits for it to be gone.
func (p *process) kill(t testing.TB) {
	t.Helper()
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Errorf("%s (pid %d) still running 15s after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitOutput waits until the process has written want, failing if it exits first or time runs out.
func (p *process) waitOutput(t testing.TB, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(p.out.String(), want) {
		if p.exited() {
			t.Fatalf("%s exited (%v) before writing %q", p.name, p.err, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not write %q within %s", p.name, want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = append([]string{fmt.Sprintf("… %d earlier lines left out", len(parts)-lines)}, parts[len(parts)-lines:]...)
	}
	return strings.Join(parts, "\n")
}

// redisServer is a redis-server the test owns, persisting every write to its append-only file before
// answering (appendfsync always), so a SIGKILL loses nothing that was acknowledged.
type redisServer struct {
	g    *processGroup
	bin  string
	dir  string
	port int
	proc *process
}

// startRedisServer starts redis-server in a fresh directory on a free loopback port.
func startRedisServer(t testing.TB, g *processGroup) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil && os.Getenv("CI") == "" {
		t.Skip("redis-server is not installed: this test kills and restarts its own Redis (CI installs it)")
	}
	require.NoError(t, err, "redis-server must be installed (CI installs it)")
	r := &redisServer{g: g, bin: bin, dir: t.TempDir(), port: freePort(t)}
	r.start(t)
	return r
}

// start (re)starts the server on the same directory and port; after a crash it reloads the AOF.
func (r *redisServer) start(t testing.TB) {
	t.Helper()
	r.proc = r.g.start("redis-server", r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
		"--logfile", "")
	rdb := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err() // LOADING while the AOF is replayed
		cancel()
		if err == nil {
			return
		}
		if r.proc.exited() {
			t.Fatalf("redis-server exited: %v", r.proc.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server does not answer PING: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisServer) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }
func (r *redisServer) url() string  { return "redis://" + r.addr() + "/0" }
