package store

import (
	"encoding/json"
	"strings"
)

// Redacted replaces every personal string (Stripe's placeholder; also a member of the `sex` enum).
const Redacted = "[redacted]"

// The scrub rules of DESIGN §5, in one place. They work on decoded JSON so that the same rules apply to the
// stored session and reports, to event snapshots, to request-log response bodies and to cached idempotent
// responses — wherever a session or report appears, however deeply nested (lists, expansions, events).

// ScrubJSON scrubs, inside any decoded JSON value, every verification session whose id is sessionID and every
// verification report whose verification_session is sessionID. It reports whether it found one.
func ScrubJSON(v any, sessionID string) bool {
	found := false
	switch x := v.(type) {
	case map[string]any:
		switch x["object"] {
		case "identity.verification_session":
			if x["id"] == sessionID {
				scrubSessionMap(x)
				found = true
			}
		case "identity.verification_report":
			if x["verification_session"] == sessionID {
				scrubReportMap(x)
				found = true
			}
		case "request_log": // a request log listed in a response: its parameters follow the log rules
			if objs, ok := x["objects"].([]any); ok && containsAny(objs, sessionID) {
				x["params"] = scrubParamsJSON(x["params"])
				if resp := child(x, "response"); resp != nil {
					scrubErrorMap(resp)
				}
				found = true
			}
		}
		for _, child := range x {
			if ScrubJSON(child, sessionID) {
				found = true
			}
		}
	case []any:
		for _, child := range x {
			if ScrubJSON(child, sessionID) {
				found = true
			}
		}
	}
	return found
}

// ScrubJSONBytes applies ScrubJSON to an encoded document. It returns the input unchanged when nothing
// matched (or the body is not JSON).
func ScrubJSONBytes(body []byte, sessionID string) ([]byte, bool) {
	if !strings.Contains(string(body), sessionID) {
		return body, false
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return body, false
	}
	if !ScrubJSON(doc, sessionID) {
		return body, false
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return body, false
	}
	return out, true
}

func redactStrings(m map[string]any, keys ...string) {
	for _, k := range keys {
		if v, ok := m[k]; ok && v != nil {
			m[k] = Redacted
		}
	}
}

func nullify(m map[string]any, keys ...string) {
	for _, k := range keys {
		if _, ok := m[k]; ok {
			m[k] = nil
		}
	}
}

func child(m map[string]any, key string) map[string]any {
	c, _ := m[key].(map[string]any)
	return c
}

func scrubAddress(m map[string]any) {
	if a := child(m, "address"); a != nil {
		for k, v := range a {
			if v != nil {
				a[k] = Redacted
			}
		}
	}
}

func scrubSessionMap(m map[string]any) {
	m["metadata"] = map[string]any{}
	m["client_secret"] = nil
	m["url"] = nil
	if pd := child(m, "provided_details"); pd != nil {
		redactStrings(pd, "email", "phone")
	}
	if vo := child(m, "verified_outputs"); vo != nil {
		redactStrings(vo, "first_name", "last_name", "email", "phone", "id_number", "unparsed_place_of_birth", "unparsed_sex", "sex")
		scrubAddress(vo)
		nullify(vo, "dob", "id_number_type")
	}
	if r := child(m, "last_verification_report"); r != nil {
		scrubReportMap(r)
	}
}

func scrubReportMap(m map[string]any) {
	if d := child(m, "document"); d != nil {
		redactStrings(d, "first_name", "last_name", "number", "issuing_country", "unparsed_place_of_birth", "unparsed_sex", "sex")
		scrubAddress(d)
		nullify(d, "dob", "expiration_date", "issued_date")
		if files, ok := d["files"].([]any); ok {
			for i := range files {
				files[i] = Redacted
			}
		}
	}
	if n := child(m, "id_number"); n != nil {
		redactStrings(n, "first_name", "last_name", "id_number")
		nullify(n, "dob", "id_number_type")
	}
	if e := child(m, "email"); e != nil {
		redactStrings(e, "email")
	}
	if p := child(m, "phone"); p != nil {
		redactStrings(p, "phone")
	}
	if s := child(m, "selfie"); s != nil {
		redactStrings(s, "document", "selfie")
	}
}

// scrubErrorMap removes a metadata key that an error response echoes in its param (and message): metadata
// keys are personal data like their values, and a rejected request's answer lands in its request log.
func scrubErrorMap(body map[string]any) bool {
	e := child(body, "error")
	if e == nil {
		return false
	}
	param, _ := e["param"].(string)
	if !strings.HasPrefix(param, "metadata[") {
		return false
	}
	if msg, ok := e["message"].(string); ok {
		e["message"] = strings.ReplaceAll(msg, param, "metadata")
	}
	e["param"] = "metadata"
	return true
}

// scrubLogResponse applies the rules to a request log's response body: the session's objects in it, and a
// metadata key echoed by an error.
func scrubLogResponse(body []byte, sessionID string) []byte {
	body, _ = ScrubJSONBytes(body, sessionID)
	if !strings.Contains(string(body), `"metadata[`) {
		return body
	}
	var doc map[string]any
	if json.Unmarshal(body, &doc) != nil || !scrubErrorMap(doc) {
		return body
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return body
	}
	return out
}

// scrubTyped round-trips a typed object through the JSON rules, so typed and untyped data follow one rule set.
func scrubTyped[T any](obj *T, sessionID string) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	out, _ := ScrubJSONBytes(body, sessionID)
	var fresh T
	if err := json.Unmarshal(out, &fresh); err != nil {
		return err
	}
	*obj = fresh
	return nil
}

// ScrubSession applies the rules to a stored session.
func ScrubSession(s *Session) error { return scrubTyped(s, s.ID) }

// keptParams are the exact request parameters that never hold personal data (ids, enums, booleans, numbers);
// keptArrays are arrays of such values (key[] or key[N]). Every other parameter of a request log tied to a
// redacted session — an unknown one included — keeps its name with the placeholder as value, and metadata
// parameters are dropped whole, keys included.
var keptParams = map[string]bool{"type": true, "client_reference_id": true, "related_customer": true,
	"related_person[account]": true, "related_person[person]": true, "limit": true, "starting_after": true,
	"ending_before": true, "status": true, "created": true, "created[gt]": true, "created[gte]": true,
	"created[lt]": true, "created[lte]": true, "outcome": true, "last_error[code]": true, "options": true,
	"options[document]": true, "options[document][require_id_number]": true,
	"options[document][require_live_capture]": true, "options[document][require_matching_selfie]": true,
	"verification_session": true, "dry_run": true, "document[type]": true, "object": true, "event": true}

var keptArrays = []string{"expand", "types", "options[document][allowed_types]"}

func keptParam(key string) bool {
	if keptParams[key] {
		return true
	}
	for _, a := range keptArrays {
		if rest, ok := strings.CutPrefix(key, a+"["); ok && strings.HasSuffix(rest, "]") &&
			strings.Trim(rest[:len(rest)-1], "0123456789") == "" {
			return true
		}
	}
	return false
}

// ScrubParams applies the rules to a request's decoded parameters.
func ScrubParams(params []Param) []Param {
	out := params[:0:0]
	for _, p := range params {
		switch {
		case p.Key == "metadata" || strings.HasPrefix(p.Key, "metadata["):
			continue
		case keptParam(p.Key):
			out = append(out, p)
		default:
			out = append(out, Param{Key: p.Key, Value: Redacted})
		}
	}
	return out
}

func containsAny(list []any, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func scrubParamsJSON(v any) any {
	list, ok := v.([]any)
	if !ok {
		return v
	}
	out := []any{}
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		key, _ := m["k"].(string)
		switch {
		case key == "metadata" || strings.HasPrefix(key, "metadata["):
		case keptParam(key):
			out = append(out, m)
		default:
			out = append(out, map[string]any{"k": key, "v": Redacted})
		}
	}
	return out
}

// Param is one request parameter as it arrived.
type Param struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}
