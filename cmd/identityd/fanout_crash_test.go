package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// faultEnv is the variable a binary built with the identityd_faults tag reads to hang right before a fan-out
// (events/fault_on.go); a normal build has no code that reads it.
const faultEnv = "IDENTITYD_FAULT_HANG_BEFORE_FANOUT"

// buildFaultBinary compiles cmd/identityd with the identityd_faults tag: the same program, plus the test-only
// hook that can stop it between a commit and its fan-out.
func buildFaultBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "identityd-faults")
	args := []string{"build", "-tags", "identityd_faults", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", append(args, ".")...).CombinedOutput()
	require.NoError(t, err, "go build -tags identityd_faults: %s", out)
	return bin
}

// TestFanout_SurvivesSIGKILLBetweenCommitAndFanout kills `identityd api` after a session's creation committed
// its `.created` event and before the event was fanned out to the account's webhook endpoint. A worker started
// afterwards finds the event in the webhook outbox and delivers it: the receiver gets it exactly once, and
// /v1/events holds it once.
func TestFanout_SurvivesSIGKILLBetweenCommitAndFanout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs identityd processes; skipped with -short")
	}
	t.Parallel()
	bin := buildFaultBinary(t)
	r := storetest.New(t)
	st := r.Store(nil)
	ctx := context.Background()
	sc := store.Scope{Account: "acct_alpha"}
	g := newProcessGroup(t)

	receiver := whNewReceiver(t, nil)
	secret := events.NewSecret()
	receiver.setSecret(secret)
	ep, err := st.CreateEndpoint(ctx, sc, store.EndpointCreate{URL: receiver.URL + "/hook", EnabledEvents: []string{"*"}}, secret)
	require.NoError(t, err)

	common := []string{"--redis-url", r.URL, "--api-key", testKeyA, "--key-prefix", r.KeyPrefix,
		"--queue-prefix", r.QueuePrefix, "--log-level", "info", "--reconcile-interval", "1s",
		"--webhook-allow-private"} // the receiver listens on loopback
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	apiArgs := append([]string{"api", "--addr", addr, "--admin-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t))}, common...)
	api := g.startEnv("identityd api (hangs before fan-out)", append(cleanEnv(), faultEnv+"=1"), bin, apiArgs...)
	api.waitOutput(t, `msg="identityd started"`, 60*time.Second)

	client := newRawClient("http://"+addr, testKeyA)
	answered := make(chan error, 1)
	go func() {
		_, _, err := client.do(http.MethodPost, "/v1/identity/verification_sessions", url.Values{"type": {"document"}})
		answered <- err
	}()
	api.waitOutput(t, "hanging before their fan-out", 30*time.Second)
	require.NoError(t, api.cmd.Process.Kill(), "SIGKILL by PID") // between the commit and the fan-out
	api.kill(t)
	require.Error(t, <-answered, "the killed API never answered")

	evs, _, err := st.ListEvents(ctx, sc, store.EventFilter{}, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, evs, 1, "the commit stored the event")
	created := evs[0]
	require.Equal(t, store.EventSessionCreated, created.Type)
	_, err = st.DeliveryState(ctx, sc, created.ID, ep.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "the fan-out never ran: no delivery recorded")
	due, err := st.OutboxDue(ctx, sc, time.Now().Add(time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []string{created.ID}, due)

	// A worker (the normal build's behaviour: the variable is not set) finishes the fan-out.
	workerArgs := append([]string{"worker", "--admin-addr", fmt.Sprintf("127.0.0.1:%d", freePort(t))}, common...)
	w := g.startEnv("identityd worker", cleanEnv(), bin, workerArgs...)
	w.waitOutput(t, `msg="identityd started"`, 60*time.Second)
	eventually(t, 60*time.Second, "the event delivered", func() bool { return len(receiver.deliveries()) > 0 })
	// Let the reconciler run a few more passes (every second) after the delivery: none may send it again.
	w.waitOutput(t, "finished an interrupted webhook fan-out", 5*time.Second)
	settled := time.Now()
	eventually(t, 30*time.Second, "three more reconcile passes", func() bool { return time.Since(settled) > 3*time.Second })

	got := receiver.deliveries()
	require.Len(t, got, 1, "delivered exactly once")
	require.Equal(t, created.ID, got[0].event.ID)
	require.Equal(t, http.StatusOK, got[0].status)
	state, err := st.DeliveryState(ctx, sc, created.ID, ep.ID)
	require.NoError(t, err)
	require.Equal(t, store.DeliveryDelivered, state)
	after, _, err := st.ListEvents(ctx, sc, store.EventFilter{}, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, after, 1, "no event emitted twice")
	require.Equal(t, 0, after[0].PendingWebhooks)
	due, err = st.OutboxDue(ctx, sc, time.Now().Add(time.Hour), 10)
	require.NoError(t, err)
	require.Empty(t, due)
	for _, p := range g.procs {
		require.NotContains(t, p.out.String(), "panic:", p.name)
	}
	_ = os.Remove(bin)
}
