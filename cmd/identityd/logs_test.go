package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store/storetest"
	"github.com/identityd/identityd/worker"
)

// postForm sends a form POST with key to the daemon's API and returns the status.
func postForm(t *testing.T, d *daemon, spec, path string, form url.Values, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.url()+path, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+secretOf(spec))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestLogs_NoPersonalDataNoSecrets plants canary values in every place personal data or secrets can enter
// (parameters, metadata, submitted outputs, idempotency keys, rejected input, the API key, the admin password)
// and greps the captured debug logs for them; it also checks the one-line-per-request and per-task shape.
func TestLogs_NoPersonalDataNoSecrets(t *testing.T) {
	t.Parallel()
	const password = "canary-admin-password-71"
	d := startDaemon(t, storetest.New(t), "serve", "--log-level", "debug", "--log-format", "json", "--admin-password", password)
	canaries := []string{
		"canary-ref-11", "canary-meta-12", "canary-first-13", "canary-last-14", "canary15@example.com", "+15550001516",
		"canary-idnum-17", "canary-street-18", "canary-idem-19", "canary-unknown-20", "canary-doc-21",
		"canary-return-22", secretOf(testKeyA), password,
	}

	sc := d.client(testKeyA)
	ctx := context.Background()
	params := &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document"),
		ClientReferenceID: stripe.String("canary-ref-11"), ReturnURL: stripe.String("https://shop.example/canary-return-22"),
		ProvidedDetails: &stripe.IdentityVerificationSessionCreateProvidedDetailsParams{
			Email: stripe.String("canary15@example.com"), Phone: stripe.String("+15550001516")}}
	params.AddMetadata("note", "canary-meta-12")
	params.SetIdempotencyKey("canary-idem-19")
	vs, err := sc.V1IdentityVerificationSessions.Create(ctx, params)
	require.NoError(t, err)
	requests := 1

	bad := &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")}
	bad.AddExtra("canary-unknown-20", "canary-unknown-20")
	_, err = sc.V1IdentityVerificationSessions.Create(ctx, bad)
	require.Error(t, err)
	requests++

	submit := url.Values{
		"verified_outputs[first_name]":           {"canary-first-13"},
		"verified_outputs[last_name]":            {"canary-last-14"},
		"verified_outputs[email]":                {"canary15@example.com"},
		"verified_outputs[phone]":                {"+15550001516"},
		"verified_outputs[id_number]":            {"canary-idnum-17"},
		"verified_outputs[address][line1]":       {"canary-street-18"},
		"document[number]":                       {"canary-doc-21"},
		"verified_outputs[dob][day]":             {"2"},
		"verified_outputs[dob][month]":           {"3"},
		"verified_outputs[dob][year]":            {"1990"},
		"verified_outputs[id_number_type]":       {"us_ssn"},
		"verified_outputs[address][country]":     {"US"},
		"verified_outputs[address][postal_code]": {"94107"},
	}
	require.Equal(t, http.StatusOK, postForm(t, d, testKeyA, "/v1/test_helpers/identity/verification_sessions/"+vs.ID+"/submit", submit, nil))
	requests++
	eventually(t, 30*time.Second, "verified", func() bool {
		got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, vs.ID, nil)
		require.NoError(t, err)
		requests++
		return got.Status == stripe.IdentityVerificationSessionStatusVerified
	})
	_, err = sc.V1IdentityVerificationSessions.Redact(ctx, vs.ID, nil)
	require.NoError(t, err)
	requests++
	eventually(t, 30*time.Second, "redacted", func() bool {
		got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, vs.ID, nil)
		require.NoError(t, err)
		requests++
		return got.Redaction.Status == stripe.IdentityVerificationSessionRedactionStatusRedacted
	})
	// The admin listener sees the password, too. (redis_info, not the queue list: the queue list reads every
	// queue in the database, and tests sharing a real Redis database come and go with theirs.)
	status, _ := get(t, http.MethodGet, d.adminURL("/dashboard/api/redis_info"), "admin", password)
	require.Equal(t, http.StatusOK, status)
	status, _ = get(t, http.MethodGet, d.adminURL("/dashboard/api/redis_info"), "admin", password+"-wrong")
	require.Equal(t, http.StatusUnauthorized, status)

	d.stop() // flush: every line the process wrote is in the buffer
	logs := d.logs.String()
	for line := range strings.SplitSeq(logs, "\n") {
		for _, c := range canaries {
			if strings.Contains(line, c) {
				t.Fatalf("a log line carries the planted value %q:\n%s", c, line)
			}
		}
	}

	var requestLines, redactTasks, verifyTasks int
	sc2 := bufio.NewScanner(strings.NewReader(logs))
	sc2.Buffer(make([]byte, 1<<20), 1<<20)
	for sc2.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(sc2.Bytes(), &line), "structured (JSON) line: %s", sc2.Text())
		switch line["msg"] {
		case "request":
			requestLines++
			for _, k := range []string{"request_id", "method", "route", "status", "duration_ms", "account"} {
				require.Contains(t, line, k, sc2.Text())
			}
			if line["status"] != float64(http.StatusUnauthorized) {
				require.Equal(t, "acct_alpha", line["account"], sc2.Text())
			}
		case "task":
			for _, k := range []string{"type", "task_id", "outcome", "duration_ms"} {
				require.Contains(t, line, k, sc2.Text())
			}
			switch line["type"] {
			case worker.TypeRedactSession:
				redactTasks++
				require.Equal(t, "acct_alpha", line["account"], sc2.Text())
				require.Equal(t, vs.ID, line["session_id"], sc2.Text())
			case worker.TypeVerifySession:
				verifyTasks++
				require.Equal(t, "acct_alpha", line["account"], sc2.Text())
				require.Equal(t, vs.ID, line["session_id"], sc2.Text())
				require.Contains(t, line, "submission_id")
			}
		}
	}
	require.Equal(t, requests, requestLines, "one line per request")
	require.Equal(t, 1, redactTasks, "one line per task")
	require.GreaterOrEqual(t, verifyTasks, 1)
}
