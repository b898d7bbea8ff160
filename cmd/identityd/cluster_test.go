package main

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// The cluster suite runs the daemon with --redis-cluster on a real 3-master Redis Cluster (.ci/run starts
// it and sets TEST_REDIS_CLUSTER_ADDRS). A store or queue command that spans hash slots fails there with
// CROSSSLOT, so these tests prove that every multi-key operation stays in one account's slot.

// requireNoCrossSlot fails when the daemon logged a cross-slot error anywhere (in a worker, say, where the
// API call itself would not show it).
func requireNoCrossSlot(t *testing.T, d *daemon) {
	t.Helper()
	for _, bad := range []string{"CROSSSLOT", "MOVED", "ASK "} {
		require.NotContains(t, d.logs.String(), bad)
	}
}

func TestCluster_Lifecycle(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.NewCluster(t), "serve")
	sc := d.client(testKeyA)
	ctx := context.Background()

	var ids []string
	for i := range 5 {
		p := &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document"),
			ClientReferenceID: stripe.String("cluster-user")}
		p.AddMetadata("n", string(rune('a'+i)))
		vs, err := sc.V1IdentityVerificationSessions.Create(ctx, p)
		require.NoError(t, err)
		require.Equal(t, stripe.IdentityVerificationSessionStatusRequiresInput, vs.Status)
		ids = append(ids, vs.ID)
	}

	// Newest first, across pages.
	lp := &stripe.IdentityVerificationSessionListParams{ClientReferenceID: stripe.String("cluster-user")}
	lp.Limit = stripe.Int64(2)
	var listed []string
	for s, err := range sc.V1IdentityVerificationSessions.List(ctx, lp).All(ctx) {
		require.NoError(t, err)
		listed = append(listed, s.ID)
	}
	require.Len(t, listed, 5)
	require.ElementsMatch(t, ids, listed)

	// Submit → verified (the verify task runs on the cluster, too).
	status := postForm(t, d, testKeyA, "/v1/test_helpers/identity/verification_sessions/"+ids[0]+"/submit",
		url.Values{"verified_outputs[first_name]": {"Jenny"}}, nil)
	require.Equal(t, http.StatusOK, status)
	eventually(t, 30*time.Second, "verified", func() bool {
		got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, ids[0], nil)
		require.NoError(t, err)
		return got.Status == stripe.IdentityVerificationSessionStatusVerified
	})
	reports := sc.V1IdentityVerificationReports.List(ctx, &stripe.IdentityVerificationReportListParams{VerificationSession: stripe.String(ids[0])})
	n := 0
	for _, err := range reports.All(ctx) {
		require.NoError(t, err)
		n++
	}
	require.Equal(t, 1, n)

	// Cancel, update, and a status-filtered list.
	canceled, err := sc.V1IdentityVerificationSessions.Cancel(ctx, ids[1], nil)
	require.NoError(t, err)
	require.Equal(t, stripe.IdentityVerificationSessionStatusCanceled, canceled.Status)
	up := &stripe.IdentityVerificationSessionUpdateParams{}
	up.AddMetadata("n", "updated")
	updated, err := sc.V1IdentityVerificationSessions.Update(ctx, ids[2], up)
	require.NoError(t, err)
	require.Equal(t, "updated", updated.Metadata["n"])
	fp := &stripe.IdentityVerificationSessionListParams{Status: stripe.String("canceled")}
	var canceledIDs []string
	for s, err := range sc.V1IdentityVerificationSessions.List(ctx, fp).All(ctx) {
		require.NoError(t, err)
		canceledIDs = append(canceledIDs, s.ID)
	}
	require.Equal(t, []string{ids[1]}, canceledIDs)

	// Idempotent replay reads and writes the same slot.
	p := &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("id_number")}
	p.SetIdempotencyKey("cluster-idem-1")
	first, err := sc.V1IdentityVerificationSessions.Create(ctx, p)
	require.NoError(t, err)
	again, err := sc.V1IdentityVerificationSessions.Create(ctx, p)
	require.NoError(t, err)
	require.Equal(t, first.ID, again.ID)

	// Another account lives in another slot and sees nothing of this one.
	_, err = d.client(testKeyB).V1IdentityVerificationSessions.Retrieve(ctx, ids[0], nil)
	require.Error(t, err)
	requireNoCrossSlot(t, d)
}

func TestCluster_Redaction(t *testing.T) {
	t.Parallel()
	r := storetest.NewCluster(t)
	// A separate API and worker, as in production, both on the cluster.
	api := startDaemon(t, r, "api")
	wrk := startDaemon(t, r, "worker")
	sc := api.client(testKeyA)
	ctx := context.Background()

	p := &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document"),
		ClientReferenceID: stripe.String("cluster-redact"),
		ProvidedDetails:   &stripe.IdentityVerificationSessionCreateProvidedDetailsParams{Email: stripe.String("jenny@example.com")}}
	p.AddMetadata("order", "42")
	vs, err := sc.V1IdentityVerificationSessions.Create(ctx, p)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, postForm(t, api, testKeyA, "/v1/test_helpers/identity/verification_sessions/"+vs.ID+"/submit",
		url.Values{"verified_outputs[first_name]": {"Jenny"}, "verified_outputs[email]": {"jenny@example.com"}}, nil))
	eventually(t, 30*time.Second, "verified", func() bool {
		got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, vs.ID, nil)
		require.NoError(t, err)
		return got.Status == stripe.IdentityVerificationSessionStatusVerified
	})

	redacting, err := sc.V1IdentityVerificationSessions.Redact(ctx, vs.ID, nil)
	require.NoError(t, err)
	require.Equal(t, stripe.IdentityVerificationSessionRedactionStatusProcessing, redacting.Redaction.Status)
	eventually(t, 30*time.Second, "redacted", func() bool {
		got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, vs.ID, nil)
		require.NoError(t, err)
		return got.Redaction.Status == stripe.IdentityVerificationSessionRedactionStatusRedacted
	})
	rp := &stripe.IdentityVerificationSessionRetrieveParams{}
	rp.AddExpand("verified_outputs")
	got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, vs.ID, rp)
	require.NoError(t, err)
	require.Empty(t, got.Metadata)
	require.NotNil(t, got.VerifiedOutputs)
	require.Equal(t, "cluster-redact", got.ClientReferenceID, "kept: not personal data")
	require.Equal(t, "[redacted]", got.VerifiedOutputs.FirstName)

	ep := &stripe.EventListParams{Type: stripe.String("identity.verification_session.redacted")}
	redactedEvents := 0
	for ev, err := range sc.V1Events.List(ctx, ep).All(ctx) {
		require.NoError(t, err)
		if strings.Contains(string(ev.Data.Raw), vs.ID) {
			redactedEvents++
		}
	}
	require.Equal(t, 1, redactedEvents, "exactly one redacted event")

	// Nothing personal is left on any master of the cluster.
	all, err := storetest.ScanAll(ctx, r.Client)
	require.NoError(t, err)
	for key, content := range all {
		if strings.HasPrefix(key, r.KeyPrefix+":") {
			require.NotContains(t, content, "jenny@example.com", key)
			require.NotContains(t, content, "Jenny", key)
		}
	}
	requireNoCrossSlot(t, api)
	requireNoCrossSlot(t, wrk)
}

// TestCluster_ListPages: an unexpanded list reads each stretch of an index and the sessions it names in one
// script that builds the session keys itself (store.ListSessionsJSON). On the cluster those keys must hash to the
// index's slot; this walks filtered pages both ways, refills included (a filter checked on the loaded
// sessions, session documents gone), and compares them with List's separate range read and MGET.
func TestCluster_ListPages(t *testing.T) {
	t.Parallel()
	r := storetest.NewCluster(t)
	st := r.Store(storetest.NewFakeClock(time.Unix(1_700_000_000, 0)))
	ctx := context.Background()
	sc := store.Scope{Account: "acct_cluster_list"}
	var created []string
	for i := range 24 {
		ref := []string{"a", "b"}[i%2]
		sess, _, err := st.CreateSession(ctx, sc, store.SessionCreate{Type: "document", ClientReferenceID: &ref}, store.Origin{})
		require.NoError(t, err)
		if i%3 == 0 {
			_, _, err := st.CancelSession(ctx, sc, sess.ID, store.Origin{})
			require.NoError(t, err)
		}
		created = append(created, sess.ID)
	}
	page := func(f store.SessionFilter, p store.Page, viaScript bool) ([]string, bool) {
		var ids []string
		if viaScript {
			got, more, err := st.ListSessionsJSON(ctx, sc, f, p)
			require.NoError(t, err)
			for _, s := range got {
				ids = append(ids, s.ID)
			}
			return ids, more
		}
		got, more, err := st.ListSessions(ctx, sc, f, p)
		require.NoError(t, err)
		for _, s := range got {
			ids = append(ids, s.ID)
		}
		return ids, more
	}
	// walk pages from p to the end in its direction and returns every page's ids.
	walk := func(f store.SessionFilter, p store.Page, viaScript bool) [][]string {
		var pages [][]string
		for {
			ids, more := page(f, p, viaScript)
			pages = append(pages, ids)
			if !more {
				return pages
			}
			if p.EndingBefore != "" {
				p.EndingBefore = ids[0]
			} else {
				p.StartingAfter = ids[len(ids)-1]
			}
		}
	}
	check := func() {
		all := walk(store.SessionFilter{}, store.Page{Limit: 100}, false)[0]
		oldest := all[len(all)-1]
		for _, f := range []store.SessionFilter{{}, {Status: store.StatusCanceled},
			{ClientReferenceID: "a", Status: store.StatusRequiresInput}} {
			for _, limit := range []int{1, 3, 5} {
				want := walk(f, store.Page{Limit: limit}, false)
				require.Greater(t, len(want), 1, "%+v limit %d: more than one page", f, limit)
				require.Equal(t, want, walk(f, store.Page{Limit: limit}, true), "%+v limit %d", f, limit)
				back := store.Page{Limit: limit, EndingBefore: oldest}
				require.Equal(t, walk(f, back, false), walk(f, back, true), "%+v limit %d backward", f, limit)
			}
		}
	}
	check()
	for _, id := range created[4:10] {
		require.NoError(t, r.Client.Del(ctx, r.KeyPrefix+":{"+sc.Account+"}:test:vs:"+id).Err())
	}
	check()
}

// The cluster CI starts requires a password and TLS: without either the daemon does not start, and its error
// names --redis-cluster. (With both it serves: the other cluster tests.)
func TestCluster_PasswordAndTLSAreRequired(t *testing.T) {
	t.Parallel()
	r := storetest.NewCluster(t)
	if r.ClusterPassword == "" || r.ClusterCAFile == "" {
		t.Skip("this cluster asks for no password or no TLS")
	}
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"NoPassword", []string{"--redis-cluster-ca-file", r.ClusterCAFile}},
		{"WrongPassword", []string{"--redis-cluster-password", "wrong", "--redis-cluster-ca-file", r.ClusterCAFile}},
		{"NoTLS", []string{"--redis-cluster-password", r.ClusterPassword}},
		{"UnknownCA", []string{"--redis-cluster-password", r.ClusterPassword, "--redis-cluster-tls"}},
	} {
		m := NewMain(&bytes.Buffer{}, &bytes.Buffer{})
		args := append([]string{"worker", "--admin-addr", "127.0.0.1:0", "--redis-cluster", strings.Join(r.ClusterAddrs, ","),
			"--key-prefix", r.KeyPrefix, "--queue-prefix", r.QueuePrefix, "--log-level", "error"}, tc.flags...)
		require.NoError(t, m.ParseFlags(args), tc.name)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := m.Run(ctx)
		cancel()
		require.Error(t, err, tc.name)
		require.Contains(t, err.Error(), "--redis-cluster", tc.name)
		require.NoError(t, m.Close(), tc.name)
	}
}
