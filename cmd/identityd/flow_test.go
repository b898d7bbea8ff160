package main

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store/storetest"
)

// pollWithin is how long a test waits for background work on a loaded machine.
const pollWithin = 30 * time.Second

// verifiedSubmission is a complete submission of Ada's data with outcome=verified.
func verifiedSubmission() url.Values {
	return url.Values{
		"outcome":                                   {"verified"},
		"verified_outputs[first_name]":              {"Ada"},
		"verified_outputs[last_name]":               {"Lovelace"},
		"verified_outputs[email]":                   {"ada@example.com"},
		"verified_outputs[phone]":                   {"+15555550100"},
		"verified_outputs[id_number]":               {"123-45-6789"},
		"verified_outputs[id_number_type]":          {"us_ssn"},
		"verified_outputs[sex]":                     {"female"},
		"verified_outputs[unparsed_place_of_birth]": {"London"},
		"verified_outputs[dob][day]":                {"10"},
		"verified_outputs[dob][month]":              {"12"},
		"verified_outputs[dob][year]":               {"1985"},
		"verified_outputs[address][line1]":          {"12 Analytical Row"},
		"verified_outputs[address][line2]":          {"Flat 2"},
		"verified_outputs[address][city]":           {"London"},
		"verified_outputs[address][state]":          {"LDN"},
		"verified_outputs[address][postal_code]":    {"N1 1AA"},
		"verified_outputs[address][country]":        {"GB"},
		"document[type]":                            {"passport"},
		"document[number]":                          {"P1234567"},
		"document[issuing_country]":                 {"GB"},
		"document[expiration_date][day]":            {"1"},
		"document[expiration_date][month]":          {"6"},
		"document[expiration_date][year]":           {"2031"},
		"document[issued_date][day]":                {"2"},
		"document[issued_date][month]":              {"6"},
		"document[issued_date][year]":               {"2021"},
		"document[files][]":                         {"file_front", "file_back"},
	}
}

// waitStatus polls Retrieve until the session has status want.
func waitStatus(t *testing.T, sc *stripe.Client, id string, want stripe.IdentityVerificationSessionStatus) *stripe.IdentityVerificationSession {
	t.Helper()
	var got *stripe.IdentityVerificationSession
	eventually(t, pollWithin, "status "+string(want), func() bool {
		var err error
		got, err = sc.V1IdentityVerificationSessions.Retrieve(context.Background(), id, nil)
		require.NoError(t, err)
		return got.Status == want
	})
	return got
}

// failedThenVerified takes a new document session through a failed and then a verified submission, as the
// end user would, and returns its id.
func failedThenVerified(t *testing.T, d *daemon) string {
	t.Helper()
	ctx := context.Background()
	sc := d.client(testKeyA)
	raw := d.form(testKeyA)
	params := &stripe.IdentityVerificationSessionCreateParams{
		Type:              stripe.String("document"),
		ClientReferenceID: stripe.String("order-1"),
		ProvidedDetails: &stripe.IdentityVerificationSessionCreateProvidedDetailsParams{
			Email: stripe.String("ada@example.com"), Phone: stripe.String("+15555550100")},
		Options: &stripe.IdentityVerificationSessionCreateOptionsParams{
			Document: &stripe.IdentityVerificationSessionCreateOptionsDocumentParams{
				RequireIDNumber: new(true), RequireMatchingSelfie: new(true)}},
	}
	params.AddMetadata("customer", "Ada Lovelace")
	vs, err := sc.V1IdentityVerificationSessions.Create(ctx, params)
	require.NoError(t, err)
	require.Equal(t, stripe.IdentityVerificationSessionStatusRequiresInput, vs.Status)

	r := raw.post(t, submitPath(vs.ID), url.Values{"outcome": {"requires_input"}, "last_error[code]": {"document_expired"},
		"verified_outputs[first_name]": {"Ada"}, "document[type]": {"passport"}, "document[number]": {"OLD123"},
		"document[files][]": {"file_old"}})
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Equal(t, "processing", r.Body["status"])

	failed := waitStatus(t, sc, vs.ID, stripe.IdentityVerificationSessionStatusRequiresInput)
	require.NotNil(t, failed.LastError)
	require.Equal(t, stripe.IdentityVerificationSessionLastErrorCode("document_expired"), failed.LastError.Code)
	require.NotNil(t, failed.LastVerificationReport)
	require.NotEmpty(t, failed.LastVerificationReport.ID)

	r = raw.post(t, submitPath(vs.ID), verifiedSubmission())
	require.Equal(t, http.StatusOK, r.Status, r.Raw)
	require.Equal(t, "processing", r.Body["status"])
	require.Nil(t, r.Body["last_error"], "a new submission clears last_error")

	verified := waitStatus(t, sc, vs.ID, stripe.IdentityVerificationSessionStatusVerified)
	require.Nil(t, verified.LastError)
	require.NotEqual(t, failed.LastVerificationReport.ID, verified.LastVerificationReport.ID)
	return vs.ID
}

func TestStripeGo_VerificationFlow(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--verification-delay", "0s")
	sc := d.client(testKeyA)
	ctx := context.Background()
	id := failedThenVerified(t, d)

	t.Run("ReportsNewestFirst", func(t *testing.T) {
		vs, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, id, nil)
		require.NoError(t, err)
		lp := &stripe.IdentityVerificationReportListParams{VerificationSession: stripe.String(id)}
		for _, e := range []string{"document.number", "document.dob", "id_number.id_number", "id_number.dob"} {
			lp.AddExpand("data." + e) // sensitive fields are shown only when expanded
		}
		list := sc.V1IdentityVerificationReports.List(ctx, lp)
		var reports []*stripe.IdentityVerificationReport
		for r, err := range list.All(ctx) {
			require.NoError(t, err)
			reports = append(reports, r)
		}
		require.Len(t, reports, 2)
		newest, oldest := reports[0], reports[1]
		require.Equal(t, vs.LastVerificationReport.ID, newest.ID, "the newest report is the last one")
		require.GreaterOrEqual(t, newest.Created, oldest.Created)
		for _, r := range reports {
			require.Equal(t, id, r.VerificationSession)
			require.Equal(t, "order-1", r.ClientReferenceID)
			require.Equal(t, stripe.IdentityVerificationReportTypeDocument, r.Type)
		}
		require.Equal(t, stripe.IdentityVerificationReportDocumentStatusVerified, newest.Document.Status)
		require.Nil(t, newest.Document.Error)
		require.Equal(t, "P1234567", newest.Document.Number)
		require.Equal(t, []string{"file_front", "file_back"}, newest.Document.Files)
		require.Equal(t, "Ada", newest.Document.FirstName)
		require.Equal(t, "12 Analytical Row", newest.Document.Address.Line1)
		require.Equal(t, int64(2031), newest.Document.ExpirationDate.Year)
		require.Equal(t, int64(2021), newest.Document.IssuedDate.Year)
		require.Equal(t, "123-45-6789", newest.IDNumber.IDNumber, "options asked for an id_number check")
		require.NotEmpty(t, newest.Selfie.Selfie, "options asked for a selfie check")
		require.Equal(t, "file_front", newest.Selfie.Document)

		require.Equal(t, stripe.IdentityVerificationReportDocumentStatusUnverified, oldest.Document.Status)
		require.Equal(t, stripe.IdentityVerificationReportDocumentErrorCode("document_expired"), oldest.Document.Error.Code)
		require.Equal(t, "OLD123", oldest.Document.Number)

		one, err := sc.V1IdentityVerificationReports.Retrieve(ctx, oldest.ID, nil)
		require.NoError(t, err)
		require.Empty(t, one.Document.Number, "document.number needs its expand")
		require.Nil(t, one.Document.DOB, "document.dob needs its expand")
		require.Empty(t, one.IDNumber.IDNumber, "id_number.id_number needs its expand")
		require.Nil(t, one.IDNumber.DOB, "id_number.dob needs its expand")
		rp := &stripe.IdentityVerificationReportRetrieveParams{}
		rp.AddExpand("document.number")
		one, err = sc.V1IdentityVerificationReports.Retrieve(ctx, oldest.ID, rp)
		require.NoError(t, err)
		require.Equal(t, oldest.Document.Number, one.Document.Number)
		require.Nil(t, one.Document.DOB)
	})

	t.Run("WithoutExpandNoOutputs", func(t *testing.T) {
		vs, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, id, nil)
		require.NoError(t, err)
		require.Nil(t, vs.VerifiedOutputs)
		require.NotEmpty(t, vs.LastVerificationReport.ID)
		require.Nil(t, vs.LastVerificationReport.Document, "an id, not the object")
		raw := d.form(testKeyA).get(t, "/v1/identity/verification_sessions/"+id, nil)
		require.NotContains(t, raw.Body, "verified_outputs")
		require.NotContains(t, raw.Raw, "123-45-6789")
		require.NotContains(t, raw.Raw, "1985")
	})

	t.Run("ExpandVerifiedOutputs", func(t *testing.T) {
		p := &stripe.IdentityVerificationSessionRetrieveParams{}
		p.AddExpand("verified_outputs")
		vs, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, id, p)
		require.NoError(t, err)
		vo := vs.VerifiedOutputs
		require.NotNil(t, vo)
		require.Equal(t, "Ada", vo.FirstName)
		require.Equal(t, "Lovelace", vo.LastName)
		require.Equal(t, "ada@example.com", vo.Email)
		require.Equal(t, "+15555550100", vo.Phone)
		require.Equal(t, stripe.IdentityVerificationSessionVerifiedOutputsIDNumberType("us_ssn"), vo.IDNumberType)
		require.Equal(t, stripe.IdentityVerificationSessionVerifiedOutputsSex("female"), vo.Sex)
		require.Equal(t, "London", vo.UnparsedPlaceOfBirth)
		require.Equal(t, &stripe.Address{Line1: "12 Analytical Row", Line2: "Flat 2", City: "London", State: "LDN",
			PostalCode: "N1 1AA", Country: "GB"}, vo.Address)
		require.Nil(t, vo.DOB, "dob needs its own expand")
		require.Empty(t, vo.IDNumber, "id_number needs its own expand")
	})

	t.Run("ExpandDobAndIDNumber", func(t *testing.T) {
		p := &stripe.IdentityVerificationSessionRetrieveParams{}
		p.AddExpand("verified_outputs.dob")
		p.AddExpand("verified_outputs.id_number")
		vs, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, id, p)
		require.NoError(t, err)
		require.Equal(t, &stripe.IdentityVerificationSessionVerifiedOutputsDOB{Day: 10, Month: 12, Year: 1985}, vs.VerifiedOutputs.DOB)
		require.Equal(t, "123-45-6789", vs.VerifiedOutputs.IDNumber)
	})

	t.Run("ExpandLastVerificationReport", func(t *testing.T) {
		p := &stripe.IdentityVerificationSessionRetrieveParams{}
		p.AddExpand("last_verification_report")
		vs, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, id, p)
		require.NoError(t, err)
		r := vs.LastVerificationReport
		require.NotNil(t, r.Document)
		require.Empty(t, r.Document.Number, "document.number needs its expand")
		p.AddExpand("last_verification_report.document.number")
		vs, err = sc.V1IdentityVerificationSessions.Retrieve(ctx, id, p)
		require.NoError(t, err)
		r = vs.LastVerificationReport
		require.Equal(t, "P1234567", r.Document.Number)
		require.Equal(t, id, r.VerificationSession)
	})

	t.Run("ExpandInLists", func(t *testing.T) {
		p := &stripe.IdentityVerificationSessionListParams{}
		p.AddExpand("data.verified_outputs")
		p.AddExpand("data.last_verification_report.document.number")
		list := sc.V1IdentityVerificationSessions.List(ctx, p)
		found := false
		for vs, err := range list.All(ctx) {
			require.NoError(t, err)
			if vs.ID == id {
				found = true
				require.Equal(t, "Ada", vs.VerifiedOutputs.FirstName)
				require.Equal(t, "P1234567", vs.LastVerificationReport.Document.Number)
			}
		}
		require.True(t, found)
	})

	t.Run("Events", func(t *testing.T) {
		evs := d.form(testKeyA).sessionEvents(t)[id]
		require.Equal(t, map[string]int{"identity.verification_session.created": 1,
			"identity.verification_session.processing": 2, "identity.verification_session.requires_input": 1,
			"identity.verification_session.verified": 1}, evs)
	})

	t.Run("SubmitOnlyFromRequiresInput", func(t *testing.T) {
		r := d.form(testKeyA).post(t, submitPath(id), verifiedSubmission())
		require.Equal(t, http.StatusBadRequest, r.Status, r.Raw)
		require.Equal(t, "status_transition_invalid", r.errCode())
	})
}

func TestSubmit_LiveKeyCannotSubmit(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--verification-delay", "0s")
	ctx := context.Background()
	live, err := d.client(liveKeyA).V1IdentityVerificationSessions.Create(ctx,
		&stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
	require.NoError(t, err)
	require.True(t, live.Livemode)

	r := d.form(liveKeyA).post(t, submitPath(live.ID), verifiedSubmission())
	require.GreaterOrEqual(t, r.Status, 400)
	require.Less(t, r.Status, 500)
	got, err := d.client(liveKeyA).V1IdentityVerificationSessions.Retrieve(ctx, live.ID, nil)
	require.NoError(t, err)
	require.Equal(t, stripe.IdentityVerificationSessionStatusRequiresInput, got.Status, "nothing changed")

	test, err := d.client(testKeyA).V1IdentityVerificationSessions.Create(ctx,
		&stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
	require.NoError(t, err)
	r = d.form(liveKeyA).post(t, submitPath(test.ID), verifiedSubmission())
	require.GreaterOrEqual(t, r.Status, 400)
	require.Less(t, r.Status, 500)

	r = d.form(testKeyA).post(t, submitPath(test.ID), url.Values{"verified_outputs[email]": {"not-an-email"}})
	require.Equal(t, http.StatusBadRequest, r.Status, "values are validated")
	r = d.form(testKeyA).post(t, submitPath(test.ID), url.Values{"verified_outputs[dob][month]": {"13"}})
	require.Equal(t, http.StatusBadRequest, r.Status)
	r = d.form(testKeyA).post(t, submitPath(test.ID), url.Values{"outcome": {"maybe"}})
	require.Equal(t, http.StatusBadRequest, r.Status)
	r = d.form(testKeyA).post(t, submitPath(test.ID), url.Values{"verified_outputs[nickname]": {"Ada"}})
	require.Equal(t, http.StatusBadRequest, r.Status)
	require.Equal(t, "parameter_unknown", r.errCode())
	got, err = d.client(testKeyA).V1IdentityVerificationSessions.Retrieve(ctx, test.ID, nil)
	require.NoError(t, err)
	require.Equal(t, stripe.IdentityVerificationSessionStatusRequiresInput, got.Status, "rejected submissions change nothing")
}

// stripeCode is the Stripe error code of an SDK error.
func stripeCode(err error) stripe.ErrorCode {
	if se, ok := errors.AsType[*stripe.Error](err); ok {
		return se.Code
	}
	return ""
}

func TestStripeGo_RedactionLifecycle(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--verification-delay", "0s")
	sc := d.client(testKeyA)
	raw := d.form(testKeyA)
	ctx := context.Background()
	id := failedThenVerified(t, d)

	vs, err := sc.V1IdentityVerificationSessions.Redact(ctx, id, nil)
	require.NoError(t, err)
	require.Equal(t, stripe.IdentityVerificationSessionRedactionStatusProcessing, vs.Redaction.Status)
	require.Equal(t, stripe.IdentityVerificationSessionStatusVerified, vs.Status)
	require.Empty(t, vs.ClientSecret)
	require.Empty(t, vs.URL)

	eventually(t, pollWithin, "redacted", func() bool {
		got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, id, nil)
		require.NoError(t, err)
		return got.Redaction.Status == stripe.IdentityVerificationSessionRedactionStatusRedacted
	})

	p := &stripe.IdentityVerificationSessionRetrieveParams{}
	for _, e := range []string{"verified_outputs", "verified_outputs.dob", "verified_outputs.id_number", "last_verification_report",
		"last_verification_report.document.number", "last_verification_report.document.dob",
		"last_verification_report.id_number.id_number"} {
		p.AddExpand(e)
	}
	got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, id, p)
	require.NoError(t, err)
	require.Equal(t, stripe.IdentityVerificationSessionStatusVerified, got.Status)
	require.Empty(t, got.Metadata)
	require.Empty(t, got.ClientSecret)
	require.Empty(t, got.URL)
	require.Equal(t, "order-1", got.ClientReferenceID, "non-personal fields are kept")
	require.Equal(t, "[redacted]", got.ProvidedDetails.Email)
	require.Equal(t, "[redacted]", got.ProvidedDetails.Phone)
	vo := got.VerifiedOutputs
	for _, v := range []string{vo.FirstName, vo.LastName, vo.Email, vo.Phone, vo.IDNumber, vo.UnparsedPlaceOfBirth,
		vo.Address.Line1, vo.Address.Line2, vo.Address.City, vo.Address.State, vo.Address.PostalCode, vo.Address.Country} {
		require.Equal(t, "[redacted]", v)
	}
	require.Equal(t, stripe.IdentityVerificationSessionVerifiedOutputsSex("[redacted]"), vo.Sex)
	require.Nil(t, vo.DOB)
	require.Empty(t, vo.IDNumberType)
	doc := got.LastVerificationReport.Document
	require.Equal(t, "[redacted]", doc.Number)
	require.Equal(t, "[redacted]", doc.FirstName)
	require.Equal(t, "[redacted]", doc.IssuingCountry)
	require.Equal(t, []string{"[redacted]", "[redacted]"}, doc.Files)
	require.Nil(t, doc.ExpirationDate)
	require.Nil(t, doc.IssuedDate)
	require.Nil(t, doc.DOB)
	require.Equal(t, stripe.IdentityVerificationReportDocumentStatusVerified, doc.Status, "check status is kept")
	require.Equal(t, "[redacted]", got.LastVerificationReport.Selfie.Selfie)
	require.Equal(t, "[redacted]", got.LastVerificationReport.IDNumber.IDNumber)

	rlp := &stripe.IdentityVerificationReportListParams{VerificationSession: stripe.String(id)}
	rlp.AddExpand("data.document.number")
	reports := sc.V1IdentityVerificationReports.List(ctx, rlp)
	n := 0
	for r, err := range reports.All(ctx) {
		require.NoError(t, err)
		n++
		require.Equal(t, "[redacted]", r.Document.Number)
		require.Equal(t, "[redacted]", r.Document.FirstName)
	}
	require.Equal(t, 2, n)

	rec := raw.get(t, "/v1/identity/verification_sessions/"+id+"/redaction", nil)
	require.Equal(t, http.StatusOK, rec.Status, rec.Raw)
	require.Equal(t, "identity.redaction_record", rec.Body["object"])
	require.Equal(t, id, rec.Body["verification_session"])
	require.Equal(t, "request", jsonStr(rec.Body, "requested_by.type"))
	require.Regexp(t, `^req_`, jsonStr(rec.Body, "requested_by.id"))
	require.NotNil(t, rec.Body["completed_at"])
	require.GreaterOrEqual(t, rec.Body["completed_at"].(float64), rec.Body["requested_at"].(float64))
	require.Equal(t, 2.0, jsonAt(rec.Body, "scrubbed.verification_reports"))
	require.Equal(t, 5.0, jsonAt(rec.Body, "scrubbed.events"), "created, processing ×2, requires_input, verified")
	require.Greater(t, jsonAt(rec.Body, "scrubbed.request_logs").(float64), 0.0)
	require.Greater(t, jsonAt(rec.Body, "scrubbed.idempotency_entries").(float64), 0.0, "stripe-go's create had an Idempotency-Key")
	require.NotContains(t, rec.Raw, "Ada")

	missing := raw.get(t, "/v1/identity/verification_sessions/vs_missing/redaction", nil)
	require.Equal(t, http.StatusNotFound, missing.Status)

	t.Run("ReadOnlyAfterRedaction", func(t *testing.T) {
		_, err := sc.V1IdentityVerificationSessions.Update(ctx, id, &stripe.IdentityVerificationSessionUpdateParams{
			Metadata: map[string]string{"k": "v"}})
		require.Equal(t, stripe.ErrorCode("status_transition_invalid"), stripeCode(err))
		_, err = sc.V1IdentityVerificationSessions.Cancel(ctx, id, nil)
		require.Equal(t, stripe.ErrorCode("status_transition_invalid"), stripeCode(err))
		r := raw.post(t, submitPath(id), verifiedSubmission())
		require.Equal(t, http.StatusBadRequest, r.Status)
		require.Equal(t, "status_transition_invalid", r.errCode())
	})

	t.Run("SecondRedactChangesNothing", func(t *testing.T) {
		again, err := sc.V1IdentityVerificationSessions.Redact(ctx, id, nil)
		require.NoError(t, err)
		require.Equal(t, stripe.IdentityVerificationSessionRedactionStatusRedacted, again.Redaction.Status)
		redacted := raw.listAll(t, "/v1/events", url.Values{"type": {"identity.verification_session.redacted"}})
		require.Len(t, redacted, 1)
		require.Equal(t, id, jsonStr(redacted[0], "data.object.id"))
		require.Equal(t, "[redacted]", jsonStr(redacted[0], "data.object.provided_details.email"))
		require.Equal(t, "redacted", jsonStr(redacted[0], "data.object.redaction.status"))
		require.Equal(t, 1, redactTaskCount(t, d))
		require.Contains(t, scrapeMetrics(t, d), "identityd_redactions_requested_total 1\n")
		require.Contains(t, scrapeMetrics(t, d), "identityd_redactions_completed_total 1\n")
	})
}

func TestRedact_SecondCallWhileProcessingEnqueuesNothing(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--redaction-delay", "1h")
	sc := d.client(testKeyA)
	ctx := context.Background()
	vs, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
	require.NoError(t, err)
	for range 3 {
		got, err := sc.V1IdentityVerificationSessions.Redact(ctx, vs.ID, nil)
		require.NoError(t, err)
		require.Equal(t, stripe.IdentityVerificationSessionRedactionStatusProcessing, got.Redaction.Status)
		require.Equal(t, stripe.IdentityVerificationSessionStatusCanceled, got.Status, "auto-canceled from requires_input")
	}
	require.Equal(t, 1, redactTaskCount(t, d))
	require.Contains(t, scrapeMetrics(t, d), "identityd_redactions_requested_total 1\n")
	evs := d.form(testKeyA).sessionEvents(t)[vs.ID]
	require.Equal(t, map[string]int{"identity.verification_session.created": 1, "identity.verification_session.canceled": 1}, evs)
}
