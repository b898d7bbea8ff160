package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

// verifiedSession makes a verified session whose report has a document and an id number check, and returns
// the session id and its report id.
func (b *apiBundle) verifiedSession(t *testing.T) (string, string) {
	t.Helper()
	return b.checkedSession(t, "")
}

// checkedSession is verifiedSession with extra submission parameters (outcome=requires_input&…).
func (b *apiBundle) checkedSession(t *testing.T, extra string) (string, string) {
	t.Helper()
	id := b.createSession(t, keyA, "type=document&options[document][require_id_number]=true")
	sub := b.post(t, "/v1/test_helpers/identity/verification_sessions/"+id+"/submit", extra+
		"verified_outputs[first_name]=Ada&verified_outputs[last_name]=Lovelace&verified_outputs[id_number]=123-45-6789"+
		"&verified_outputs[id_number_type]=us_ssn&verified_outputs[dob][day]=10&verified_outputs[dob][month]=12"+
		"&verified_outputs[dob][year]=1915&document[number]=AB123456")
	require.Equal(t, http.StatusOK, sub.status, sub.raw)
	_, _, _, err := b.st.CompleteVerification(context.Background(), store.Scope{Account: "acct_alpha"}, id, "")
	require.NoError(t, err)
	res := b.get(t, "/v1/identity/verification_sessions/"+id)
	report := res.str("last_verification_report")
	require.NotEmpty(t, report, res.raw)
	return id, report
}

func TestShapes_VerifiedOutputs(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	const sessions = "/v1/identity/verification_sessions/"

	fresh := b.createSession(t, keyA, "type=document")
	res := b.get(t, sessions+fresh+"?expand[]=verified_outputs")
	requireMember(t, res.raw, `null`, "verified_outputs")
	res = b.get(t, sessions+fresh+"?expand[]=verified_outputs.dob")
	requireMember(t, res.raw, `null`, "verified_outputs")
	requireAbsent(t, b.get(t, sessions+fresh).raw, "verified_outputs")

	id, _ := b.verifiedSession(t)
	res = b.get(t, sessions+id+"?expand[]=verified_outputs")
	requireMember(t, res.raw, `"Ada"`, "verified_outputs", "first_name")
	requireAbsent(t, res.raw, "verified_outputs", "dob")
	requireAbsent(t, res.raw, "verified_outputs", "id_number")
	res = b.get(t, sessions+id+"?expand[]=verified_outputs.dob&expand[]=verified_outputs.id_number")
	requireMember(t, res.raw, `{"day":10,"month":12,"year":1915}`, "verified_outputs", "dob")
	requireMember(t, res.raw, `"123-45-6789"`, "verified_outputs", "id_number")

	redact := b.post(t, sessions+id+"/redact", "")
	require.Equal(t, http.StatusOK, redact.status, redact.raw)
	_, err := b.st.CompleteRedaction(context.Background(), store.Scope{Account: "acct_alpha"}, id)
	require.NoError(t, err)
	res = b.get(t, sessions+id+"?expand[]=verified_outputs.dob&expand[]=verified_outputs.id_number")
	requireMember(t, res.raw, `null`, "verified_outputs", "dob")
	requireMember(t, res.raw, `"[redacted]"`, "verified_outputs", "id_number")
}

func TestShapes_ReportSensitiveFieldsOnlyWhenExpanded(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	id, report := b.verifiedSession(t)
	sensitive := [][]string{{"document", "dob"}, {"document", "number"}, {"id_number", "dob"}, {"id_number", "id_number"}}

	plain := b.get(t, "/v1/identity/verification_reports/"+report)
	require.Equal(t, http.StatusOK, plain.status, plain.raw)
	requireMember(t, plain.raw, `"verified"`, "document", "status")
	requireMember(t, plain.raw, `"Lovelace"`, "id_number", "last_name")
	for _, p := range sensitive {
		requireAbsent(t, plain.raw, p...)
	}
	list := b.get(t, "/v1/identity/verification_reports?verification_session="+id)
	require.Equal(t, http.StatusOK, list.status, list.raw)
	session := b.get(t, "/v1/identity/verification_sessions/"+id+"?expand[]=last_verification_report")
	for _, p := range sensitive {
		requireAbsent(t, session.raw, append([]string{"last_verification_report"}, p...)...)
	}
	for _, value := range []string{"AB123456", "1915", "123-45-6789"} {
		require.NotContains(t, list.raw, value, "a listed report without expansions")
	}

	all := "?expand[]=document.dob&expand[]=document.number&expand[]=id_number.dob&expand[]=id_number.id_number"
	full := b.get(t, "/v1/identity/verification_reports/"+report+all)
	require.Equal(t, http.StatusOK, full.status, full.raw)
	requireMember(t, full.raw, `"AB123456"`, "document", "number")
	requireMember(t, full.raw, `{"day":10,"month":12,"year":1915}`, "document", "dob")
	requireMember(t, full.raw, `"123-45-6789"`, "id_number", "id_number")
	requireMember(t, full.raw, `{"day":10,"month":12,"year":1915}`, "id_number", "dob")
	one := b.get(t, "/v1/identity/verification_reports/"+report+"?expand[]=document.number")
	requireMember(t, one.raw, `"AB123456"`, "document", "number")
	requireAbsent(t, one.raw, "document", "dob")

	listed := b.get(t, "/v1/identity/verification_reports?verification_session="+id+"&expand[]=data.document.number")
	require.Equal(t, http.StatusOK, listed.status, listed.raw)
	require.Contains(t, listed.raw, `"number":"AB123456"`)
	nested := b.get(t, "/v1/identity/verification_sessions/"+id+"?expand[]=last_verification_report.document.dob&expand[]=last_verification_report.id_number.id_number")
	require.Equal(t, http.StatusOK, nested.status, nested.raw)
	requireMember(t, nested.raw, `{"day":10,"month":12,"year":1915}`, "last_verification_report", "document", "dob")
	requireMember(t, nested.raw, `"123-45-6789"`, "last_verification_report", "id_number", "id_number")
	requireAbsent(t, nested.raw, "last_verification_report", "document", "number")
	sessions := b.get(t, "/v1/identity/verification_sessions?expand[]=data.last_verification_report.document.number")
	require.Equal(t, http.StatusOK, sessions.status, sessions.raw)
	require.Contains(t, sessions.raw, `"number":"AB123456"`)

	for _, bad := range []string{"document.address", "document", "data.document.dob"} {
		res := b.get(t, "/v1/identity/verification_reports/"+report+"?expand[]="+bad)
		require.Equal(t, http.StatusBadRequest, res.status, "%s: %s", bad, res.raw)
	}
	res := b.get(t, "/v1/identity/verification_reports?expand[]=document.dob")
	require.Equal(t, http.StatusBadRequest, res.status, res.raw)
}

// TestShapes_ReportReplaysKeepTheirExpansions: a logged report answer renders with the expansions it was
// answered with, as a list and as one report, and a replayed session keeps its nested report expansions.
func TestShapes_ReportReplaysKeepTheirExpansions(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	id, report := b.verifiedSession(t)
	one := b.get(t, "/v1/identity/verification_reports/"+report+"?expand[]=document.number")
	list := b.get(t, "/v1/identity/verification_reports?verification_session="+id+"&expand[]=data.id_number.id_number")
	plain := b.get(t, "/v1/identity/verification_reports/"+report)
	logs := b.get(t, "/v1/request_logs?limit=100")
	require.Equal(t, http.StatusOK, logs.status, logs.raw)
	var page struct {
		Data []struct {
			Path     string          `json:"path"`
			Query    json.RawMessage `json:"query"`
			Response json.RawMessage `json:"response"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(logs.raw), &page))
	var bodies []string
	for _, l := range page.Data {
		bodies = append(bodies, string(l.Response))
	}
	for _, want := range []*response{one, list, plain} {
		found := false
		for _, got := range bodies {
			if jsonEqual(got, want.raw) {
				found = true
			}
		}
		require.True(t, found, "a log renders %s\nlogs: %v", want.raw, bodies)
	}

	// A session back in requires_input can still be updated, with its report expanded.
	id, _ = b.checkedSession(t, "outcome=requires_input&")
	const sessions = "/v1/identity/verification_sessions/"
	form := "metadata[a]=b&expand[]=last_verification_report.document.dob"
	first := b.idemPost(t, sessions+id, form, "nested-1")
	require.Equal(t, http.StatusOK, first.status, first.raw)
	requireMember(t, first.raw, `{"day":10,"month":12,"year":1915}`, "last_verification_report", "document", "dob")
	replay := b.idemPost(t, sessions+id, form, "nested-1")
	require.Equal(t, "true", replay.header.Get("Idempotent-Replayed"))
	require.Equal(t, first.raw, replay.raw)
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
