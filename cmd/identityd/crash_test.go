package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/cmd/identityd/bench"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/worker"
)

// crashCluster is a redis-server with an append-only file, and identityd api and worker processes on it,
// all started (and killed) by the test.
type crashCluster struct {
	t         *testing.T
	g         *processGroup
	bin       string
	redis     *redisServer
	store     *store.Store
	scope     store.Scope
	inspector *asynq.Inspector
	queues    worker.Queues
	api       *process
	client    *rawClient
	started   int
}

const crashPrefix = "crash"

func newCrashCluster(t *testing.T) *crashCluster {
	t.Helper()
	c := &crashCluster{t: t, g: newProcessGroup(t), bin: identitydBinary(t), scope: store.Scope{Account: "acct_alpha"},
		queues: worker.NewQueues(crashPrefix)}
	c.redis = startRedisServer(t, c.g)
	rdb := redis.NewClient(&redis.Options{Addr: c.redis.addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	c.store = store.New(rdb, store.Config{Prefix: crashPrefix})
	c.inspector = asynq.NewInspectorFromRedisClient(rdb)
	return c
}

// startRole starts `identityd <role>` as its own process and waits until it has started.
func (c *crashCluster) startRole(role string) (*process, string) {
	c.t.Helper()
	c.started++
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(c.t))
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(c.t))
	p := c.g.start(fmt.Sprintf("identityd %s (#%d)", role, c.started), c.bin, role,
		"--redis-url", c.redis.url(), "--api-key", testKeyA, "--addr", addr, "--admin-addr", admin,
		"--key-prefix", crashPrefix, "--queue-prefix", crashPrefix, "--reconcile-interval", "1s",
		"--concurrency", "4", "--redaction-delay", "300ms", "--verification-delay", "0s", "--log-level", "info")
	p.waitOutput(c.t, `msg="identityd started"`, 60*time.Second)
	return p, addr
}

func (c *crashCluster) startAPI() {
	p, addr := c.startRole("api")
	c.api, c.client = p, newRawClient("http://"+addr, testKeyA)
}

// pending lists the sessions whose redaction was requested and is not finished, from identityd's own index.
func (c *crashCluster) pending() []string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids, err := c.store.PendingRedactions(ctx, c.scope, time.Now().Add(time.Hour).UnixMilli(), 1_000_000)
	require.NoError(c.t, err)
	slices.Sort(ids)
	return ids
}

// activeRedactions counts redact tasks asynq has handed to a worker and not yet seen finish.
func (c *crashCluster) activeRedactions() int {
	tasks, err := c.inspector.ListActiveTasks(c.queues.Redact, asynq.PageSize(100))
	if err != nil {
		return 0 // the queue does not exist until the first task
	}
	return len(tasks)
}

// redactTasks returns the redact tasks asynq holds in any state, by session id.
func (c *crashCluster) redactTasks() map[string]*asynq.TaskInfo {
	c.t.Helper()
	out := map[string]*asynq.TaskInfo{}
	lists := []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){c.inspector.ListScheduledTasks,
		c.inspector.ListPendingTasks, c.inspector.ListActiveTasks, c.inspector.ListRetryTasks,
		c.inspector.ListArchivedTasks, c.inspector.ListCompletedTasks}
	for _, list := range lists {
		for page := 1; ; page++ {
			tasks, err := list(c.queues.Redact, asynq.PageSize(100), asynq.Page(page))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				break
			}
			require.NoError(c.t, err)
			for _, info := range tasks {
				var p worker.RedactPayload
				require.NoError(c.t, json.Unmarshal(info.Payload, &p))
				out[p.SessionID] = info
			}
			if len(tasks) < 100 {
				break
			}
		}
	}
	return out
}

func redactPath(id string) string { return "/v1/identity/verification_sessions/" + id + "/redact" }

// Kinds of session in the crash test, by index: 30% verified (with a report), 10% canceled, the rest
// requires_input (which redaction cancels first).
func crashKind(i int) string {
	switch i % 10 {
	case 0, 1, 2:
		return "verified"
	case 3:
		return "canceled"
	}
	return "requires_input"
}

// createCrashSessions creates n sessions over HTTP and brings each to its kind.
func (c *crashCluster) createCrashSessions(n int) []string {
	c.t.Helper()
	ids := make([]string, n)
	post := func(path string, form url.Values) (map[string]any, error) {
		code, out, err := c.client.do(http.MethodPost, path, form)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("POST %s: %d %v", path, code, out)
		}
		return out, err
	}
	err := bench.ParallelRange(0, n, 8, func(i int) error {
		out, err := post("/v1/identity/verification_sessions", url.Values{"type": {"document"},
			"client_reference_id": {fmt.Sprintf("crash-%d", i)}, "metadata[n]": {strconv.Itoa(i)},
			"provided_details[email]": {fmt.Sprintf("person%d@example.com", i)}})
		if err != nil {
			return err
		}
		ids[i] = out["id"].(string)
		switch crashKind(i) {
		case "verified":
			_, err = post("/v1/test_helpers/identity/verification_sessions/"+ids[i]+"/submit", url.Values{
				"verified_outputs[first_name]": {fmt.Sprintf("First%d", i)}, "verified_outputs[last_name]": {"Crash"},
				"verified_outputs[dob][day]": {"2"}, "verified_outputs[dob][month]": {"3"},
				"verified_outputs[dob][year]": {"1990"}, "document[number]": {fmt.Sprintf("DOC%d", i)}})
		case "canceled":
			_, err = post("/v1/identity/verification_sessions/"+ids[i]+"/cancel", nil)
		}
		return err
	})
	require.NoError(c.t, err)
	eventually(c.t, 60*time.Second, "submitted sessions verified", func() bool {
		verified := c.client.listAll(c.t, "/v1/identity/verification_sessions", url.Values{"status": {"verified"}})
		return len(verified) == n*3/10
	})
	return ids
}

// TestCrash_NoLostRedaction holds "no lost redaction" and "exactly one event" end to end: identityd api and
// worker run as separate processes on a redis-server with appendfsync always, and the worker, the API and
// Redis are each SIGKILLed while redactions are in flight. Every redaction the API answered must still complete, with exactly one
// `.redacted` event and a completed audit record per session.
func TestCrash_NoLostRedaction(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: starts redis-server and identityd processes; skipped with -short")
	}
	t.Parallel()
	const n = 200
	c := newCrashCluster(t)
	c.startAPI()
	worker1, _ := c.startRole("worker")
	ids := c.createCrashSessions(n)
	answered := map[string]bool{}
	redact := func(id string) {
		c.client.must(t, http.MethodPost, redactPath(id), nil)
		answered[id] = true
	}

	// 1. SIGKILL the worker mid-batch: once some redactions are done and others are queued or running.
	for _, id := range ids[:60] {
		redact(id)
	}
	firstDone := time.Time{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if done := 60 - len(c.pending()); done >= 5 {
			if firstDone.IsZero() {
				firstDone = time.Now()
			}
			// Prefer a moment when a task is running, so its lease is orphaned by the kill.
			if c.activeRedactions() > 0 || time.Since(firstDone) > 2*time.Second {
				break
			}
		}
		require.False(t, time.Now().After(deadline), "the worker completed fewer than 5 redactions in 60s")
		time.Sleep(2 * time.Millisecond)
	}
	worker1.kill(t)
	pendingAtKill := c.pending()
	orphaned, unfinished := 0, 0
	for id, info := range c.redactTasks() {
		if info.State == asynq.TaskStateActive {
			orphaned++
			if slices.Contains(pendingAtKill, id) {
				unfinished++
			}
		}
	}
	doneAtKill := 60 - len(pendingAtKill)
	t.Logf("worker SIGKILLed with %d of 60 redactions done; %d redact tasks left active, %d of them unfinished",
		doneAtKill, orphaned, unfinished)
	require.GreaterOrEqual(t, doneAtKill, 5)
	for _, id := range ids[60:100] { // requested while no worker runs
		redact(id)
	}
	require.GreaterOrEqual(t, len(c.pending()), 40, "redactions completed with the worker dead")

	// 2. The API can die between its atomic commit and its enqueue, and then answers a client's retry with
	// 200 without enqueueing. Leave the last five sessions of this batch in that state, as a dead API would;
	// only the reconciler can finish them.
	for _, id := range ids[145:150] {
		_, err := c.store.RequestRedaction(context.Background(), c.scope, id,
			store.Requester{Type: store.RequestedByRequest, ID: "req_crashwindow"}, store.Origin{RequestID: "req_crashwindow"})
		require.NoError(t, err)
	}
	// SIGKILL the API right after it answers a redact, with other redact calls in flight.
	var (
		killed atomic.Bool
		mu     sync.Mutex
		wg     sync.WaitGroup
		work   = make(chan string)
	)
	api := c.api
	for range 8 {
		wg.Go(func() {
			for id := range work {
				code, _, err := c.client.do(http.MethodPost, redactPath(id), nil)
				if err != nil || code != http.StatusOK {
					continue
				}
				if killed.CompareAndSwap(false, true) {
					_ = api.cmd.Process.Kill() // SIGKILL by PID, the moment the first answer is in
				}
				mu.Lock()
				answered[id] = true
				mu.Unlock()
			}
		})
	}
	for _, id := range ids[100:150] {
		if killed.Load() {
			break
		}
		work <- id
	}
	close(work)
	wg.Wait()
	require.True(t, killed.Load(), "no redact call was answered before the API kill")
	api.kill(t)
	unanswered := 0
	for _, id := range ids[100:145] {
		if sess, err := c.store.GetSession(context.Background(), c.scope, id); err == nil && sess.Redaction != nil && !answered[id] {
			unanswered++
		}
	}
	t.Logf("API SIGKILLed after its first redact answer; %d redactions were committed but never answered", unanswered)
	c.startAPI()
	for _, id := range ids[100:] {
		if !answered[id] {
			redact(id) // a repeat of a committed request answers 200 and enqueues nothing: the reconciler must
		}
	}
	require.Len(t, answered, n)
	queued := c.redactTasks()
	for _, id := range ids[145:150] {
		require.Nil(t, queued[id], "%s: the repeated redact call enqueued a task", id)
	}

	// 3. SIGKILL redis-server and restart it from its append-only file.
	before := c.pending()
	require.GreaterOrEqual(t, len(before), 40)
	c.redis.proc.kill(t)
	c.redis.start(t)
	require.Equal(t, before, c.pending(), "pending redactions changed across the Redis restart")
	eventually(t, 30*time.Second, "the API serving again after the Redis restart", func() bool {
		code, _, err := c.client.do(http.MethodGet, "/v1/identity/verification_sessions/"+ids[0], nil)
		return err == nil && code == http.StatusOK
	})

	// 4. A fresh worker; SIGKILL redis-server again while it is busy: a completion Redis acknowledged must
	// not come back as pending, and whatever was cut off mid-task must still finish.
	c.startRole("worker")
	deadline = time.Now().Add(60 * time.Second)
	for len(c.pending()) > len(before)-10 {
		require.False(t, time.Now().After(deadline), "the new worker completed fewer than 10 redactions in 60s")
		time.Sleep(2 * time.Millisecond)
	}
	atKill := c.pending()
	c.redis.proc.kill(t)
	c.redis.start(t)
	afterRestart := c.pending()
	t.Logf("redis-server SIGKILLed under a busy worker with %d of %d redactions still pending", len(afterRestart), n)
	require.Subset(t, atKill, afterRestart, "a completed redaction is pending again after the Redis restart")

	// 5. A second worker next to it. A task orphaned by the first kill comes back when asynq's lease
	// expires (about 60s after the kill).
	c.startRole("worker")
	c.waitNoPending(180 * time.Second)

	c.checkCrashOutcome(ids, answered)
}

// waitNoPending waits until identityd's pending-redaction index is empty; on timeout it shows what asynq
// knows about each session still pending.
func (c *crashCluster) waitNoPending(within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		left := c.pending()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			tasks := c.redactTasks()
			for _, id := range left {
				if info := tasks[id]; info == nil {
					c.t.Logf("still pending: %s, no redact task", id)
				} else {
					c.t.Logf("still pending: %s, task state %s, retried %d, last error %q", id, info.State, info.Retried, info.LastErr)
				}
			}
			c.t.Fatalf("%d redactions still pending after %s", len(left), within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkCrashOutcome asserts what a user sees once the dust settles: every answered redaction finished, one
// `.redacted` event and at most one `.canceled` event per session, completed audit records, scrubbed reports.
func (c *crashCluster) checkCrashOutcome(ids []string, answered map[string]bool) {
	t := c.t
	redactedEvents := map[string]int{}
	for _, ev := range c.client.listAll(t, "/v1/events", url.Values{"type": {"identity.verification_session.redacted"}}) {
		redactedEvents[str(ev, "data.object.id")]++
		require.Equal(t, "redacted", str(ev, "data.object.redaction.status"), "event %s", ev["id"])
	}
	canceledEvents := map[string]int{}
	for _, ev := range c.client.listAll(t, "/v1/events", url.Values{"type": {"identity.verification_session.canceled"}}) {
		canceledEvents[str(ev, "data.object.id")]++
	}
	require.Len(t, redactedEvents, len(ids), "sessions with a .redacted event")
	for i, id := range ids {
		require.True(t, answered[id])
		require.Equal(t, 1, redactedEvents[id], "%s: .redacted events", id)
		wantCanceled := 1
		if crashKind(i) == "verified" {
			wantCanceled = 0
		}
		require.Equal(t, wantCanceled, canceledEvents[id], "%s (%s): .canceled events", id, crashKind(i))

		sess := c.client.must(t, http.MethodGet, "/v1/identity/verification_sessions/"+id, nil)
		require.Equal(t, "redacted", str(sess, "redaction.status"), id)
		require.Empty(t, field(sess, "metadata"), id)
		require.Nil(t, field(sess, "client_secret"), id)
		rec := c.client.must(t, http.MethodGet, "/v1/identity/verification_sessions/"+id+"/redaction", nil)
		require.NotNil(t, field(rec, "completed_at"), "%s: audit record not completed: %v", id, rec)
		require.Equal(t, "request", str(rec, "requested_by.type"), id)
		if crashKind(i) == "verified" {
			require.Equal(t, "verified", sess["status"], id)
			report := c.client.must(t, http.MethodGet, "/v1/identity/verification_reports/"+str(sess, "last_verification_report"), nil)
			require.Equal(t, "[redacted]", str(report, "document.first_name"), "%s: report not scrubbed", id)
		} else {
			require.Equal(t, "canceled", sess["status"], id)
		}
	}
	for _, p := range c.g.procs {
		require.NotContains(t, p.out.String(), "panic:", p.name)
		require.NotContains(t, p.out.String(), "WARNING: DATA RACE", p.name)
	}
}
