package main

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
	"github.com/identityd/identityd/worker"
)

// startWorker runs `identityd worker` as a child process on the test's Redis namespace.
func startWorker(t *testing.T, bin string, r *storetest.Redis) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "worker", "--redis-url", r.URL, "--key-prefix", r.KeyPrefix, "--queue-prefix", r.QueuePrefix,
		"--admin-addr", "127.0.0.1:0", "--concurrency", "4", "--log-level", "warn", "--reconcile-interval", "1s",
		// Webhook receivers listen on loopback; 8 delivery workers give an account 4 attempts in flight.
		"--webhook-allow-private", "--webhook-concurrency", "8")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("worker %d output:\n%s", cmd.Process.Pid, logs.String())
		}
	})
	return cmd
}

// TestBulkRedaction_SurvivesWorkerSIGKILL kills the worker process in the middle of a bulk job's walk. A new
// worker picks the walk task up once asynq finds its lease expired (about a minute), resumes from the saved
// cursor, and the job ends with exact counts and one `.redacted` event per session.
func TestBulkRedaction_SurvivesWorkerSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("waits about a minute for asynq to recover the killed worker's task")
	}
	t.Parallel()
	bin := buildBinary(t)
	r := storetest.New(t)
	st := r.Store(nil)
	sc := store.Scope{Account: "acct_alpha"}
	ctx := context.Background()
	const n = 6000
	ref := "cust-kill"
	for range n {
		_, _, err := st.CreateSession(ctx, sc, store.SessionCreate{Type: "document", ClientReferenceID: &ref,
			Metadata: map[string]string{"name": "Jane Roe"}}, store.Origin{})
		require.NoError(t, err)
	}
	job, err := st.CreateBulkRedaction(ctx, sc, store.BulkFilter{ClientReferenceID: ref}, false)
	require.NoError(t, err)
	client := &worker.Client{Asynq: asynq.NewClientFromRedisClient(r.Client), Queues: worker.NewQueues(r.QueuePrefix)}
	require.NoError(t, client.EnqueueBulkRedaction(ctx, sc, job.ID))

	first := startWorker(t, bin, r)
	eventually(t, 60*time.Second, "the walk to start", func() bool {
		job, err = st.GetBulkRedaction(ctx, sc, job.ID)
		require.NoError(t, err)
		return job.Matched > 0
	})
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait()
	mid, err := st.GetBulkRedaction(ctx, sc, job.ID)
	require.NoError(t, err)
	require.Less(t, mid.Matched, int64(n), "the kill must land mid-walk; raise n if the walk got faster")
	require.Equal(t, mid.Matched, mid.Requested, "committed pages are counted whole")

	startWorker(t, bin, r)
	eventually(t, 150*time.Second, "the job to complete", func() bool {
		job, err = st.GetBulkRedaction(ctx, sc, job.ID)
		require.NoError(t, err)
		return job.Done()
	})
	require.Equal(t, store.BulkCompleted, job.Status)
	require.Equal(t, int64(n), job.Matched)
	require.Equal(t, int64(n), job.Requested)
	require.Equal(t, int64(n), job.Redacted)
	require.Zero(t, job.Failed)

	perSession := map[string]int{}
	page := store.Page{Limit: 100}
	for {
		evs, more, err := st.ListEvents(ctx, sc, store.EventFilter{Types: []string{store.EventSessionRedacted}}, page)
		require.NoError(t, err)
		for _, ev := range evs {
			perSession[ev.ObjectID()]++
		}
		if !more {
			break
		}
		page.StartingAfter = evs[len(evs)-1].ID
	}
	require.Len(t, perSession, n)
	for id, count := range perSession {
		require.Equal(t, 1, count, id)
	}
}
