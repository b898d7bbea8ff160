package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// A redaction that exhausted its retries is listed on the admin listener and counted in a gauge until it
// completes (failures are visible and durable).
func TestAdmin_FailedRedactionsAreListedUntilTheyComplete(t *testing.T) {
	t.Parallel()
	r := storetest.New(t)
	d := startDaemon(t, r, "api", "--admin-password", "s3cret") // no worker: the redaction stays pending
	ctx := context.Background()
	sc := d.client(testKeyA)
	vs, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
	require.NoError(t, err)
	_, err = sc.V1IdentityVerificationSessions.Redact(ctx, vs.ID, nil)
	require.NoError(t, err)

	st := r.Store(nil)
	scope := store.Scope{Account: "acct_alpha"}
	first, err := st.RecordRedactionFailure(ctx, scope, vs.ID, "task archived after 12 retries: redis: connection refused")
	require.NoError(t, err)
	require.True(t, first)

	admin := "http://" + d.main.AdminAddr
	get := func(path string, auth bool) (int, string) {
		req, err := http.NewRequest(http.MethodGet, admin+path, nil)
		require.NoError(t, err)
		if auth {
			req.SetBasicAuth("admin", "s3cret")
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	status, _ := get(pathFailedRedactions, false)
	require.Equal(t, http.StatusUnauthorized, status, "ids of failed redactions are behind the admin password")

	status, body := get(pathFailedRedactions, true)
	require.Equal(t, http.StatusOK, status, body)
	var list struct {
		Total int                     `json:"total"`
		Data  []store.FailedRedaction `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	require.Equal(t, 1, list.Total)
	require.Equal(t, vs.ID, list.Data[0].VerificationSession)
	require.Equal(t, "acct_alpha", list.Data[0].Account)

	_, metrics := get(pathMetrics, false)
	require.Contains(t, metrics, "identityd_redactions_failed_unresolved 1\n")

	// The redaction then completes (a worker runs the scrub): the record is cleared.
	_, err = st.CompleteRedaction(ctx, scope, vs.ID)
	require.NoError(t, err)
	_, body = get(pathFailedRedactions, true)
	require.Contains(t, body, `"total":0`, body)
}
