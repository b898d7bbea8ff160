package api

import (
	"context"
	"net/http"
	"unicode/utf8"

	"github.com/identityd/identityd/store"
)

var lastErrorCodes = []string{"abandoned", "consent_declined", "country_not_supported", "device_not_supported",
	"document_expired", "document_type_not_supported", "document_unverified_other", "email_unverified_other",
	"email_verification_declined", "id_number_insufficient_document_data", "id_number_mismatch",
	"id_number_unverified_other", "phone_unverified_other", "phone_verification_declined",
	"selfie_document_missing_photo", "selfie_face_mismatch", "selfie_manipulated", "selfie_unverified_other",
	"under_supported_age"}

var errLiveSubmit = &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "testmode_only",
	Message: "Test helpers can only be used with a test-mode key (sk_test_…)."}

// readDate reads key[day|month|year] with range checks.
func readDate(f *Form, key string) (*store.Date, error) {
	if !f.Has(key) {
		return nil, nil
	}
	var d store.Date
	for _, part := range []struct {
		name   string
		dst    **int64
		lo, hi int64
	}{{"day", &d.Day, 1, 31}, {"month", &d.Month, 1, 12}, {"year", &d.Year, 1850, 2200}} {
		name := key + "[" + part.name + "]"
		v, err := f.Int(name)
		if err != nil {
			return nil, err
		}
		if v != nil && (*v < part.lo || *v > part.hi) {
			return nil, invalidParam(name, "parameter_invalid", "Invalid "+name+": out of range.")
		}
		*part.dst = v
	}
	return &d, nil
}

// readStrings reads several optional strings under one prefix into their destinations.
func readStrings(f *Form, prefix string, fields map[string]**string) error {
	for name, dst := range fields {
		v, err := f.String(prefix + "[" + name + "]")
		if err != nil {
			return err
		}
		*dst = v
	}
	return nil
}

// submitSession stands in for the end user finishing the hosted flow (a test-mode-only extension).
func (s *Server) submitSession(c *call) (any, error) {
	if c.scope.Livemode {
		return nil, errLiveSubmit
	}
	sub, err := readSubmission(c.form)
	if err != nil {
		return nil, err
	}
	ex, err := readExpand(c.form, false, sessionExpandable...)
	if err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	sess, err := s.submit(c.ctx, c.scope, c.r.PathValue("id"), sub, c.origin(), c.requestID)
	if err != nil {
		return nil, err
	}
	return c.renderSession(sess, ex)
}

// submit is the one submission transition, shared by the test helper and the hosted page: requires_input →
// processing with the `.processing` event, then the verify task after the verification delay. A session in
// any other state, or in redaction, is status_transition_invalid and changes nothing.
func (s *Server) submit(ctx context.Context, sc store.Scope, id string, sub *store.Submission, o store.Origin, requestID string) (*store.Session, error) {
	sess, evs, err := s.cfg.Store.Submit(ctx, sc, id, sub, o)
	if err != nil {
		return nil, sessionStateError(err, "submit", "requires_input")
	}
	s.publish(ctx, sc, evs, requestID)
	if err := s.cfg.Queue.EnqueueVerify(ctx, sc, id, sub.ID); err != nil {
		s.cfg.Logger.Warn("verification enqueue failed; the reconciler will retry", "request_id", requestID,
			"session", id, "err", err)
	}
	return sess, nil
}

// readSubmission reads and validates a submission's parameters (outcome, last_error, verified_outputs,
// document) from f. It changes nothing; the caller checks for unknown parameters.
func readSubmission(f *Form) (*store.Submission, error) {
	sub := &store.Submission{Outcome: store.OutcomeVerified}
	outcome, err := f.Enum("outcome", store.OutcomeVerified, store.OutcomeRequiresInput)
	if err != nil {
		return nil, err
	}
	if outcome != nil {
		sub.Outcome = *outcome
	}
	code, err := f.Enum("last_error[code]", lastErrorCodes...)
	if err != nil {
		return nil, err
	}
	if sub.LastErrorReason, err = f.String("last_error[reason]"); err != nil {
		return nil, err
	}
	if sub.Outcome == store.OutcomeVerified && (code != nil || sub.LastErrorReason != nil) {
		return nil, invalidParam("last_error", "parameter_invalid", "last_error is only allowed with outcome=requires_input.")
	}
	sub.LastErrorCode = "document_unverified_other"
	if code != nil {
		sub.LastErrorCode = *code
	}
	vo := &sub.VerifiedOutputs
	if err := readStrings(f, "verified_outputs", map[string]**string{"first_name": &vo.FirstName, "last_name": &vo.LastName,
		"email": &vo.Email, "phone": &vo.Phone, "id_number": &vo.IDNumber,
		"unparsed_place_of_birth": &vo.UnparsedPlaceOfBirth, "unparsed_sex": &vo.UnparsedSex}); err != nil {
		return nil, err
	}
	if vo.Email != nil && !validEmail(*vo.Email) {
		return nil, invalidParam("verified_outputs[email]", "email_invalid", "Invalid email address.")
	}
	if vo.IDNumberType, err = f.Enum("verified_outputs[id_number_type]", "br_cpf", "sg_nric", "us_ssn"); err != nil {
		return nil, err
	}
	if vo.Sex, err = f.Enum("verified_outputs[sex]", "female", "male", "unknown"); err != nil {
		return nil, err
	}
	if vo.Dob, err = readDate(f, "verified_outputs[dob]"); err != nil {
		return nil, err
	}
	if f.Has("verified_outputs[address]") {
		a := &store.Address{}
		if err := readStrings(f, "verified_outputs[address]", map[string]**string{"line1": &a.Line1, "line2": &a.Line2,
			"city": &a.City, "state": &a.State, "postal_code": &a.PostalCode, "country": &a.Country}); err != nil {
			return nil, err
		}
		vo.Address = a
	}
	doc := &sub.Document
	if doc.Type, err = f.Enum("document[type]", "driving_license", "id_card", "passport"); err != nil {
		return nil, err
	}
	if err := readStrings(f, "document", map[string]**string{"number": &doc.Number, "issuing_country": &doc.IssuingCountry}); err != nil {
		return nil, err
	}
	if doc.ExpirationDate, err = readDate(f, "document[expiration_date]"); err != nil {
		return nil, err
	}
	if doc.IssuedDate, err = readDate(f, "document[issued_date]"); err != nil {
		return nil, err
	}
	files, _, err := f.Values("document[files]")
	if err != nil {
		return nil, err
	}
	for _, file := range files {
		if file == "" || utf8.RuneCountInString(file) > maxString {
			return nil, invalidParam("document[files]", "parameter_invalid", "Invalid document[files]: file ids must be 1 to 5000 characters.")
		}
	}
	doc.Files = files
	return sub, nil
}
