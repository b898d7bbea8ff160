package api_test

import (
	"fmt"
	"math/rand"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// badCase is one request that must be rejected: a 4xx with a Stripe-shaped error and no change to the store.
type badCase struct {
	name   string
	rq     request
	status int
	typ    string // default invalid_request_error
	code   string
	param  string
}

func metadataKeys(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "&metadata[k%d]=v", i)
	}
	return b.String()
}

func TestAPI_MalformedRequestsChangeNothing(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	const sessions = "/v1/identity/verification_sessions"
	open := b.createSession(t, keyA, "type=document&metadata[order]=1")
	canceled := b.createSession(t, keyA, "type=document")
	require.Equal(t, http.StatusOK, b.post(t, sessions+"/"+canceled+"/cancel", "").status)
	processing := b.createSession(t, keyA, "type=document")
	require.Equal(t, http.StatusOK, b.post(t, "/v1/test_helpers/identity/verification_sessions/"+processing+"/submit", "").status)
	other := b.createSession(t, keyB, "type=document")
	live := b.createSession(t, liveKeyA, "type=document")

	post := func(path, body string) request {
		return request{method: http.MethodPost, path: path, key: keyA, body: body}
	}
	get := func(path string) request { return request{method: http.MethodGet, path: path, key: keyA} }
	withHeader := func(rq request, k, v string) request { rq.header = map[string]string{k: v}; return rq }
	huge := "type=document&client_reference_id=" + strings.Repeat("x", 1<<20)

	cases := []badCase{
		{name: "UnknownParam", rq: post(sessions, "type=document&colour=blue"), status: 400, code: "parameter_unknown", param: "colour"},
		{name: "UnknownNestedParam", rq: post(sessions, "type=document&options[document][require_magic]=true"), status: 400, code: "parameter_unknown", param: "options[document][require_magic]"},
		{name: "UnknownParamOnGet", rq: get(sessions + "/" + open + "?colour=blue"), status: 400, code: "parameter_unknown", param: "colour"},
		{name: "UnknownParamOnCancel", rq: post(sessions+"/"+open+"/cancel", "reason=x"), status: 400, code: "parameter_unknown", param: "reason"},
		{name: "MissingType", rq: post(sessions, "client_reference_id=x"), status: 400, code: "parameter_missing", param: "type"},
		{name: "BadEnum", rq: post(sessions, "type=passport"), status: 400, code: "parameter_invalid", param: "type"},
		{name: "BadStatusFilter", rq: get(sessions + "?status=done"), status: 400, code: "parameter_invalid", param: "status"},
		{name: "BadAllowedType", rq: post(sessions, "type=document&options[document][allowed_types][0]=library_card"), status: 400, code: "parameter_invalid", param: "options[document][allowed_types]"},
		{name: "BadBoolean", rq: post(sessions, "type=document&options[document][require_matching_selfie]=yes"), status: 400, code: "parameter_invalid", param: "options[document][require_matching_selfie]"},
		{name: "BadInteger", rq: get(sessions + "?limit=ten"), status: 400, code: "parameter_invalid_integer", param: "limit"},
		{name: "BadCreated", rq: get(sessions + "?created=yesterday"), status: 400, code: "parameter_invalid_integer", param: "created"},
		{name: "BadCreatedRange", rq: get(sessions + "?created[gte]=1.5"), status: 400, code: "parameter_invalid_integer", param: "created[gte]"},
		{name: "CreatedExactAndRange", rq: get(sessions + "?created=5&created[lt]=9"), status: 400, code: "parameter_invalid", param: "created"},
		{name: "LimitZero", rq: get(sessions + "?limit=0"), status: 400, code: "parameter_invalid", param: "limit"},
		{name: "Limit101", rq: get(sessions + "?limit=101"), status: 400, code: "parameter_invalid", param: "limit"},
		{name: "BothCursors", rq: get(sessions + "?starting_after=" + open + "&ending_before=" + open), status: 400, code: "parameter_invalid", param: "ending_before"},
		{name: "UnknownCursor", rq: get(sessions + "?starting_after=vs_nope"), status: 404, code: "resource_missing", param: "starting_after"},
		{name: "OtherAccountsCursor", rq: get(sessions + "?ending_before=" + other), status: 404, code: "resource_missing", param: "ending_before"},
		{name: "MetadataTooManyKeys", rq: post(sessions, "type=document"+metadataKeys(51)), status: 400, code: "parameter_invalid", param: "metadata"},
		{name: "MetadataKeyTooLong", rq: post(sessions, "type=document&metadata["+strings.Repeat("k", 41)+"]=v"), status: 400, code: "parameter_invalid", param: "metadata"},
		{name: "MetadataValueTooLong", rq: post(sessions, "type=document&metadata[k]="+strings.Repeat("v", 501)), status: 400, code: "parameter_invalid", param: "metadata[k]"},
		{name: "MetadataNotAHash", rq: post(sessions+"/"+open, "metadata=x"), status: 400, code: "parameter_invalid", param: "metadata"},
		{name: "MetadataOverLimitOnUpdate", rq: post(sessions+"/"+open, metadataKeys(51)[1:]), status: 400, code: "parameter_invalid", param: "metadata"},
		{name: "StringTooLong", rq: post(sessions, "type=document&client_reference_id="+strings.Repeat("x", 5001)), status: 400, code: "parameter_invalid", param: "client_reference_id"},
		{name: "BadEmail", rq: post(sessions, "type=document&provided_details[email]=nobody"), status: 400, code: "email_invalid", param: "provided_details[email]"},
		{name: "BadReturnURL", rq: post(sessions, "type=document&return_url=javascript:alert(1)"), status: 400, code: "url_invalid", param: "return_url"},
		{name: "EmptyRelatedCustomer", rq: post(sessions, "type=document&related_customer="), status: 400, code: "parameter_invalid", param: "related_customer"},
		{name: "BodyOver1MiB", rq: post(sessions, huge), status: 413, code: "request_too_large"},
		{name: "BadExpand", rq: post(sessions, "type=document&expand[0]=client_secret"), status: 400, code: "parameter_invalid", param: "expand"},
		{name: "BadExpandBare", rq: get(sessions + "/" + open + "?expand=verified_outputs"), status: 400, code: "parameter_invalid", param: "expand"},
		{name: "ListExpandWithoutData", rq: get(sessions + "?expand[]=verified_outputs"), status: 400, code: "parameter_invalid", param: "expand"},
		{name: "MalformedKey", rq: post(sessions, "type=document&metadata[a=1"), status: 400, code: "parameter_invalid", param: "metadata[a"},
		{name: "BadPercentEncoding", rq: post(sessions, "type=docu%zzment"), status: 400, code: "parameter_invalid", param: "type"},
		{name: "BadPercentEncodingInQuery", rq: get(sessions + "?limit=%G1"), status: 400, code: "parameter_invalid", param: "limit"},
		{name: "MissingAuth", rq: request{method: http.MethodPost, path: sessions, body: "type=document"}, status: 401},
		{name: "MissingAuthOnGet", rq: request{method: http.MethodGet, path: sessions}, status: 401},
		{name: "UnknownKey", rq: request{method: http.MethodPost, path: sessions, key: "sk_test_nobody000000000000000", body: "type=document"}, status: 401},
		{name: "UnknownKeyBasic", rq: withHeader(request{method: http.MethodGet, path: sessions}, "Authorization", "Basic c2tfdGVzdF9ub2JvZHk6"), status: 401},
		{name: "PublishableKey", rq: request{method: http.MethodGet, path: sessions, key: "pk_test_alpha0000000000000000"}, status: 401},
		{name: "WrongContentType", rq: withHeader(post(sessions, `{"type":"document"}`), "Content-Type", "application/json"), status: 400, code: "parameter_invalid"},
		{name: "IdempotencyKeyTooLong", rq: withHeader(post(sessions, "type=document"), "Idempotency-Key", strings.Repeat("k", 256)), status: 400, code: "parameter_invalid", param: "Idempotency-Key"},
		{name: "UpdateCanceled", rq: post(sessions+"/"+canceled, "metadata[a]=1"), status: 400, code: "status_transition_invalid"},
		{name: "CancelCanceled", rq: post(sessions+"/"+canceled+"/cancel", ""), status: 400, code: "status_transition_invalid"},
		{name: "CancelProcessing", rq: post(sessions+"/"+processing+"/cancel", ""), status: 400, code: "status_transition_invalid"},
		{name: "RedactProcessing", rq: post(sessions+"/"+processing+"/redact", ""), status: 400, code: "status_transition_invalid"},
		{name: "SubmitProcessing", rq: post("/v1/test_helpers/identity/verification_sessions/"+processing+"/submit", ""), status: 400, code: "status_transition_invalid"},
		{name: "SubmitWithLiveKey", rq: request{method: http.MethodPost, path: "/v1/test_helpers/identity/verification_sessions/" + live + "/submit", key: liveKeyA}, status: 400, code: "testmode_only"},
		{name: "SubmitBadDate", rq: post("/v1/test_helpers/identity/verification_sessions/"+open+"/submit", "verified_outputs[dob][month]=13"), status: 400, code: "parameter_invalid", param: "verified_outputs[dob][month]"},
		{name: "SubmitErrorWithVerified", rq: post("/v1/test_helpers/identity/verification_sessions/"+open+"/submit", "last_error[code]=document_expired"), status: 400, code: "parameter_invalid", param: "last_error"},
		{name: "RetrieveOtherAccount", rq: get(sessions + "/" + other), status: 404, code: "resource_missing", param: "id"},
		{name: "UpdateOtherAccount", rq: post(sessions+"/"+other, "metadata[a]=1"), status: 404, code: "resource_missing", param: "id"},
		{name: "CancelOtherAccount", rq: post(sessions+"/"+other+"/cancel", ""), status: 404, code: "resource_missing", param: "id"},
		{name: "RedactOtherAccount", rq: post(sessions+"/"+other+"/redact", ""), status: 404, code: "resource_missing", param: "id"},
		{name: "RetrieveLiveWithTestKey", rq: get(sessions + "/" + live), status: 404, code: "resource_missing", param: "id"},
		{name: "RetrieveMissing", rq: get(sessions + "/vs_nope"), status: 404, code: "resource_missing", param: "id"},
		{name: "RedactionRecordNeverRedacted", rq: get(sessions + "/" + open + "/redaction"), status: 404, code: "resource_missing", param: "id"},
		{name: "EventMissing", rq: get("/v1/events/evt_nope"), status: 404, code: "resource_missing", param: "id"},
		{name: "EventBadType", rq: get("/v1/events?type=charge.succeeded"), status: 400, code: "parameter_invalid", param: "type"},
		{name: "EventBadTypes", rq: get("/v1/events?types[0]=identity.verification_session.created&types[1]=nope"), status: 400, code: "parameter_invalid", param: "types"},
		{name: "ReportMissing", rq: get("/v1/identity/verification_reports/vr_nope"), status: 404, code: "resource_missing", param: "id"},
		{name: "RequestLogsCreated", rq: get("/v1/request_logs?object=" + open + "&created=1"), status: 400, code: "parameter_unknown", param: "created"},
		{name: "UnknownRoute", rq: get("/v1/charges"), status: 404, code: "resource_missing"},
		{name: "UnknownRouteWithoutAuth", rq: request{method: http.MethodGet, path: "/nope"}, status: 404, code: "resource_missing"},
		{name: "WrongMethod", rq: request{method: http.MethodDelete, path: sessions + "/" + open, key: keyA}, status: 404, code: "resource_missing"},
	}
	require.GreaterOrEqual(t, len(cases), 20)
	for _, tc := range cases {
		before := b.snapshot(t)
		res := b.do(t, tc.rq)
		require.Equal(t, tc.status, res.status, "%s: %s", tc.name, res.raw)
		wantType := tc.typ
		if wantType == "" {
			wantType = "invalid_request_error"
		}
		require.Equal(t, wantType, res.errField("type"), tc.name)
		require.Equal(t, tc.code, res.errField("code"), tc.name)
		require.Equal(t, tc.param, res.errField("param"), tc.name)
		require.NotEmpty(t, res.errField("message"), tc.name)
		requireUnchanged(t, before, b.snapshot(t), tc.name)
	}
	_, redacts := b.queue.calls()
	require.Empty(t, redacts, "no rejected request enqueued anything")
}

func TestAPI_CrossAccountLooksExactlyLikeMissing(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	other := b.createSession(t, keyB, "type=document")
	for _, op := range []struct{ method, suffix, body string }{
		{http.MethodGet, "", ""}, {http.MethodPost, "", "metadata[a]=1"}, {http.MethodPost, "/cancel", ""},
		{http.MethodPost, "/redact", ""}, {http.MethodGet, "/redaction", ""},
	} {
		theirs := b.do(t, request{method: op.method, path: "/v1/identity/verification_sessions/" + other + op.suffix, key: keyA, body: op.body})
		missing := b.do(t, request{method: op.method, path: "/v1/identity/verification_sessions/vs_AAAAAAAAAAAAAAAAAAAAAAAA" + op.suffix, key: keyA, body: op.body})
		require.Equal(t, http.StatusNotFound, theirs.status, theirs.raw)
		require.Equal(t, missing.status, theirs.status)
		require.Equal(t, missing.body, theirs.body, "%s %s", op.method, op.suffix)
	}
	res := b.do(t, request{method: http.MethodGet, path: "/v1/identity/verification_sessions/" + other, key: keyB})
	require.Equal(t, http.StatusOK, res.status, "the owner still sees it")
	list := b.get(t, "/v1/identity/verification_sessions")
	require.Empty(t, list.body["data"])
}

// TestAPI_NoServerErrors throws mangled Stripe bodies and queries at every route: any answer but a 5xx is fine,
// and every 4xx is Stripe-shaped.
func TestAPI_NoServerErrors(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	id := b.createSession(t, keyA, "type=document")
	routes := []struct{ method, path string }{
		{http.MethodPost, "/v1/identity/verification_sessions"},
		{http.MethodGet, "/v1/identity/verification_sessions"},
		{http.MethodGet, "/v1/identity/verification_sessions/" + id},
		{http.MethodPost, "/v1/identity/verification_sessions/" + id},
		{http.MethodGet, "/v1/identity/verification_reports"},
		{http.MethodGet, "/v1/events"},
		{http.MethodGet, "/v1/request_logs"},
	}
	pieces := []string{"type", "document", "id_number", "metadata", "[", "]", "[]", "[0]", "=", "&", "%", "%5B", "%5D",
		"%zz", "+", "expand", "data.", "verified_outputs", "created", "[gte]", "[lt]", "-1", "9999999999999999999999",
		"limit", "starting_after", "ending_before", id, "vs_x", "options", "[document]", "[allowed_types]", "passport",
		"true", "status", "canceled", "types", "object", "client_reference_id", "provided_details", "[email]", "a@b", "\x00", "é"}
	rng := rand.New(rand.NewSource(1))
	for i := range 300 {
		var sb strings.Builder
		for j := rng.Intn(12); j >= 0; j-- {
			sb.WriteString(pieces[rng.Intn(len(pieces))])
		}
		raw := sb.String()
		rt := routes[i%len(routes)]
		rq := request{method: rt.method, path: rt.path, key: keyA}
		if rt.method == http.MethodPost {
			rq.body = raw
		} else {
			rq.path += "?" + strings.NewReplacer("\x00", "%00", " ", "+", "#", "%23").Replace(raw)
			if _, err := url.ParseRequestURI(rq.path); err != nil {
				continue
			}
		}
		res := b.do(t, rq)
		require.Less(t, res.status, 500, "%s %s %q: %s", rq.method, rt.path, raw, res.raw)
		if res.status >= 400 {
			require.NotEmpty(t, res.errField("type"), res.raw)
			require.NotEmpty(t, res.errField("message"), res.raw)
		}
	}
}

func TestAPI_Idempotency(t *testing.T) {
	t.Parallel()
	const sessions = "/v1/identity/verification_sessions"
	withKey := func(k, body string) request {
		return request{method: http.MethodPost, path: sessions, key: keyA, body: body, header: map[string]string{"Idempotency-Key": k}}
	}
	t.Run("ReplayReturnsTheSameBody", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		first := b.do(t, withKey("order-1", "type=document&metadata[order]=1"))
		require.Equal(t, http.StatusOK, first.status)
		require.Equal(t, "order-1", first.header.Get("Idempotency-Key"))
		require.Empty(t, first.header.Get("Idempotent-Replayed"))

		before := b.snapshot(t)
		// Same parameters in another order are the same request.
		again := b.do(t, withKey("order-1", "metadata[order]=1&type=document"))
		require.Equal(t, http.StatusOK, again.status)
		require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
		require.Equal(t, "order-1", again.header.Get("Idempotency-Key"))
		require.Equal(t, first.raw, again.raw)
		require.NotEqual(t, first.header.Get("Request-Id"), again.header.Get("Request-Id"))
		requireUnchanged(t, before, b.snapshot(t), "a replay")

		list := b.get(t, sessions)
		require.Len(t, list.body["data"], 1)

		t.Run("DifferentParams", func(t *testing.T) {
			before := b.snapshot(t)
			res := b.do(t, withKey("order-1", "type=id_number"))
			require.Equal(t, http.StatusBadRequest, res.status)
			require.Equal(t, "idempotency_error", res.errField("type"))
			require.Equal(t, "order-1", res.header.Get("Idempotency-Key"))
			requireUnchanged(t, before, b.snapshot(t), "a rejected request")
			res = b.do(t, request{method: http.MethodPost, path: sessions + "/" + first.str("id") + "/cancel", key: keyA,
				header: map[string]string{"Idempotency-Key": "order-1"}})
			require.Equal(t, "idempotency_error", res.errField("type"), "another endpoint is another request")
			requireUnchanged(t, before, b.snapshot(t), "a rejected request")
		})
		t.Run("OtherAccountHasItsOwnKeys", func(t *testing.T) {
			rq := withKey("order-1", "type=id_number")
			rq.key = keyB
			res := b.do(t, rq)
			require.Equal(t, http.StatusOK, res.status)
			require.Empty(t, res.header.Get("Idempotent-Replayed"))
		})
	})
	t.Run("RejectedRequestIsNotSaved", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.do(t, withKey("k", "type=passport"))
		require.Equal(t, http.StatusBadRequest, res.status)
		res = b.do(t, withKey("k", "type=document"))
		require.Equal(t, http.StatusOK, res.status, "the key is free again once a request was rejected: %s", res.raw)
		require.Empty(t, res.header.Get("Idempotent-Replayed"))
	})
	t.Run("ConcurrentUseIs409", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		id := b.createSession(t, keyA, "type=document")
		gate := make(chan struct{})
		b.queue.mu.Lock()
		b.queue.entered, b.queue.gate = make(chan struct{}, 1), gate
		b.queue.mu.Unlock()
		redact := request{method: http.MethodPost, path: sessions + "/" + id + "/redact", key: keyA,
			header: map[string]string{"Idempotency-Key": "redact-1"}}
		var wg sync.WaitGroup
		var first *response
		var firstErr error
		wg.Go(func() {
			first, firstErr = b.tryDo(redact)
		})
		<-b.queue.entered // the first request holds the key, inside its handler
		before := b.snapshot(t)
		res := b.do(t, redact)
		require.Equal(t, http.StatusConflict, res.status, res.raw)
		require.Equal(t, "idempotency_key_in_use", res.errField("code"))
		require.Equal(t, "invalid_request_error", res.errField("type"))
		requireUnchanged(t, before, b.snapshot(t), "a rejected request")
		close(gate)
		wg.Wait()
		require.NoError(t, firstErr)
		require.Equal(t, http.StatusOK, first.status, first.raw)

		b.queue.mu.Lock()
		b.queue.gate = nil
		b.queue.mu.Unlock()
		replay := b.do(t, redact)
		require.Equal(t, "true", replay.header.Get("Idempotent-Replayed"))
		// The cached answer of a redact is scrubbed when it is saved (the session is in redaction by then), which
		// re-encodes it: same JSON, keys in another order.
		require.JSONEq(t, first.raw, replay.raw)
		_, redacts := b.queue.calls()
		require.Equal(t, []string{id}, redacts, "enqueued once")
	})
	t.Run("NotOnGet", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		res := b.do(t, request{method: http.MethodGet, path: sessions, key: keyA, header: map[string]string{"Idempotency-Key": "g"}})
		require.Equal(t, http.StatusOK, res.status)
		require.Empty(t, res.header.Get("Idempotency-Key"))
	})
}
