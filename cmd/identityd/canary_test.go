package main

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// canaries hands out unique random values and remembers what each one was planted as.
type canaries map[string]string

// new returns a fresh canary for the named field. Canaries are base62 only, so no encoding (form, JSON,
// protobuf) can disguise them.
func (c canaries) new(field string) string {
	v := "cnry" + store.RandomString(20)
	c[v] = field
	return v
}

// email returns an address made of two canaries.
func (c canaries) email(field string) string {
	return c.new(field+" (local part)") + "@" + c.new(field+" (domain)") + ".example"
}

// findIn reports, per canary, the keys whose contents hold it.
func (c canaries) findIn(dump map[string]string) map[string][]string {
	found := map[string][]string{}
	for key, contents := range dump {
		for v := range c {
			if strings.Contains(contents, v) {
				found[v] = append(found[v], key)
			}
		}
	}
	return found
}

// submission fills every personal field of a test-mode submission with canaries.
func (c canaries) submission(n string) url.Values {
	v := url.Values{}
	for _, f := range []string{"first_name", "last_name", "phone", "id_number", "unparsed_place_of_birth"} {
		v.Set("verified_outputs["+f+"]", c.new(n+" verified_outputs."+f))
	}
	v.Set("verified_outputs[email]", c.email(n+" verified_outputs.email"))
	for _, f := range []string{"line1", "line2", "city", "state", "postal_code", "country"} {
		v.Set("verified_outputs[address]["+f+"]", c.new(n+" verified_outputs.address."+f))
	}
	v.Set("verified_outputs[id_number_type]", "us_ssn")
	v.Set("verified_outputs[sex]", "male")
	v.Set("verified_outputs[dob][day]", "7")
	v.Set("verified_outputs[dob][month]", "3")
	v.Set("verified_outputs[dob][year]", "1990")
	v.Set("document[type]", "id_card")
	v.Set("document[number]", c.new(n+" document.number"))
	v.Set("document[issuing_country]", c.new(n+" document.issuing_country"))
	v.Set("document[expiration_date][day]", "1")
	v.Set("document[expiration_date][month]", "1")
	v.Set("document[expiration_date][year]", "2033")
	v["document[files][]"] = []string{c.new(n + " document.files[0]"), c.new(n + " document.files[1]")}
	return v
}

// TestRedaction_CanaryScan is the privacy test: personal values planted through every path the API offers
// must be gone from every key of the Redis database (asynq's included) once the redaction completed.
// TestRedaction_CanaryScan plants unique values in every personal field, redacts, and scans every key of the
// Redis database for them — once through the single redact call, once through a bulk job (the batched scrub path).
func TestRedaction_CanaryScan(t *testing.T) {
	t.Parallel()
	t.Run("SingleRedact", func(t *testing.T) {
		t.Parallel()
		canaryScan(t, func(t *testing.T, api *formClient, id string) {
			redact := api.post(t, "/v1/identity/verification_sessions/"+id+"/redact", nil, "Idempotency-Key", "canary-redact-"+store.RandomString(8))
			require.Equal(t, http.StatusOK, redact.Status, redact.Raw)
			require.Equal(t, "processing", jsonStr(redact.Body, "redaction.status"))
		})
	})
	t.Run("BulkRedaction", func(t *testing.T) {
		t.Parallel()
		canaryScan(t, func(t *testing.T, api *formClient, _ string) {
			job := api.post(t, "/v1/identity/bulk_redactions", url.Values{"client_reference_id": {"canary-order"}})
			require.Equal(t, http.StatusOK, job.Status, job.Raw)
			eventually(t, pollWithin, "bulk job completed", func() bool {
				got := api.get(t, "/v1/identity/bulk_redactions/"+jsonStr(job.Body, "id"), nil)
				return jsonStr(got.Body, "status") == "completed"
			})
		})
	})
}

func canaryScan(t *testing.T, redactWith func(t *testing.T, api *formClient, id string)) {
	r := storetest.New(t)
	d := startDaemon(t, r, "serve", "--verification-delay", "0s")
	api := d.form(testKeyA)
	c := canaries{}
	ok := func(res *apiResponse) *apiResponse {
		t.Helper()
		require.Equal(t, http.StatusOK, res.Status, res.Raw)
		return res
	}

	// Create with an Idempotency-Key and replay it: the cached response holds the canaries.
	create := url.Values{
		"type":                                       {"document"},
		"client_reference_id":                        {"canary-order"},
		"provided_details[email]":                    {c.email("provided_details.email")},
		"provided_details[phone]":                    {c.new("provided_details.phone")},
		"options[document][require_id_number]":       {"true"},
		"options[document][require_matching_selfie]": {"true"},
		"return_url":                                 {"https://shop.example/" + c.new("return_url")},
	}
	for i := 0; i < 3; i++ {
		create.Set("metadata["+c.new("metadata key")+"]", c.new("metadata value"))
	}
	idemKey := "canary-create-" + store.RandomString(8)
	created := ok(api.post(t, "/v1/identity/verification_sessions", create, "Idempotency-Key", idemKey))
	id := created.Body["id"].(string)
	replayed := ok(api.post(t, "/v1/identity/verification_sessions", create, "Idempotency-Key", idemKey))
	require.Equal(t, "true", replayed.Header.Get("Idempotent-Replayed"))
	require.Equal(t, id, replayed.Body["id"])
	// Credentials are not personal data but must not outlive the redaction either.
	c[jsonStr(created.Body, "client_secret")] = "client_secret"
	c[strings.TrimPrefix(jsonStr(created.Body, "url"), "http://")] = "url"

	// Update metadata (keys and values) and provided details, also idempotently.
	update := url.Values{"metadata[" + c.new("updated metadata key") + "]": {c.new("updated metadata value")},
		"provided_details[phone]": {c.new("updated provided_details.phone")}}
	ok(api.post(t, "/v1/identity/verification_sessions/"+id, update, "Idempotency-Key", "canary-update-"+store.RandomString(8)))

	// Two submissions, so there are two reports.
	first := c.submission("first")
	first.Set("outcome", "requires_input")
	first.Set("last_error[code]", "document_expired")
	ok(api.post(t, submitPath(id), first))
	eventually(t, pollWithin, "requires_input", func() bool {
		return jsonStr(ok(api.get(t, "/v1/identity/verification_sessions/"+id, nil)).Body, "status") == "requires_input"
	})
	ok(api.post(t, submitPath(id), c.submission("second")))
	eventually(t, pollWithin, "verified", func() bool {
		return jsonStr(ok(api.get(t, "/v1/identity/verification_sessions/"+id, nil)).Body, "status") == "verified"
	})

	// Reads whose responses (and so request logs) hold the data.
	expand := url.Values{"expand[]": {"verified_outputs", "verified_outputs.dob", "verified_outputs.id_number", "last_verification_report"}}
	full := ok(api.get(t, "/v1/identity/verification_sessions/"+id, expand))
	require.Contains(t, full.Raw, "cnry")
	ok(api.get(t, "/v1/identity/verification_sessions", url.Values{"expand[]": {"data.verified_outputs", "data.last_verification_report"}}))
	reports := ok(api.get(t, "/v1/identity/verification_reports", url.Values{"verification_session": {id}}))
	require.Len(t, reports.Body["data"], 2)
	for _, rep := range reports.Body["data"].([]any) {
		// The selfie file id is made up by the server: personal (a face image) all the same.
		c[jsonStr(rep, "selfie.selfie")] = "selfie.selfie"
		ok(api.get(t, "/v1/identity/verification_reports/"+jsonStr(rep, "id"), nil))
	}
	events := ok(api.get(t, "/v1/events", nil))
	ok(api.get(t, "/v1/events/"+jsonStr(events.Body["data"].([]any)[0], "id"), nil))
	ok(api.get(t, "/v1/request_logs", url.Values{"object": {id}}))
	ok(api.get(t, "/v1/request_logs", url.Values{"object": {id}, "limit": {"100"}}))

	// A rejected call about the session still carries personal data in its parameters.
	rejected := api.post(t, "/v1/identity/verification_sessions/"+id, url.Values{
		"metadata[" + c.new("rejected metadata key") + "]": {c.new("rejected metadata value")},
		"provided_details[email]":                          {c.email("rejected provided_details.email")}})
	require.Equal(t, http.StatusBadRequest, rejected.Status, rejected.Raw)
	require.Equal(t, "status_transition_invalid", rejected.errCode())
	invalid := api.post(t, "/v1/identity/verification_sessions/"+id, url.Values{
		"metadata[" + c.new("invalid metadata key") + "]": {strings.Repeat("x", 501)}})
	require.Equal(t, http.StatusBadRequest, invalid.Status, invalid.Raw)

	// The test can fail: before the redaction every canary is somewhere in Redis.
	ctx := context.Background()
	before, err := storetest.ScanAll(ctx, r.Client)
	require.NoError(t, err)
	found := c.findIn(before)
	for v, field := range c {
		require.NotEmpty(t, found[v], "canary %s was never stored; the test would prove nothing", field)
	}

	redactWith(t, api, id)
	eventually(t, pollWithin, "redacted", func() bool {
		return jsonStr(ok(api.get(t, "/v1/identity/verification_sessions/"+id, expand)).Body, "redaction.status") == "redacted"
	})
	// Reads after the redaction land in request logs too; they must show only scrubbed data.
	ok(api.get(t, "/v1/request_logs", url.Values{"object": {id}, "limit": {"100"}}))
	ok(api.get(t, "/v1/events", nil))

	after, err := storetest.ScanAll(ctx, r.Client)
	require.NoError(t, err)
	leaks := c.findIn(after)
	var report []string
	for v, keys := range leaks {
		sort.Strings(keys)
		report = append(report, c[v]+" in "+strings.Join(keys, ", "))
	}
	sort.Strings(report)
	require.Empty(t, report, "personal data left behind after redaction (%d keys scanned)", len(after))

	// The scrubbed objects are still there, with their placeholders.
	require.Contains(t, ok(api.get(t, "/v1/identity/verification_sessions/"+id, expand)).Raw, store.Redacted)
}
