package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// api sends a raw API request with key (a spec from harness_test.go) and decodes the JSON answer.
func (d *daemon) api(t *testing.T, spec, method, path string, form url.Values) (int, map[string]any) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, d.url()+path, body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+secretOf(spec))
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

// createSessions makes n sessions with the given client_reference_id through stripe-go.
func createRefSessions(t *testing.T, sc *stripe.Client, n int, ref string) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		p := &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document"), ClientReferenceID: stripe.String(ref)}
		p.AddMetadata("email", "jane.roe@example.com")
		vs, err := sc.V1IdentityVerificationSessions.Create(context.Background(), p)
		require.NoError(t, err)
		ids[i] = vs.ID
	}
	return ids
}

func (d *daemon) waitBulk(t *testing.T, spec, id string) map[string]any {
	t.Helper()
	var job map[string]any
	eventually(t, 30*time.Second, "bulk redaction "+id+" done", func() bool {
		code, body := d.api(t, spec, http.MethodGet, "/v1/identity/bulk_redactions/"+id, nil)
		require.Equal(t, http.StatusOK, code, body)
		job = body
		return job["status"] == store.BulkCompleted || job["status"] == store.BulkFailed
	})
	return job
}

func counts(job map[string]any) map[string]any {
	return map[string]any{"matched": job["matched"], "requested": job["requested"], "skipped": job["skipped"]}
}

func TestBulkRedactionAPI_DryRunThenRealRun(t *testing.T) {
	t.Parallel()
	// A long retention period: the sweep is scheduled but finds nothing old enough.
	d := startDaemon(t, storetest.New(t), "serve", "--retention", "720h")
	sc := d.client(testKeyA)
	ctx := context.Background()
	alpha := createRefSessions(t, sc, 150, "cust-alpha")
	beta := createRefSessions(t, sc, 20, "cust-beta")

	code, dry := d.api(t, testKeyA, http.MethodPost, "/v1/identity/bulk_redactions",
		url.Values{"client_reference_id": {"cust-alpha"}, "dry_run": {"true"}})
	require.Equal(t, http.StatusOK, code, dry)
	require.Equal(t, "identity.bulk_redaction", dry["object"])
	require.Equal(t, true, dry["dry_run"])
	require.Equal(t, map[string]any{"client_reference_id": "cust-alpha"}, dry["filter"])
	dry = d.waitBulk(t, testKeyA, dry["id"].(string))
	require.Equal(t, store.BulkCompleted, dry["status"])
	require.EqualValues(t, 150, dry["matched"])
	require.EqualValues(t, 150, dry["requested"])
	require.EqualValues(t, 0, dry["redacted"])
	for _, id := range append(append([]string{}, alpha...), beta...) {
		vs, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, id, nil)
		require.NoError(t, err)
		require.Nil(t, vs.Redaction, "a dry run changes nothing")
	}

	code, job := d.api(t, testKeyA, http.MethodPost, "/v1/identity/bulk_redactions",
		url.Values{"client_reference_id": {"cust-alpha"}, "dry_run": {"false"}})
	require.Equal(t, http.StatusOK, code, job)
	require.Contains(t, []any{store.BulkQueued, store.BulkRunning}, job["status"])
	job = d.waitBulk(t, testKeyA, job["id"].(string))
	require.Equal(t, store.BulkCompleted, job["status"])
	require.Equal(t, counts(dry), counts(job), "the dry run reported what the real run did")
	require.EqualValues(t, 150, job["redacted"])
	require.NotNil(t, job["completed_at"])

	for _, id := range alpha {
		vs, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, id, nil)
		require.NoError(t, err)
		require.Equal(t, stripe.IdentityVerificationSessionRedactionStatusRedacted, vs.Redaction.Status)
		require.Empty(t, vs.Metadata)
	}
	for _, id := range beta {
		vs, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, id, nil)
		require.NoError(t, err)
		require.Nil(t, vs.Redaction)
		require.Equal(t, "jane.roe@example.com", vs.Metadata["email"])
	}
	code, rec := d.api(t, testKeyA, http.MethodGet, "/v1/identity/verification_sessions/"+alpha[0]+"/redaction", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, map[string]any{"type": "bulk_redaction", "id": job["id"]}, rec["requested_by"])

	code, list := d.api(t, testKeyA, http.MethodGet, "/v1/identity/bulk_redactions?limit=1", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, true, list["has_more"])
	require.Equal(t, job["id"], list["data"].([]any)[0].(map[string]any)["id"])
	code, list = d.api(t, testKeyA, http.MethodGet, "/v1/identity/bulk_redactions?limit=5&starting_after="+job["id"].(string), nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, false, list["has_more"])
	require.Len(t, list["data"], 1)

	code, _ = d.api(t, testKeyB, http.MethodGet, "/v1/identity/bulk_redactions/"+job["id"].(string), nil)
	require.Equal(t, http.StatusNotFound, code, "another account's job is not found")
}

func TestBulkRedactionAPI_RejectsBadInput(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve")
	for _, tc := range []struct {
		name  string
		form  url.Values
		code  string
		param string
	}{
		{"NoFilter", url.Values{"dry_run": {"true"}}, "parameter_missing", ""},
		{"UnknownParameter", url.Values{"status": {"verified"}, "colour": {"red"}}, "parameter_unknown", "colour"},
		{"BadStatus", url.Values{"status": {"redacted"}}, "parameter_invalid", "status"},
		{"BadCreated", url.Values{"created[lt]": {"soon"}}, "parameter_invalid_integer", "created[lt]"},
		{"BadDryRun", url.Values{"status": {"verified"}, "dry_run": {"maybe"}}, "parameter_invalid", "dry_run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := d.api(t, testKeyA, http.MethodPost, "/v1/identity/bulk_redactions", tc.form)
			require.Equal(t, http.StatusBadRequest, code)
			e := body["error"].(map[string]any)
			require.Equal(t, tc.code, e["code"])
			if tc.param != "" {
				require.Equal(t, tc.param, e["param"])
			}
		})
	}
	code, list := d.api(t, testKeyA, http.MethodGet, "/v1/identity/bulk_redactions", nil)
	require.Equal(t, http.StatusOK, code)
	require.Empty(t, list["data"], "a rejected request creates nothing")
	code, body := d.api(t, testKeyA, http.MethodGet, "/v1/identity/bulk_redactions/br_missing", nil)
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, "resource_missing", body["error"].(map[string]any)["code"])
}

// runCLI runs `identityd redact args…` with its output on a pipe (not a terminal) and returns the exit code.
func runCLI(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"redact"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if exit, ok := errors.AsType[*exec.ExitError](err); ok {
		return out.String(), errOut.String(), exit.ExitCode()
	}
	require.NoError(t, err)
	return out.String(), errOut.String(), 0
}

func TestRedactCLI(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	d := startDaemon(t, storetest.New(t), "serve")
	sc := d.client(testKeyA)
	target := createRefSessions(t, sc, 12, "cust-cli")
	other := createRefSessions(t, sc, 3, "cust-keep")
	key := secretOf(testKeyA)

	t.Run("DryRun", func(t *testing.T) {
		out, errOut, code := runCLI(t, bin, nil, "--api-url", d.url(), "--api-key", key, "--client-reference-id", "cust-cli",
			"--dry-run", "--poll-interval", "50ms")
		require.Equal(t, 0, code, errOut)
		require.Regexp(t, `(?m)^dry run br_\w+ started \(filter client_reference_id=cust-cli\)$`, out)
		require.Regexp(t, `(?m)^  would request\s+12$`, out)
		require.NotContains(t, out, "\r", "no progress bar when stdout is not a terminal")
		require.NotContains(t, out, "\033")
		vs, err := sc.V1IdentityVerificationSessions.Retrieve(context.Background(), target[0], nil)
		require.NoError(t, err)
		require.Nil(t, vs.Redaction)
	})
	t.Run("BadFlag", func(t *testing.T) {
		_, errOut, code := runCLI(t, bin, nil, "--api-url", d.url(), "--api-key", key, "--status", "redacted")
		require.Equal(t, 2, code)
		require.Contains(t, errOut, `invalid --status "redacted"`)
		_, errOut, code = runCLI(t, bin, nil, "--api-url", d.url(), "--api-key", key)
		require.Equal(t, 2, code)
		require.Contains(t, errOut, "no filter")
		_, errOut, code = runCLI(t, bin, nil, "--api-url", d.url(), "--api-key", key, "--created-gte", "yesterday")
		require.Equal(t, 2, code)
		require.Contains(t, errOut, "--created-gte")
	})
	t.Run("WrongKey", func(t *testing.T) {
		_, errOut, code := runCLI(t, bin, nil, "--api-url", d.url(), "--api-key", "sk_test_wrong", "--client-reference-id", "cust-cli")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "HTTP 401")
	})
	t.Run("Redact", func(t *testing.T) {
		// The key comes from the environment; the created range is given in RFC 3339.
		out, errOut, code := runCLI(t, bin, []string{"IDENTITYD_API_KEY=" + key}, "--api-url", d.url(),
			"--client-reference-id", "cust-cli", "--created-gte", "2001-01-01T00:00:00Z", "--poll-interval", "50ms")
		require.Equal(t, 0, code, errOut)
		require.Regexp(t, `(?m)^br_\w+ (queued|running) matched=\d+ requested=\d+ redacted=\d+ `, out, "progress lines")
		require.Regexp(t, `(?m)^br_\w+ completed\n  matched\s+12\n  requested\s+12\n  redacted\s+12\n  failed\s+0\n`, out)
		for _, id := range target {
			vs, err := sc.V1IdentityVerificationSessions.Retrieve(context.Background(), id, nil)
			require.NoError(t, err)
			require.Equal(t, stripe.IdentityVerificationSessionRedactionStatusRedacted, vs.Redaction.Status)
		}
		vs, err := sc.V1IdentityVerificationSessions.Retrieve(context.Background(), other[0], nil)
		require.NoError(t, err)
		require.Nil(t, vs.Redaction)
	})
}
