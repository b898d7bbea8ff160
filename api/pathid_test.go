package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// Ids become parts of Redis keys, so an id that is not shaped like one identityd issues must never reach a key:
// "vs_X:submission" would name the stored submission of vs_X, "vs_X:events" its event set.
func TestPathIDs_MalformedAreMissingAndChangeNothing(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	vs := b.createSession(t, keyA, "type=document&metadata[k]=v")
	require.Equal(t, http.StatusOK, b.post(t, "/v1/test_helpers/identity/verification_sessions/"+vs+"/submit",
		"verified_outputs[first_name]=Canary").status)
	before := b.snapshot(t)

	for _, id := range []string{vs + "%3Asubmission", vs + "%3Aevents", vs + "%7Bx%7D", "vs_", "_abc", "VS_abc",
		"vs_a%2Ab", "vs_a%20b", "br_x%3Acursor"} {
		for _, rq := range []request{
			{method: http.MethodGet, path: "/v1/identity/verification_sessions/" + id + "?expand[]=verified_outputs"},
			{method: http.MethodPost, path: "/v1/identity/verification_sessions/" + id + "/redact"},
			{method: http.MethodPost, path: "/v1/identity/verification_sessions/" + id + "/cancel"},
			{method: http.MethodGet, path: "/v1/identity/verification_reports/" + id},
			{method: http.MethodGet, path: "/v1/events/" + id},
			{method: http.MethodGet, path: "/v1/identity/bulk_redactions/" + id},
			{method: http.MethodGet, path: "/v1/identity/verification_sessions?starting_after=" + id},
			{method: http.MethodGet, path: "/v1/identity/verification_reports?verification_session=" + id},
			{method: http.MethodGet, path: "/v1/request_logs?object=" + id},
		} {
			rq.key = keyA
			resp := b.do(t, rq)
			require.True(t, resp.status == http.StatusNotFound || resp.status == http.StatusBadRequest,
				"%s %s: status %d %s", rq.method, rq.path, resp.status, resp.raw)
			require.NotContains(t, resp.raw, "Canary", "%s %s", rq.method, rq.path)
		}
	}
	requireUnchanged(t, before, b.snapshot(t), "malformed ids")
}
