package main

import (
	"context"
	"net/http"
	"net/url"
	"slices"
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

// Submission fields that are not free text: their values come from a fixed set (or are dates) and cannot
// carry a canary. Every other personal field of the rule table's verified outputs is planted.
var enumOutputs = map[string][]string{"sex": {"male"}, "id_number_type": {"us_ssn"},
	"dob": nil} // dob is set as a date below

// documentInputs are the document fields a submission takes; the report's other personal document fields
// (names, address, dob, sex, place of birth) are copies of the verified outputs of the same name.
var documentInputs = []string{"number", "issuing_country", "files"}

// submission fills every personal field of a test-mode submission with canaries, generated from the rule
// table: a personal field added to the table is planted here without a line of this test (and fails the
// submission until the API takes it).
func (c canaries) submission(t *testing.T, n string) url.Values {
	t.Helper()
	v := url.Values{}
	for field, rule := range store.Rules[store.KindVerifiedOutputs] {
		name := "verified_outputs[" + field + "]"
		switch {
		case field == "dob":
			v.Set(name+"[day]", "7")
			v.Set(name+"[month]", "3")
			v.Set(name+"[year]", "1990")
		case enumOutputs[field] != nil:
			v.Set(name, enumOutputs[field][0])
		case rule.Action == store.Nested:
			for sub := range store.Rules[rule.Of] {
				v.Set(name+"["+sub+"]", c.new(n+" verified_outputs."+field+"."+sub))
			}
		case field == "email":
			v.Set(name, c.email(n+" verified_outputs.email"))
		case rule.Action == store.Redact:
			v.Set(name, c.new(n+" verified_outputs."+field))
		default:
			t.Fatalf("verified_outputs.%s (%s): no way to plant it; teach this test", field, rule.Action)
		}
	}
	for field, rule := range store.Rules[store.KindDocumentCheck] {
		_, copied := store.Rules[store.KindVerifiedOutputs][field]
		switch {
		case rule.Action == store.Keep, rule.Of == store.KindCheckError, copied, slices.Contains(documentInputs, field):
		case field == "expiration_date", field == "issued_date": // dates, set below
		default:
			t.Fatalf("document.%s (%s) is personal but no submission field plants it; teach this test", field, rule.Action)
		}
	}
	v.Set("document[type]", "id_card")
	v.Set("document[number]", c.new(n+" document.number"))
	v.Set("document[issuing_country]", c.new(n+" document.issuing_country"))
	v.Set("document[expiration_date][day]", "1")
	v.Set("document[expiration_date][month]", "1")
	v.Set("document[expiration_date][year]", "2033")
	v["document[files][]"] = []string{c.new(n + " document.files[0]"), c.new(n + " document.files[1]")}
	return v
}

// providedDetails plants every field of provided_details the rule table declares.
func (c canaries) providedDetails(into url.Values, n string) {
	for field := range store.Rules[store.KindProvidedDetails] {
		if field == "email" {
			into.Set("provided_details[email]", c.email(n+"provided_details.email"))
		} else {
			into.Set("provided_details["+field+"]", c.new(n+"provided_details."+field))
		}
	}
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
			t.Helper()
			redact := api.post(t, "/v1/identity/verification_sessions/"+id+"/redact", nil, "Idempotency-Key", "canary-redact-"+store.RandomString(8))
			require.Equal(t, http.StatusOK, redact.Status, redact.Raw)
			require.Equal(t, "processing", jsonStr(redact.Body, "redaction.status"))
		})
	})
	t.Run("BulkRedaction", func(t *testing.T) {
		t.Parallel()
		canaryScan(t, func(t *testing.T, api *formClient, _ string) {
			t.Helper()
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
	t.Helper()
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
		"type":                                 {"document"},
		"client_reference_id":                  {"canary-order"},
		"options[document][require_id_number]": {"true"},
		"options[document][require_matching_selfie]": {"true"},
		"return_url": {"https://shop.example/" + c.new("return_url")},
	}
	c.providedDetails(create, "")
	for range 3 {
		create.Set("metadata["+c.new("metadata key")+"]", c.new("metadata value"))
	}
	idemKey := c.new("Idempotency-Key of the create")
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
	ok(api.post(t, "/v1/identity/verification_sessions/"+id, update, "Idempotency-Key", c.new("Idempotency-Key of the update")))

	// Two submissions, so there are two reports.
	first := c.submission(t, "first")
	first.Set("outcome", "requires_input")
	first.Set("last_error[code]", "document_expired")
	first.Set("last_error[reason]", c.new("last_error.reason"))
	ok(api.post(t, submitPath(id), first))
	eventually(t, pollWithin, "requires_input", func() bool {
		return jsonStr(ok(api.get(t, "/v1/identity/verification_sessions/"+id, nil)).Body, "status") == "requires_input"
	})
	ok(api.post(t, submitPath(id), c.submission(t, "second")))
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

	// Rejected calls carry personal values in their parameters, their names, an expand path and their
	// Idempotency-Key; a rejected call stores none of them as given, not even before any redaction.
	r2 := canaries{}
	rejected := api.post(t, "/v1/identity/verification_sessions/"+id, url.Values{
		"metadata[" + r2.new("rejected metadata key") + "]": {r2.new("rejected metadata value")},
		"provided_details[email]":                           {r2.email("rejected provided_details.email")}},
		"Idempotency-Key", r2.new("Idempotency-Key of a rejected call"))
	require.Equal(t, http.StatusBadRequest, rejected.Status, rejected.Raw)
	require.Equal(t, "status_transition_invalid", rejected.errCode())
	invalid := api.post(t, "/v1/identity/verification_sessions/"+id, url.Values{
		"metadata[" + r2.new("invalid metadata key") + "]": {strings.Repeat("x", 501)}})
	require.Equal(t, http.StatusBadRequest, invalid.Status, invalid.Raw)
	unknown := api.post(t, "/v1/identity/verification_sessions/"+id, url.Values{
		"provided_details[" + r2.new("unknown parameter name") + "]": {r2.new("unknown parameter value")}})
	require.Equal(t, "parameter_unknown", unknown.errCode(), unknown.Raw)
	badExpand := api.get(t, "/v1/identity/verification_sessions/"+id, url.Values{"expand[]": {r2.new("expand path")}})
	require.Equal(t, http.StatusBadRequest, badExpand.Status, badExpand.Raw)
	byParam := api.get(t, "/v1/identity/verification_reports", url.Values{"verification_session": {id},
		r2.new("unknown name beside a session filter"): {r2.new("its value")}})
	require.Equal(t, "parameter_unknown", byParam.errCode(), byParam.Raw)

	// The test can fail: before the redaction every canary of an accepted call is in Redis — and only in the
	// session's own keys (the session, its personal-data record, its reports): events, request logs and
	// cached responses refer to it.
	ctx := context.Background()
	before, err := storetest.ScanAll(ctx, r.Client)
	require.NoError(t, err)
	found := c.findIn(before)
	own := func(key string) bool {
		return strings.HasSuffix(key, ":vs:"+id) || strings.HasSuffix(key, ":vs:"+id+":submission") ||
			strings.HasSuffix(key, ":vs:"+id+":return_url") || strings.HasSuffix(key, ":pd:"+id) ||
			strings.Contains(key, ":vr:vr_")
	}
	for v, field := range c {
		require.NotEmpty(t, found[v], "canary %s was never stored; the test would prove nothing", field)
		for _, key := range found[v] {
			require.True(t, own(key), "canary %s is stored outside the session's own keys, in %s", field, key)
		}
	}
	for v, keys := range r2.findIn(before) {
		require.Empty(t, keys, "a rejected call stored its %s", r2[v])
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
