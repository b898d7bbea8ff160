package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

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
	require.Equal(t, "cluster-redact", got.ClientReferenceID, "kept (DESIGN §5)")
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
