package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The scanner (scrubscan.go) against the JSON rules it replaces in the cascade: same bytes on the documents
// identityd stores, and same bytes (or, for an event snapshot, the same JSON) on anything a fuzzer makes of
// them.

// scrubForJSON is the cascade's scrub of one stored object through the JSON rules, as scrubFor did it before
// the scanner: the reference implementation.
func scrubForJSON(kind int, raw []byte, ids []string) ([]byte, error) {
	switch kind {
	case targetLog:
		return scrubLogJSON(raw, ids)
	case targetIdem:
		return scrubIdemJSON(raw, ids)
	case targetEvent:
		for _, id := range ids {
			raw = scrubEventBytes(raw, id)
		}
		return raw, nil
	default:
		for _, id := range ids {
			raw, _ = ScrubJSONBytes(raw, id)
		}
		return raw, nil
	}
}

// scrubForScan is the cascade's scrub through the scanner (scrubFor without the counts). It also fails when
// scrubFor changed its input: ScrubCascadeMany tells what to write back by comparing the two.
func scrubForScan(kind int, raw []byte, ids []string) ([]byte, error) {
	owners := make([]int, len(ids))
	for i := range owners {
		owners[i] = i
	}
	before := bytes.Clone(raw)
	out, err := scrubFor(kind, raw, ids, owners, make([]ScrubCounts, len(ids)))
	if !bytes.Equal(before, raw) {
		return nil, fmt.Errorf("scrubFor changed its input")
	}
	return out, err
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// scanReport is a report of sessionID with every check present, as stored.
func scanReport(t testing.TB, sessionID string) *Report {
	t.Helper()
	var r Report
	require.NoError(t, json.Unmarshal([]byte(`{"id":"vr_`+sessionID+`","object":"identity.verification_report",
	"client_reference_id":"ref-1","created":1700000001,"livemode":false,"options":{"document":{}},"type":"document",
	"verification_session":"`+sessionID+`",
	"document":{"address":{"city":"Berlin","country":"DE","line1":"Main St 1","line2":null,"postal_code":"10115","state":null},
	  "dob":{"day":1,"month":2,"year":1990},"error":{"code":"document_expired","reason":"expired"},
	  "expiration_date":{"day":1,"month":1,"year":2030},"files":["file_front","file_back"],"first_name":"Jane",
	  "issued_date":{"day":1,"month":1,"year":2020},"issuing_country":"DE","last_name":"Roe","number":"P1234567",
	  "sex":"female","status":"unverified","type":"passport","unparsed_place_of_birth":"Springfield","unparsed_sex":"F"},
	"id_number":{"dob":{"day":1,"month":2,"year":1990},"error":null,"first_name":"Jane","id_number":"123-45-6789",
	  "id_number_type":"us_ssn","last_name":"Roe","status":"verified"},
	"selfie":{"document":"file_front","error":null,"selfie":"file_selfie","status":"verified"},
	"email":{"email":"jane@example.com","error":null,"status":"verified"},
	"phone":{"error":null,"phone":"+15555550100","status":"verified"}}`), &r))
	return &r
}

func sessionOf(id string) *Session {
	s := fullSession()
	s.ID = id
	s.URL = ptr("https://verify.example/" + id)
	return s
}

// expandedView renders a session as a retrieve with expand[]=last_verification_report does.
func expandedView(t testing.TB, s *Session, r *Report) []byte {
	return mustJSON(t, struct {
		*Session
		LastVerificationReport any `json:"last_verification_report"`
	}{Session: s, LastVerificationReport: r})
}

func scanLogOf(t testing.TB, method, path string, params []Param, resp []byte, objects ...string) []byte {
	l := &RequestLog{ID: "req_" + method, Object: "request_log", Created: 1700000002, Method: method, Path: path,
		Status: 200, IdempotencyKey: ptr("idem-1"), Params: params, Response: resp, Objects: objects}
	return l.encode()
}

type scanCase struct {
	name string
	kind int
	raw  []byte
	ids  []string
	// fast is whether the scanner must take the document itself (no fallback to the JSON rules).
	fast bool
	// sameJSON relaxes the check to the same JSON in another key order.
	sameJSON bool
}

// scanCases are the documents the cascade scrubs, as identityd writes them.
func scanCases(t testing.TB) []scanCase {
	s1, s2 := sessionOf("vs_1"), sessionOf("vs_2")
	r1 := scanReport(t, "vs_1")
	list := mustJSON(t, map[string]any{"object": "list", "url": "/v1/identity/verification_sessions", "has_more": false,
		"data": []json.RawMessage{mustJSON(t, s2), expandedView(t, s1, r1), mustJSON(t, sessionOf("vs_3"))}})
	errBody := []byte(`{"error":{"code":"parameter_invalid","message":"Invalid metadata[ssn 123]: metadata[ssn 123] is too long","param":"metadata[ssn 123]","type":"invalid_request_error"}}`)
	createParams := []Param{{Key: "client_reference_id", Value: "ref-1"}, {Key: "metadata[customer_name]", Value: "Jane <Roe> & co"},
		{Key: "options[document][require_matching_selfie]", Value: "true"}, {Key: "provided_details[email]", Value: "jane@example.com"},
		{Key: "expand[0]", Value: "last_verification_report"}, {Key: "type", Value: "document"}, {Key: "odd\"key", Value: "x"}}
	ev := func(obj []byte) []byte {
		return mustJSON(t, newEvent(1700000001, Scope{Account: "acct_1"}, EventSessionVerified, obj, Origin{RequestID: "req_1", IdempotencyKey: "k"}))
	}
	idem := func(body []byte, objects ...string) []byte {
		return mustJSON(t, &IdemEntry{Fingerprint: "fp", KeptFingerprint: "kfp", State: IdemDone, Status: 200, Body: body, Objects: objects})
	}
	one, both := []string{"vs_1"}, []string{"vs_1", "vs_2"}
	return []scanCase{
		{"Report", targetReport, mustJSON(t, r1), one, true, false},
		{"ReportOtherSession", targetReport, mustJSON(t, scanReport(t, "vs_2")), one, true, false},
		{"ReportAlreadyScrubbed", targetReport, func() []byte { b, _ := ScrubJSONBytes(mustJSON(t, r1), "vs_1"); return b }(), one, true, false},
		{"EventSnapshot", targetEvent, ev(sessionSnapshot(s1)), one, true, false},
		{"EventSnapshotSparse", targetEvent, ev(sessionSnapshot(&Session{ID: "vs_1", Object: "identity.verification_session", Status: StatusRequiresInput})), one, true, false},
		{"EventSortedSnapshot", targetEvent, ev(mustJSON(t, jsonValue2(t, sessionSnapshot(s1)))), one, true, true},
		{"EventOtherSession", targetEvent, ev(sessionSnapshot(s2)), one, true, false},
		{"EventTwoOwners", targetEvent, ev(sessionSnapshot(s1)), both, true, false},
		{"LogCreate", targetLog, scanLogOf(t, "POST", "/v1/identity/verification_sessions", createParams, mustJSON(t, s1), "vs_1"), one, true, false},
		{"LogRetrieveExpanded", targetLog, scanLogOf(t, "GET", "/v1/identity/verification_sessions/vs_1", []Param{{Key: "expand[]", Value: "last_verification_report"}}, expandedView(t, s1, r1), "vs_1"), one, true, false},
		{"LogList", targetLog, scanLogOf(t, "GET", "/v1/identity/verification_sessions", []Param{{Key: "limit", Value: "3"}}, list, "vs_2", "vs_1", "vs_3"), one, true, false},
		{"LogListTwoOwners", targetLog, scanLogOf(t, "GET", "/v1/identity/verification_sessions", []Param{{Key: "limit", Value: "3"}}, list, "vs_2", "vs_1", "vs_3"), both, true, false},
		{"LogError", targetLog, scanLogOf(t, "POST", "/v1/identity/verification_sessions/vs_1", []Param{{Key: "metadata[ssn 123]", Value: "x"}}, errBody, "vs_1"), one, true, false},
		{"LogNoParams", targetLog, scanLogOf(t, "GET", "/v1/identity/verification_sessions/vs_1", nil, []byte("null"), "vs_1"), one, true, false},
		{"LogListOfLogs", targetLog, scanLogOf(t, "GET", "/v1/request_logs", nil, mustJSON(t, map[string]any{"object": "list", "data": []json.RawMessage{
			scanLogOf(t, "POST", "/v1/identity/verification_sessions/vs_1", []Param{{Key: "metadata[a]", Value: "b"}, {Key: "provided_details[phone]", Value: "1"}}, errBody, "vs_1")}}), "vs_1"), one, true, false},
		{"Idem", targetIdem, idem(mustJSON(t, s1), "vs_1"), one, true, false},
		{"IdemList", targetIdem, idem(list, "vs_1", "vs_2"), both, true, false},
		{"IdemNoBody", targetIdem, mustJSON(t, &IdemEntry{Fingerprint: "fp", State: IdemPending}), one, true, false},
		{"ReportManyKeys", targetReport, manyKeys(mustJSON(t, r1)), one, true, false},
		// Shapes the scanner leaves to the JSON rules.
		{"ReportWithWhitespace", targetReport, []byte(`{"object": "identity.verification_report", "verification_session": "vs_1", "email": {"email": "a"}}`), one, false, false},
		{"ReportDuplicateKey", targetReport, []byte(`{"object":"identity.verification_report","verification_session":"vs_1","email":{"email":"a"},"email":{"email":"b"}}`), one, false, false},
		{"ReportFloat", targetReport, []byte(`{"object":"identity.verification_report","verification_session":"vs_1","created":1.5}`), one, false, false},
	}
}

// canonicalJSON is raw as the JSON rules write a document: decoded and encoded again.
func canonicalJSON(t testing.TB, raw []byte) []byte {
	t.Helper()
	return mustJSON(t, jsonValue2(t, raw))
}

// manyKeys adds keys that sort before and after each other only by their contents (a prefix, a space, a
// byte below the quote) to a document, past the size where the scanner sorts members with slices.SortFunc.
func manyKeys(raw []byte) []byte {
	var b strings.Builder
	for i, k := range []string{"a", "a!", "a ", "a#", "ab", "é", "z", "Z", "_", "0", "9", "b", "b!", "b ", "bb", "c",
		"c!", "c ", "cc", "d", "d!", "d ", "dd", "e", "e!", "e ", "ee"} {
		b.WriteString(`"` + k + `":` + string(rune('1'+i%9)) + `,`)
	}
	return append([]byte(`{`+b.String()), raw[1:]...)
}

func jsonValue2(t testing.TB, raw []byte) any {
	var v any
	require.NoError(t, json.Unmarshal(raw, &v))
	return v
}

// takesScanner reports whether the scanner handles raw itself.
func takesScanner(kind int, raw []byte, ids []string) bool {
	switch kind {
	case targetLog:
		_, ok := scanLog(raw, ids)
		return ok
	case targetIdem:
		_, ok := scanIdem(raw, ids)
		return ok
	default:
		_, _, ok := scanDoc(raw, ids, true, 0)
		return ok
	}
}

func TestScrubScan_SameBytesAsTheJSONRules(t *testing.T) {
	t.Parallel()
	for _, c := range scanCases(t) {
		t.Run(c.name, func(t *testing.T) {
			want, err := scrubForJSON(c.kind, bytes.Clone(c.raw), c.ids)
			require.NoError(t, err)
			got, err := scrubForScan(c.kind, bytes.Clone(c.raw), c.ids)
			require.NoError(t, err)
			if c.sameJSON {
				require.Equal(t, string(canonicalJSON(t, want)), string(canonicalJSON(t, got)))
			} else {
				require.Equal(t, string(want), string(got))
			}
			require.Equal(t, c.fast, takesScanner(c.kind, c.raw, c.ids), "scanner takes the document")
			for _, personal := range []string{"jane@example.com", "Jane", "Springfield", "P1234567", "ssn 123", "file_front", "secret_x"} {
				if strings.Contains(string(c.raw), `"vs_1"`) && c.name != "ReportOtherSession" && c.name != "EventOtherSession" &&
					!strings.Contains(c.name, "List") {
					require.NotContains(t, string(got), personal)
				}
			}
			again, err := scrubForScan(c.kind, bytes.Clone(got), c.ids)
			require.NoError(t, err)
			require.Equal(t, string(got), string(again), "idempotent")
		})
	}
}

func TestScrubScan_ListScrubsOnlyTheRedactedSession(t *testing.T) {
	t.Parallel()
	var list []byte
	for _, c := range scanCases(t) {
		if c.name == "LogList" {
			list = c.raw
		}
	}
	got, err := scrubForScan(targetLog, list, []string{"vs_1"})
	require.NoError(t, err)
	require.Equal(t, 4, strings.Count(string(got), "jane@example.com"), "vs_2 and vs_3 keep their data")
	require.Contains(t, string(got), "https://verify.example/vs_2")
	require.NotContains(t, string(got), "https://verify.example/vs_1")
}

func TestCanonical(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{`{}`, `[]`, `{"a":[1,-2,0,true,false,null,"x"]}`, `"\u003c\u0026\u003e\u2028\n\t\"\\\u0001"`,
		`"é€𝄞"`, `999999999999999`} {
		require.True(t, canonical([]byte(doc)), doc)
		var v any
		require.NoError(t, json.Unmarshal([]byte(doc), &v))
		require.Equal(t, doc, string(mustJSON(t, v)), "canonical means Marshal writes it back the same")
	}
	for _, doc := range []string{``, `{ }`, `{"a":1,}`, `[1 ]`, `"<"`, `"\u003C"`, `"\u0041"`, `"\/"`, "\"\u2028\"",
		"\"\xff\"", `"\ufffd"`, `1.5`, `1e3`, `-0`, `01`, `1000000000000000`, `tru`, `{"a"}`, `{"a":1}x`, `"a`} {
		require.False(t, canonical([]byte(doc)), doc)
	}
}

// FuzzScrubScan feeds the cascade's documents, odd shapes, and what the fuzzer makes of them, to the scanner
// and the JSON rules (checkScan).
func FuzzScrubScan(f *testing.F) {
	for _, c := range scanCases(f) {
		f.Add(uint8(c.kind), len(c.ids) == 2, c.raw)
	}
	for _, doc := range oddDocs {
		for kind := range 4 {
			f.Add(uint8(kind), true, []byte(doc))
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, two bool, raw []byte) {
		checkScan(t, int(kind%4), two, raw)
	})
}

// oddDocs are shapes identityd does not write but the rules define: nested matches, replaced subtrees that
// hide a match, members a rule adds, params and files of unexpected types, an error echoing a metadata key.
var oddDocs = []string{
	`{"object":"identity.verification_session","id":"vs_1"}`,
	`{"object":"identity.verification_session","id":"vs_1","verified_outputs":{"first_name":{"object":"identity.verification_session","id":"vs_2","metadata":{"a":"b"}},"address":{"city":{"x":1},"line1":null},"dob":{"day":1}},"provided_details":[{"email":"x"}]}`,
	`{"object":"identity.verification_session","id":"vs_1","last_verification_report":{"object":"identity.verification_session","id":"vs_1","document":{"files":"f","address":"a"},"email":{"email":"e"},"metadata":{"k":"v"}}}`,
	`{"object":"identity.verification_report","verification_session":"vs_2","document":{"files":[null,{"a":1},"f"],"dob":null,"first_name":null},"selfie":{"selfie":{"object":"identity.verification_report","verification_session":"vs_1"}},"id_number":{"id_number_type":"x","dob":1}}`,
	`{"object":"request_log","objects":["vs_0",1,"vs_1"],"params":[{"k":"metadata[a]","v":"1"},{"k":"type","v":"document","x":{"object":"identity.verification_session","id":"vs_1"}},7,{"v":"x"},{"k":"expand[3]","v":"y"},{"k":"types[a]","v":"z"}],"response":{"error":{"param":"metadata[a b]","message":"metadata[a b] and metadata[a b]"}}}`,
	`{"object":"request_log","objects":["vs_2"],"response":{"error":{"param":"metadata[x]","message":7}}}`,
	`{"error":{"param":"metadata[k]","message":"bad metadata[k]","type":"invalid_request_error"}}`,
	`{"error":{"param":"metadata[k]"},"data":[{"object":"identity.verification_session","id":"vs_1","client_secret":"s","url":"u","metadata":null}]}`,
	`{"id":"req_1","object":"request_log","created":1,"livemode":false,"method":"POST","path":"/v1/x","status":400,"idempotency_key":null,"params":[{"k":"metadata[k]","v":"1"},{"k":"provided_details[email]","v":"a@b"}],"response":{"error":{"message":"Invalid metadata[k]","param":"metadata[k]"}},"objects":["vs_1"]}`,
	`{"id":"req_1","object":"request_log","created":1,"livemode":true,"method":"GET","path":"/v1/x","status":200,"idempotency_key":"k","params":null,"response":{"object":"list","data":[{"id":"vs_2","object":"identity.verification_session","metadata":{"a":"b"}}]},"objects":null}`,
	`{"fingerprint":"f","state":"done","status":200,"body":{"id":"vs_2","object":"identity.verification_session","url":"u"},"objects":["vs_2"]}`,
	`{"fingerprint":"f","kept_fingerprint":"","state":"pending"}`,
	`{"id":"evt_1","object":"event","data":{"object":{"id":"vs_1","object":"identity.verification_session","metadata":{"a":"vs_2"},"provided_details":{"email":"e","phone":null}}},"request":{"id":"vs_2","idempotency_key":null}}`,
	`{"id":"evt_1","object":"event","data":{"object":{"id":"vs_1","object":"identity.verification_session","verified_outputs":null,"metadata":{}}}}`,
	`[{"object":"identity.verification_session","id":"vs_1","metadata":{"\u003c":"\u2028"}},"vs_1",-12,true]`,
}

func TestScrubScan_OddShapes(t *testing.T) {
	t.Parallel()
	scanned := 0
	for _, doc := range oddDocs {
		if takesScanner(targetReport, []byte(doc), []string{"vs_1", "vs_2"}) {
			scanned++
		}
		for kind := range 4 {
			for _, two := range []bool{false, true} {
				checkScan(t, kind, two, []byte(doc))
			}
		}
	}
	require.Equal(t, len(oddDocs), scanned, "the scanner takes every odd shape itself")
}

// checkScan requires the scanner and the JSON rules to agree on raw: same error or none, and the same
// bytes — or, for an event (whose snapshot the scanner scrubs in place where the JSON rules may sort its
// keys), the same JSON.
func checkScan(t *testing.T, k int, two bool, raw []byte) {
	t.Helper()
	ids := []string{"vs_1"}
	if two {
		ids = append(ids, "vs_2")
	}
	want, wantErr := scrubForJSON(k, bytes.Clone(raw), ids)
	got, gotErr := scrubForScan(k, bytes.Clone(raw), ids)
	if (wantErr != nil) != (gotErr != nil) {
		t.Fatalf("errors differ: JSON rules %v, scanner %v", wantErr, gotErr)
	}
	if wantErr != nil || bytes.Equal(want, got) {
		return
	}
	if k != targetEvent {
		t.Fatalf("scanner wrote\n%s\nJSON rules wrote\n%s", got, want)
	}
	var w, g any
	if json.Unmarshal(want, &w) != nil || json.Unmarshal(got, &g) != nil || !bytes.Equal(mustJSON(t, w), mustJSON(t, g)) ||
		!canonical(got) {
		t.Fatalf("event: scanner wrote\n%s\nJSON rules wrote\n%s", got, want)
	}
}

func TestKeptParamBytes_IsKeptParam(t *testing.T) {
	t.Parallel()
	keys := []string{"", "type", "types", "types[]", "types[0]", "types[12]", "types[1a]", "types[", "expand[]", "expand[3]",
		"expand", "expandx[1]", "options[document][allowed_types][0]", "options[document][allowed_types]", "metadata[a]",
		"provided_details[email]", "limit", "created[gte]", "created[gtx]"}
	for k := range keptParams {
		keys = append(keys, k, k+"[0]", k+"x")
	}
	for _, k := range keys {
		require.Equal(t, keptParam(k), keptParamBytes([]byte(k)), k)
	}
}

// BenchmarkScrubCascadeDoc scrubs each kind of document the redaction cascade rewrites, through the JSON
// rules (the cascade before the scanner) and through the scanner (scrubFor):
//
//	go test -run '^$' -bench ScrubCascadeDoc -benchmem ./store/
func BenchmarkScrubCascadeDoc(b *testing.B) {
	for _, c := range scanCases(b) {
		switch c.name {
		case "Report", "ReportOtherSession", "EventSnapshot", "EventOtherSession", "LogCreate", "LogRetrieveExpanded",
			"LogList", "LogError", "Idem", "IdemList":
		default:
			continue
		}
		for _, impl := range []struct {
			name  string
			scrub func(int, []byte, []string) ([]byte, error)
		}{{"json", scrubForJSON}, {"scan", scrubForScan}} {
			b.Run(c.name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(c.raw)))
				for b.Loop() {
					if _, err := impl.scrub(c.kind, c.raw, c.ids); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
