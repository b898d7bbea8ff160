package store_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

// fullSession is a session of vs_1 with every personal field set (verified outputs expanded).
const fullSession = `{
  "id": "vs_1", "object": "identity.verification_session", "client_reference_id": "ref_1",
  "client_secret": "vs_1_secret_abc", "created": 1700000000, "livemode": false,
  "last_error": {"code": "document_expired", "reason": "too old"},
  "last_verification_report": "vr_1",
  "metadata": {"order": "42", "customer_name": "Ada"},
  "options": {"document": {"require_matching_selfie": true}},
  "provided_details": {"email": "ada@example.com", "phone": "+15555550100"},
  "redaction": {"status": "processing"},
  "related_customer": "cus_1", "related_person": {"account": "acct_1", "person": "person_1"},
  "status": "verified", "type": "document", "url": "https://verify.example/vs_1",
  "verified_outputs": {
    "address": {"city": "London", "country": "GB", "line1": "1 Lovelace Rd", "line2": "Flat 2", "postal_code": "N1 1AA", "state": "LDN"},
    "dob": {"day": 10, "month": 12, "year": 1815},
    "email": "ada@example.com", "first_name": "Ada", "id_number": "123-45-6789", "id_number_type": "us_ssn",
    "last_name": "Lovelace", "phone": "+15555550100", "sex": "female",
    "unparsed_place_of_birth": "London", "unparsed_sex": "F"
  }
}`

const fullSessionScrubbed = `{
  "id": "vs_1", "object": "identity.verification_session", "client_reference_id": "ref_1",
  "client_secret": null, "created": 1700000000, "livemode": false,
  "last_error": {"code": "document_expired", "reason": "too old"},
  "last_verification_report": "vr_1",
  "metadata": {},
  "options": {"document": {"require_matching_selfie": true}},
  "provided_details": {"email": "[redacted]", "phone": "[redacted]"},
  "redaction": {"status": "processing"},
  "related_customer": "cus_1", "related_person": {"account": "acct_1", "person": "person_1"},
  "status": "verified", "type": "document", "url": null,
  "verified_outputs": {
    "address": {"city": "[redacted]", "country": "[redacted]", "line1": "[redacted]", "line2": "[redacted]", "postal_code": "[redacted]", "state": "[redacted]"},
    "dob": null,
    "email": "[redacted]", "first_name": "[redacted]", "id_number": "[redacted]", "id_number_type": null,
    "last_name": "[redacted]", "phone": "[redacted]", "sex": "[redacted]",
    "unparsed_place_of_birth": "[redacted]", "unparsed_sex": "[redacted]"
  }
}`

// fullReport is a report of vs_1 with every check present.
const fullReport = `{
  "id": "vr_1", "object": "identity.verification_report", "client_reference_id": "ref_1", "created": 1700000001,
  "livemode": false, "options": {"document": {}}, "type": "document", "verification_session": "vs_1",
  "document": {
    "address": {"city": "London", "country": "GB", "line1": "1 Lovelace Rd", "line2": null, "postal_code": "N1 1AA", "state": null},
    "dob": {"day": 10, "month": 12, "year": 1815},
    "error": {"code": "document_expired", "reason": "expired"},
    "expiration_date": {"day": 1, "month": 1, "year": 2030},
    "files": ["file_front", "file_back"],
    "first_name": "Ada", "issued_date": {"day": 1, "month": 1, "year": 2020}, "issuing_country": "GB",
    "last_name": "Lovelace", "number": "P1234567", "sex": "female", "status": "unverified", "type": "passport",
    "unparsed_place_of_birth": "London", "unparsed_sex": "F"
  },
  "id_number": {"dob": {"day": 10, "month": 12, "year": 1815}, "error": null, "first_name": "Ada",
    "id_number": "123-45-6789", "id_number_type": "us_ssn", "last_name": "Lovelace", "status": "verified"},
  "selfie": {"document": "file_front", "error": null, "selfie": "file_selfie", "status": "verified"},
  "email": {"email": "ada@example.com", "error": null, "status": "verified"},
  "phone": {"error": null, "phone": "+15555550100", "status": "verified"}
}`

const fullReportScrubbed = `{
  "id": "vr_1", "object": "identity.verification_report", "client_reference_id": "ref_1", "created": 1700000001,
  "livemode": false, "options": {"document": {}}, "type": "document", "verification_session": "vs_1",
  "document": {
    "address": {"city": "[redacted]", "country": "[redacted]", "line1": "[redacted]", "line2": null, "postal_code": "[redacted]", "state": null},
    "dob": null,
    "error": {"code": "document_expired", "reason": "expired"},
    "expiration_date": null,
    "files": ["[redacted]", "[redacted]"],
    "first_name": "[redacted]", "issued_date": null, "issuing_country": "[redacted]",
    "last_name": "[redacted]", "number": "[redacted]", "sex": "[redacted]", "status": "unverified", "type": "passport",
    "unparsed_place_of_birth": "[redacted]", "unparsed_sex": "[redacted]"
  },
  "id_number": {"dob": null, "error": null, "first_name": "[redacted]",
    "id_number": "[redacted]", "id_number_type": null, "last_name": "[redacted]", "status": "verified"},
  "selfie": {"document": "[redacted]", "error": null, "selfie": "[redacted]", "status": "verified"},
  "email": {"email": "[redacted]", "error": null, "status": "verified"},
  "phone": {"error": null, "phone": "[redacted]", "status": "verified"}
}`

// otherSession belongs to vs_2 and must never be touched by a scrub of vs_1.
const otherSession = `{"id": "vs_2", "object": "identity.verification_session", "client_secret": "vs_2_secret",
  "metadata": {"k": "v"}, "provided_details": {"email": "bob@example.com", "phone": null}, "url": "https://x/vs_2",
  "status": "requires_input", "type": "document", "verified_outputs": null, "last_verification_report": null}`

const otherReport = `{"id": "vr_2", "object": "identity.verification_report", "verification_session": "vs_2",
  "document": {"first_name": "Bob", "number": "X1", "files": ["file_b"], "dob": {"day": 1, "month": 2, "year": 1990}}}`

func TestScrubJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    string
		want  string
		found bool
	}{
		{name: "SessionEveryField", in: fullSession, want: fullSessionScrubbed, found: true},
		{name: "ReportEveryCheck", in: fullReport, want: fullReportScrubbed, found: true},
		{
			name: "NullsStayNull",
			in: `{"id": "vs_1", "object": "identity.verification_session", "client_secret": null, "url": null,
				"metadata": {}, "provided_details": {"email": null, "phone": "+1"},
				"verified_outputs": {"address": {"city": null, "line1": "x"}, "dob": null, "email": null,
				"first_name": null, "sex": null, "id_number_type": null, "unparsed_sex": null}}`,
			want: `{"id": "vs_1", "object": "identity.verification_session", "client_secret": null, "url": null,
				"metadata": {}, "provided_details": {"email": null, "phone": "[redacted]"},
				"verified_outputs": {"address": {"city": null, "line1": "[redacted]"}, "dob": null, "email": null,
				"first_name": null, "sex": null, "id_number_type": null, "unparsed_sex": null}}`,
			found: true,
		},
		{
			name:  "AbsentFieldsStayAbsent",
			in:    `{"id": "vs_1", "object": "identity.verification_session", "verified_outputs": {"first_name": "Ada"}}`,
			want:  `{"id": "vs_1", "object": "identity.verification_session", "verified_outputs": {"first_name": "[redacted]"}, "metadata": {}, "client_secret": null, "url": null}`,
			found: true,
		},
		{name: "OtherSessionUntouched", in: otherSession, want: otherSession, found: false},
		{name: "OtherSessionsReportUntouched", in: otherReport, want: otherReport, found: false},
		{
			name:  "ListResponse",
			in:    `{"object": "list", "url": "/v1/identity/verification_sessions", "has_more": false, "data": [` + otherSession + `,` + fullSession + `]}`,
			want:  `{"object": "list", "url": "/v1/identity/verification_sessions", "has_more": false, "data": [` + otherSession + `,` + fullSessionScrubbed + `]}`,
			found: true,
		},
		{
			name:  "ReportList",
			in:    `{"object": "list", "data": [` + fullReport + `,` + otherReport + `]}`,
			want:  `{"object": "list", "data": [` + fullReportScrubbed + `,` + otherReport + `]}`,
			found: true,
		},
		{
			name:  "ExpandedLastVerificationReport",
			in:    strings.Replace(fullSession, `"last_verification_report": "vr_1"`, `"last_verification_report": `+fullReport, 1),
			want:  strings.Replace(fullSessionScrubbed, `"last_verification_report": "vr_1"`, `"last_verification_report": `+fullReportScrubbed, 1),
			found: true,
		},
		{
			name: "EventDataObject",
			in: `{"id": "evt_1", "object": "event", "type": "identity.verification_session.verified", "created": 1,
				"request": {"id": "req_1", "idempotency_key": "k1"}, "data": {"object": ` + fullSession + `}}`,
			want: `{"id": "evt_1", "object": "event", "type": "identity.verification_session.verified", "created": 1,
				"request": {"id": "req_1", "idempotency_key": "k1"}, "data": {"object": ` + fullSessionScrubbed + `}}`,
			found: true,
		},
		{
			name: "EventListWithOtherSessionsEvent",
			in: `{"object": "list", "data": [{"id": "evt_2", "object": "event", "data": {"object": ` + otherSession + `}},
				{"id": "evt_1", "object": "event", "data": {"object": ` + fullSession + `}}]}`,
			want: `{"object": "list", "data": [{"id": "evt_2", "object": "event", "data": {"object": ` + otherSession + `}},
				{"id": "evt_1", "object": "event", "data": {"object": ` + fullSessionScrubbed + `}}]}`,
			found: true,
		},
		{
			name: "RequestLogListedInResponse",
			in: `{"object": "list", "url": "/v1/request_logs", "data": [
				{"id": "req_1", "object": "request_log", "method": "POST", "path": "/v1/identity/verification_sessions/vs_1",
				 "objects": ["vs_1", "vr_1"], "status": 200,
				 "params": [{"k": "metadata[secret_key]", "v": "secret_value"}, {"k": "provided_details[email]", "v": "ada@example.com"},
				            {"k": "expand[0]", "v": "verified_outputs"}, {"k": "type", "v": "document"}],
				 "response": ` + fullSession + `},
				{"id": "req_2", "object": "request_log", "method": "POST", "path": "/v1/identity/verification_sessions",
				 "objects": ["vs_2"], "status": 200,
				 "params": [{"k": "metadata[k]", "v": "v"}, {"k": "provided_details[email]", "v": "bob@example.com"}],
				 "response": ` + otherSession + `}]}`,
			want: `{"object": "list", "url": "/v1/request_logs", "data": [
				{"id": "req_1", "object": "request_log", "method": "POST", "path": "/v1/identity/verification_sessions/vs_1",
				 "objects": ["vs_1", "vr_1"], "status": 200,
				 "params": [{"k": "provided_details[email]", "v": "[redacted]"},
				            {"k": "expand[0]", "v": "verified_outputs"}, {"k": "type", "v": "document"}],
				 "response": ` + fullSessionScrubbed + `},
				{"id": "req_2", "object": "request_log", "method": "POST", "path": "/v1/identity/verification_sessions",
				 "objects": ["vs_2"], "status": 200,
				 "params": [{"k": "metadata[k]", "v": "v"}, {"k": "provided_details[email]", "v": "bob@example.com"}],
				 "response": ` + otherSession + `}]}`,
			found: true,
		},
		{
			name: "RequestLogErrorEchoingMetadataKey",
			in: `{"object": "list", "data": [{"id": "req_3", "object": "request_log", "objects": ["vs_1"], "status": 400,
				"params": [{"k": "metadata[ada_lovelace]", "v": "xxx"}],
				"response": {"error": {"type": "invalid_request_error", "code": "parameter_invalid",
				  "message": "Invalid metadata[ada_lovelace].", "param": "metadata[ada_lovelace]"}}}]}`,
			want: `{"object": "list", "data": [{"id": "req_3", "object": "request_log", "objects": ["vs_1"], "status": 400,
				"params": [],
				"response": {"error": {"type": "invalid_request_error", "code": "parameter_invalid",
				  "message": "Invalid metadata.", "param": "metadata"}}}]}`,
			found: true,
		},
		{
			name:  "SessionIDInsideAnotherObjectIsNotASession",
			in:    `{"id": "vs_1", "object": "identity.redaction_record", "verification_session": "vs_1", "note": "x"}`,
			want:  `{"id": "vs_1", "object": "identity.redaction_record", "verification_session": "vs_1", "note": "x"}`,
			found: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var doc any
			require.NoError(t, json.Unmarshal([]byte(tt.in), &doc))
			require.Equal(t, tt.found, store.ScrubJSON(doc, "vs_1"))
			got, err := json.Marshal(doc)
			require.NoError(t, err)
			require.JSONEq(t, tt.want, string(got))

			// Scrubbing is idempotent: a second pass changes nothing.
			store.ScrubJSON(doc, "vs_1")
			again, err := json.Marshal(doc)
			require.NoError(t, err)
			require.JSONEq(t, string(got), string(again))
		})
	}
}

func TestScrubJSONBytes(t *testing.T) {
	t.Parallel()
	t.Run("Scrubs", func(t *testing.T) {
		t.Parallel()
		out, ok := store.ScrubJSONBytes([]byte(fullSession), "vs_1")
		require.True(t, ok)
		require.JSONEq(t, fullSessionScrubbed, string(out))
	})
	t.Run("NotMentionedIsUnchanged", func(t *testing.T) {
		t.Parallel()
		out, ok := store.ScrubJSONBytes([]byte(otherSession), "vs_1")
		require.False(t, ok)
		require.Equal(t, otherSession, string(out))
	})
	t.Run("NotJSONIsUnchanged", func(t *testing.T) {
		t.Parallel()
		in := []byte(`vs_1 is not json {`)
		out, ok := store.ScrubJSONBytes(in, "vs_1")
		require.False(t, ok)
		require.Equal(t, string(in), string(out))
	})
}

func TestScrubTyped(t *testing.T) {
	t.Parallel()
	t.Run("Session", func(t *testing.T) {
		t.Parallel()
		var sess store.Session
		require.NoError(t, json.Unmarshal([]byte(fullSession), &sess))
		require.NoError(t, store.ScrubSession(&sess))
		got, err := json.Marshal(&sess)
		require.NoError(t, err)
		var want store.Session
		require.NoError(t, json.Unmarshal([]byte(fullSessionScrubbed), &want))
		wantBody, err := json.Marshal(&want)
		require.NoError(t, err)
		require.JSONEq(t, string(wantBody), string(got))
		require.Equal(t, store.Redacted, *sess.VerifiedOutputs.Sex)
		require.Nil(t, sess.VerifiedOutputs.Dob)
		require.Empty(t, sess.Metadata)
		require.NotNil(t, sess.Metadata)
	})
}

func TestScrubParams(t *testing.T) {
	t.Parallel()
	p := func(kv ...string) []store.Param {
		out := []store.Param{}
		for i := 0; i < len(kv); i += 2 {
			out = append(out, store.Param{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	tests := []struct {
		name string
		in   []store.Param
		want []store.Param
	}{
		{name: "Empty", in: p(), want: p()},
		{
			name: "CreateKeepsNonPersonal",
			in: p("type", "document", "client_reference_id", "ref_1", "related_customer", "cus_1",
				"options[document][require_matching_selfie]", "true", "expand[0]", "verified_outputs",
				"return_url", "https://shop.example/ada", "related_person[account]", "acct_1"),
			want: p("type", "document", "client_reference_id", "ref_1", "related_customer", "cus_1",
				"options[document][require_matching_selfie]", "true", "expand[0]", "verified_outputs",
				"return_url", store.Redacted, "related_person[account]", "acct_1"),
		},
		{
			name: "MetadataKeysDroppedWhole",
			in:   p("metadata[ada_lovelace]", "born 1815", "metadata", "", "type", "id_number"),
			want: p("type", "id_number"),
		},
		{
			name: "ProvidedDetailsRedacted",
			in:   p("provided_details[email]", "ada@example.com", "provided_details[phone]", "+1555"),
			want: p("provided_details[email]", store.Redacted, "provided_details[phone]", store.Redacted),
		},
		{
			name: "SubmissionKeepsOutcomeAndCodes",
			in: p("outcome", "requires_input", "last_error[code]", "document_expired", "last_error[reason]", "my reason",
				"verified_outputs[first_name]", "Ada", "verified_outputs[dob][year]", "1815",
				"verified_outputs[address][line1]", "1 Lovelace Rd", "document[type]", "passport",
				"document[number]", "P123", "document[files][0]", "file_front", "document[expiration_date][day]", "1"),
			want: p("outcome", "requires_input", "last_error[code]", "document_expired", "last_error[reason]", store.Redacted,
				"verified_outputs[first_name]", store.Redacted, "verified_outputs[dob][year]", store.Redacted,
				"verified_outputs[address][line1]", store.Redacted, "document[type]", "passport",
				"document[number]", store.Redacted, "document[files][0]", store.Redacted, "document[expiration_date][day]", store.Redacted),
		},
		{
			name: "ListParamsKept",
			in: p("limit", "3", "starting_after", "vs_1", "created[gte]", "1", "status", "verified",
				"verification_session", "vs_1", "object", "vs_1", "types[0]", "identity.verification_session.redacted"),
			want: p("limit", "3", "starting_after", "vs_1", "created[gte]", "1", "status", "verified",
				"verification_session", "vs_1", "object", "vs_1", "types[0]", "identity.verification_session.redacted"),
		},
		{
			name: "PrefixIsNotAMatch",
			in:   p("typeahead", "Ada", "metadatax", "Ada", "expanded", "Ada"),
			want: p("typeahead", store.Redacted, "metadatax", store.Redacted, "expanded", store.Redacted),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := slices.Clone(tt.in)
			got := store.ScrubParams(in)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.in, in, "ScrubParams must not change its input")
			require.Equal(t, got, store.ScrubParams(got), "idempotent")
		})
	}
}
