package store

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func ptr[T any](v T) *T { return &v }

// fullSession sets every field the scrub rules look at, and every field they keep.
func fullSession() *Session {
	day, month, year := int64(1), int64(2), int64(1990)
	return &Session{ID: "vs_fast", Object: "identity.verification_session", ClientReferenceID: ptr("ref-1"),
		ClientSecret: ptr("vs_fast_secret_x"), Created: 1700000000, LastError: &LastError{Code: ptr("document_expired")},
		LastVerificationReport: ptr("vr_1"), Metadata: map[string]string{"name": "Jane <Roe> & co"},
		Options:         &Options{Document: &DocumentOptions{AllowedTypes: []string{"passport"}, RequireIDNumber: ptr(true)}},
		ProvidedDetails: &ProvidedDetails{Email: ptr("jane@example.com"), Phone: ptr("+15555550100")},
		Redaction:       &Redaction{Status: RedactionProcessing}, RelatedCustomer: ptr("cus_1"),
		RelatedPerson: &RelatedPerson{Account: "acct_1", Person: "person_1"}, Status: StatusVerified, Type: "document",
		URL: ptr("https://verify.example/vs_fast"),
		VerifiedOutputs: &VerifiedOutputs{
			Address: &Address{City: ptr("Berlin"), Country: ptr("DE"), Line1: ptr("Main St 1"), Line2: nil,
				PostalCode: ptr("10115"), State: ptr("BE")},
			Dob: &Date{Day: &day, Month: &month, Year: &year}, Email: ptr("jane@example.com"), FirstName: ptr("Jane"),
			IDNumber: ptr("123-45-6789"), IDNumberType: ptr("us_ssn"), LastName: ptr("Roe"), Phone: ptr("+15555550100"),
			Sex: ptr("female"), UnparsedPlaceOfBirth: ptr("Springfield"), UnparsedSex: nil,
		}}
}

func jsonValue(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(raw, &v))
	return v
}

func TestScrubSessionFields_MatchesJSONRules(t *testing.T) {
	t.Parallel()
	for name, s := range map[string]*Session{
		"Full": fullSession(),
		"Sparse": func() *Session {
			s := fullSession()
			s.ProvidedDetails, s.VerifiedOutputs, s.RelatedPerson = &ProvidedDetails{Phone: ptr("1")}, nil, nil
			return s
		}(),
		"EmptyAddress": func() *Session {
			s := fullSession()
			s.VerifiedOutputs.Address = &Address{}
			return s
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			body, err := json.Marshal(s)
			require.NoError(t, err)
			var viaJSON, typed Session // two deep copies
			require.NoError(t, json.Unmarshal(body, &viaJSON))
			require.NoError(t, json.Unmarshal(body, &typed))
			require.NoError(t, ScrubSession(&viaJSON))
			scrubSessionFields(&typed)
			want, err := json.Marshal(&viaJSON)
			require.NoError(t, err)
			got, err := json.Marshal(&typed)
			require.NoError(t, err)
			require.JSONEq(t, string(want), string(got))
			require.NotContains(t, string(got), "Jane")
		})
	}
}

func TestScrubEventBytes_MatchesJSONRules(t *testing.T) {
	t.Parallel()
	s := fullSession()
	ev := newEvent(1700000001, Scope{Account: "acct_1"}, EventSessionCanceled, sessionSnapshot(s), Origin{RequestID: "req_1"})
	raw, err := json.Marshal(ev)
	require.NoError(t, err)
	want, changed := ScrubJSONBytes(raw, s.ID)
	require.True(t, changed)

	got := scrubEventBytes(raw, s.ID)
	require.Equal(t, jsonValue(t, want), jsonValue(t, got))
	require.NotContains(t, string(got), "jane@example.com")
	require.Equal(t, string(got), string(scrubEventBytes(got, s.ID)), "idempotent")

	require.Equal(t, string(raw), string(scrubEventBytes(raw, "vs_other")), "another session's scrub changes nothing")

	// A snapshot not in sessionSnapshot's exact shape (keys sorted, as the JSON rules write them) takes the
	// JSON rules.
	var generic map[string]any
	require.NoError(t, json.Unmarshal(raw, &generic))
	sorted, err := json.Marshal(generic)
	require.NoError(t, err)
	require.Equal(t, jsonValue(t, want), jsonValue(t, scrubEventBytes(sorted, s.ID)))
}
