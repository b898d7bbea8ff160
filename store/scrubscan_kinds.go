package store

import (
	"bytes"
	"encoding/json"
)

// Entry points of the scrub scanner (scrubscan.go) per stored kind: documents, request logs, cached idempotent
// responses and event snapshots, each falling back to the JSON rules of scrub.go when the scanner cannot tell.

// scanDoc scrubs a canonical document for ids with top as the document's parent rule. ok is false when the
// scanner cannot tell (not canonical, a shape it leaves to the JSON rules); changed is whether the JSON
// rules would write the document anew.
func scanDoc(raw []byte, ids []string, sorted bool, top rule) (out []byte, changed, ok bool) {
	if len(raw) == 0 || !canonical(raw) {
		return nil, false, false
	}
	return scanCanonical(raw, ids, sorted, top)
}

// scanCanonical is scanDoc on a document known to be canonical.
func scanCanonical(raw []byte, ids []string, sorted bool, top rule) (out []byte, changed, ok bool) {
	s := getScanner(ids, sorted)
	defer putScanner(s)
	s.out = make([]byte, 0, len(raw)+len(raw)/4+64)
	s.walk(raw, 0, top, 0)
	if s.bad {
		return nil, false, false
	}
	return s.out, s.found || s.errFix, true
}

// plainIDs reports whether every id can be searched for raw, and whether one occurs in raw.
func plainIDs(raw []byte, ids []string) (plain, present bool) {
	for _, id := range ids {
		if !plainID(id) {
			return false, false
		}
		if !present && bytes.Contains(raw, []byte(id)) {
			present = true
		}
	}
	return true, present
}

// scrubJSONMany is ScrubJSONBytes for each of ids in turn: the input when nothing matched.
func scrubJSONMany(raw []byte, ids []string) []byte {
	return scrubJSONManyChecked(raw, ids, false)
}

// scrubJSONManyChecked is scrubJSONMany; checked says raw is known to be canonical.
func scrubJSONManyChecked(raw []byte, ids []string, checked bool) []byte {
	plain, present := plainIDs(raw, ids)
	if plain && !present {
		return raw
	}
	if plain && (checked || canonical(raw)) {
		if out, changed, ok := scanCanonical(raw, ids, true, 0); ok {
			if !changed {
				return raw
			}
			return out
		}
	}
	for _, id := range ids {
		raw, _ = ScrubJSONBytes(raw, id)
	}
	return raw
}

// scrubLogResponseMany is scrubLogResponse for each of ids in turn; checked says body is known to be
// canonical.
func scrubLogResponseMany(body []byte, ids []string, checked bool) []byte {
	plain, present := plainIDs(body, ids)
	if plain && !present && !bytes.Contains(body, []byte(`"metadata[`)) {
		return body
	}
	if plain && (checked || canonical(body)) {
		if out, changed, ok := scanCanonical(body, ids, true, ruleErrorBody); ok {
			if !changed {
				return body
			}
			return out
		}
	}
	for _, id := range ids {
		body = scrubLogResponse(body, id)
	}
	return body
}

// topMembers lists the members of a canonical object document in order (nil when raw is not an object).
func topMembers(raw []byte, dst []member) []member {
	if len(raw) < 2 || raw[0] != '{' {
		return nil
	}
	for i := 1; raw[i] != '}'; {
		if raw[i] == ',' {
			i++
		}
		kEnd := skipString(raw, i)
		vEnd := skipValue(raw, kEnd+1)
		dst = append(dst, member{key: raw[i:kEnd], val: raw[kEnd+1 : vEnd]})
		i = vEnd
	}
	return dst
}

// offset returns where sub, a slice of raw, starts in it.
func offset(raw, sub []byte) int { return cap(raw) - cap(sub) }

func isString(v []byte) bool { return len(v) > 0 && v[0] == '"' }
func isInt(v []byte) bool    { return len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9') }

// stringArray reports whether v is an array of strings.
func stringArray(v []byte) bool {
	if len(v) == 0 || v[0] != '[' {
		return false
	}
	for i := 1; v[i] != ']'; {
		if v[i] == ',' {
			i++
		}
		if v[i] != '"' {
			return false
		}
		i = skipString(v, i)
	}
	return true
}

// logKeys are a stored request log's members in the order json.Marshal writes a RequestLog.
var logKeys = [...]string{`"id"`, `"object"`, `"created"`, `"livemode"`, `"method"`, `"path"`, `"status"`,
	`"idempotency_key"`, `"params"`, `"response"`, `"objects"`}

// scrubLogMany is the cascade's scrub of a stored request log for ids: for a log in the exact shape
// RequestLog.encode writes it, what decoding it, RequestLog.scrub for each id and json.Marshal write; any other
// log takes that path.
func scrubLogMany(raw []byte, ids []string) ([]byte, error) {
	if out, ok := scanLog(raw, ids); ok {
		return out, nil
	}
	return scrubLogJSON(raw, ids)
}

// scrubLogJSON is the JSON rules' scrub of a stored request log for ids: decode, RequestLog.scrub for each id,
// encode. The reference the scanner is held to, and its fallback.
func scrubLogJSON(raw []byte, ids []string) ([]byte, error) {
	var l RequestLog
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, err
	}
	for _, id := range ids {
		l.scrub(id)
	}
	return json.Marshal(&l)
}

func scanLog(raw []byte, ids []string) ([]byte, bool) {
	if !canonical(raw) {
		return nil, false
	}
	var buf [len(logKeys)]member
	ms := topMembers(raw, buf[:0])
	if len(ms) != len(logKeys) {
		return nil, false
	}
	for i, m := range ms {
		if string(m.key) != logKeys[i] {
			return nil, false
		}
	}
	lit := func(v []byte) bool { return string(v) == "true" || string(v) == "false" }
	if !isString(ms[0].val) || !isString(ms[1].val) || !isInt(ms[2].val) || !lit(ms[3].val) ||
		!isString(ms[4].val) || !isString(ms[5].val) || !isInt(ms[6].val) ||
		!(isString(ms[7].val) || string(ms[7].val) == "null") ||
		!(stringArray(ms[10].val) || string(ms[10].val) == "null") {
		return nil, false
	}
	params := ms[8].val
	resp := scrubLogResponseMany(ms[9].val, ids, true)
	out := make([]byte, 0, len(raw)+len(resp)-len(ms[9].val)+16)
	out = append(out, raw[:offset(raw, params)]...)
	if string(params) == "null" {
		out = append(out, params...)
	} else {
		var ok bool
		if out, ok = appendScrubbedParams(out, params); !ok {
			return nil, false
		}
	}
	out = append(out, `,"response":`...)
	out = append(out, resp...)
	out = append(out, `,"objects":`...)
	out = append(out, ms[10].val...)
	return append(out, '}'), true
}

// appendScrubbedParams is ScrubParams on typed params: it accepts only an array of {"k":string,"v":string}.
func appendScrubbedParams(out, params []byte) ([]byte, bool) {
	if len(params) == 0 || params[0] != '[' {
		return nil, false
	}
	out = append(out, '[')
	first := true
	for i := 1; params[i] != ']'; {
		if params[i] == ',' {
			i++
		}
		end := skipValue(params, i)
		item := params[i:end]
		i = end
		var buf [2]member
		ms := topMembers(item, buf[:0])
		if len(ms) != 2 || string(ms[0].key) != `"k"` || string(ms[1].key) != `"v"` || !isString(ms[0].val) ||
			!isString(ms[1].val) {
			return nil, false
		}
		key, ok := paramKey(item)
		if !ok {
			return nil, false
		}
		if metadataParam(key) {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		if keptParamBytes(key) {
			out = append(out, item...)
			continue
		}
		out = append(out, `{"k":`...)
		out = append(out, ms[0].val...)
		out = append(out, `,"v":"[redacted]"}`...)
	}
	return append(out, ']'), true
}

// scrubIdemMany is the cascade's scrub of a cached idempotent response for ids: for an entry in the exact
// shape json.Marshal writes an IdemEntry, what decoding it, IdemEntry.scrub for each id and json.Marshal
// write; any other entry takes that path.
func scrubIdemMany(raw []byte, ids []string) ([]byte, error) {
	if out, ok := scanIdem(raw, ids); ok {
		return out, nil
	}
	return scrubIdemJSON(raw, ids)
}

// scrubIdemJSON is the JSON rules' scrub of a cached idempotent response for ids: decode, IdemEntry.scrub for
// each id, encode. The reference the scanner is held to, and its fallback.
func scrubIdemJSON(raw []byte, ids []string) ([]byte, error) {
	var e IdemEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, err
	}
	for _, id := range ids {
		e.scrub(id)
	}
	return json.Marshal(&e)
}

func scanIdem(raw []byte, ids []string) ([]byte, bool) {
	if !canonical(raw) {
		return nil, false
	}
	var buf [6]member
	ms := topMembers(raw, buf[:0])
	if len(ms) < 2 || string(ms[0].key) != `"fingerprint"` || !isString(ms[0].val) {
		return nil, false
	}
	rest := ms[1:]
	if string(rest[0].key) == `"kept_fingerprint"` {
		if !isString(rest[0].val) || len(rest[0].val) == 2 {
			return nil, false
		}
		rest = rest[1:]
	}
	if len(rest) == 0 || string(rest[0].key) != `"state"` || !isString(rest[0].val) {
		return nil, false
	}
	rest = rest[1:]
	if len(rest) > 0 && string(rest[0].key) == `"status"` {
		if !isInt(rest[0].val) || string(rest[0].val) == "0" {
			return nil, false
		}
		rest = rest[1:]
	}
	var body []byte
	bodyAt := -1
	if len(rest) > 0 && string(rest[0].key) == `"body"` {
		body = rest[0].val
		bodyAt = offset(raw, body)
		rest = rest[1:]
	}
	if len(rest) > 0 && string(rest[0].key) == `"objects"` {
		if !stringArray(rest[0].val) || string(rest[0].val) == "[]" {
			return nil, false
		}
		rest = rest[1:]
	}
	if len(rest) != 0 {
		return nil, false
	}
	afterFP := len(`{"fingerprint":`) + len(ms[0].val)
	out := make([]byte, 0, len(raw)+64)
	out = append(out, `{"fingerprint":""`...)
	if body == nil {
		return append(out, raw[afterFP:]...), true
	}
	scrubbed := scrubJSONManyChecked(body, ids, true)
	out = append(out, raw[afterFP:bodyAt]...)
	out = append(out, scrubbed...)
	return append(out, raw[bodyAt+len(body):]...), true
}

// scrubEventMany is scrubEventBytes for each of ids in turn. An event whose data.object is the snapshot of a
// session being redacted is scrubbed in place: for a snapshot as sessionSnapshot renders it, that is the
// splice of scrubEventBytes byte for byte (envelope and snapshot keep their key order); for one in another
// key order, the same JSON as the JSON rules write, in the event's own order. Any other event is scrubbed
// as ScrubJSONBytes writes it.
func scrubEventMany(raw []byte, ids []string) []byte {
	plain, present := plainIDs(raw, ids)
	if plain && !present {
		return raw
	}
	if !plain || !canonical(raw) {
		for _, id := range ids {
			raw = scrubEventBytes(raw, id)
		}
		return raw
	}
	if snapshotOf(raw, ids) {
		if out, changed, ok := scanCanonical(raw, ids, false, 0); ok {
			if !changed {
				return raw
			}
			return out
		}
	}
	if out, changed, ok := scanCanonical(raw, ids, true, 0); ok {
		if !changed {
			return raw
		}
		return out
	}
	for _, id := range ids {
		raw = scrubEventBytes(raw, id)
	}
	return raw
}

// snapshotOf reports whether a canonical event's data.object is a snapshot of one of the sessions ids
// without verified_outputs (what sessionSnapshot renders).
func snapshotOf(raw []byte, ids []string) bool {
	var buf [16]member
	data := memberValue(topMembers(raw, buf[:0]), `"data"`)
	if len(data) == 0 || data[0] != '{' {
		return false
	}
	obj := memberValue(topMembers(data, buf[:0]), `"object"`)
	if len(obj) == 0 || obj[0] != '{' {
		return false
	}
	var objBuf [32]member
	ms := topMembers(obj, objBuf[:0])
	if string(memberValue(ms, `"object"`)) != `"identity.verification_session"` || memberValue(ms, `"verified_outputs"`) != nil {
		return false
	}
	v := memberValue(ms, `"id"`)
	for _, id := range ids {
		if len(v) == len(id)+2 && string(v[1:len(v)-1]) == id {
			return true
		}
	}
	return false
}
