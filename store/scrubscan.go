package store

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"
	"unicode/utf8"
)

// A scanner for the scrub rules of scrub.go on encoded JSON, for the redaction cascade: it rewrites a document
// in one walk instead of decoding it into maps and encoding it again, the largest part of the cascade's CPU.
//
// It accepts only canonical documents — what encoding/json writes: no whitespace, strings escaped exactly as
// Marshal escapes them, integers that survive a round trip through float64, no duplicate keys. For those its
// output is byte for byte what the JSON rules write: ScrubJSON's rules, every object's keys sorted as Marshal
// sorts a map's (sorted mode) — or the document's own key order (in-place mode, for event snapshots, whose
// splice keeps the order). Anything else (and a key with an escape) goes to the JSON rules, which stay the
// reference implementation: scrubscan_test.go checks the scanner against them, on fixed documents and by
// fuzzing.

// rule is a set of scrub rules that apply to one object: the rule of the object itself (a session or report
// of a redacted session, a request log tied to one) and the rule its parent imposes on it (the
// verified_outputs of a scrubbed session, the document of a scrubbed report...).
type rule uint16

const (
	ruleSession   rule = 1 << iota // scrubSessionMap
	ruleReport                     // scrubReportMap
	ruleLog                        // a request_log object tied to the session
	ruleProvided                   // provided_details of a scrubbed session
	ruleOutputs                    // verified_outputs of a scrubbed session
	ruleAddress                    // an address: every non-null value
	ruleDocument                   // document of a scrubbed report
	ruleIDNumber                   // id_number of a scrubbed report
	ruleEmail                      // email of a scrubbed report
	rulePhone                      // phone of a scrubbed report
	ruleSelfie                     // selfie of a scrubbed report
	ruleErrorBody                  // a response whose error may echo a metadata key
	ruleError                      // that error
)

// What a rule does to one member.
const (
	actKeep     = iota // walk the value with the rules of its own
	actRedact          // non-null → "[redacted]"
	actNull            // → null
	actEmptyObj        // → {}
	actFiles           // an array's elements → "[redacted]"
	actParams          // request-log params of the JSON rules (scrubParamsJSON)
)

// memberAction returns what the rules in r do to the member key (unquoted, unescaped) and the rules its
// value gets when it is an object. A replacement wins over a descent: the rules that replace a member and
// the ones that descend into it never meet in one object except in that order (scrubscan_test.go fuzzes it).
func memberAction(r rule, key string) (int, rule) {
	if r&ruleAddress != 0 {
		return actRedact, 0
	}
	var child rule
	if r&ruleProvided != 0 {
		switch key {
		case "email", "phone":
			return actRedact, 0
		}
	}
	if r&ruleOutputs != 0 {
		switch key {
		case "first_name", "last_name", "email", "phone", "id_number", "unparsed_place_of_birth", "unparsed_sex", "sex":
			return actRedact, 0
		case "dob", "id_number_type":
			return actNull, 0
		case "address":
			child |= ruleAddress
		}
	}
	if r&ruleDocument != 0 {
		switch key {
		case "first_name", "last_name", "number", "issuing_country", "unparsed_place_of_birth", "unparsed_sex", "sex":
			return actRedact, 0
		case "dob", "expiration_date", "issued_date":
			return actNull, 0
		case "address":
			child |= ruleAddress
		case "files":
			return actFiles, 0
		}
	}
	if r&ruleIDNumber != 0 {
		switch key {
		case "first_name", "last_name", "id_number":
			return actRedact, 0
		case "dob", "id_number_type":
			return actNull, 0
		}
	}
	if r&ruleEmail != 0 && key == "email" {
		return actRedact, 0
	}
	if r&rulePhone != 0 && key == "phone" {
		return actRedact, 0
	}
	if r&ruleSelfie != 0 && (key == "document" || key == "selfie") {
		return actRedact, 0
	}
	if r&ruleSession != 0 {
		switch key {
		case "metadata":
			return actEmptyObj, 0
		case "client_secret", "url":
			return actNull, 0
		case "provided_details":
			child |= ruleProvided
		case "verified_outputs":
			child |= ruleOutputs
		case "last_verification_report":
			child |= ruleReport
		}
	}
	if r&ruleReport != 0 {
		switch key {
		case "document":
			child |= ruleDocument
		case "id_number":
			child |= ruleIDNumber
		case "email":
			child |= ruleEmail
		case "phone":
			child |= rulePhone
		case "selfie":
			child |= ruleSelfie
		}
	}
	if r&ruleLog != 0 {
		switch key {
		case "params":
			return actParams, 0
		case "response":
			child |= ruleErrorBody
		}
	}
	if r&ruleErrorBody != 0 && key == "error" {
		child |= ruleError
	}
	return actKeep, child
}

// member is one key/value pair of an object: slices of the source, or of constants for a member a rule adds.
type member struct {
	key []byte // the key token, quotes included
	val []byte // the value token
}

var (
	tokNull     = []byte("null")
	tokEmptyObj = []byte("{}")
	tokRedacted = []byte(`"[redacted]"`)
	tokMetaKey  = []byte(`"metadata"`)
	tokSecret   = []byte(`"client_secret"`)
	tokURL      = []byte(`"url"`)
	tokParams   = []byte(`"params"`)
)

// scanner holds one scrub's state; scanners are pooled.
type scanner struct {
	ids     [][]byte // quoted ids of the sessions being redacted
	sorted  bool
	found   bool // an object of one of the sessions was scrubbed
	errFix  bool // an error's echoed metadata key was removed
	bad     bool // a shape the scanner does not handle: the caller takes the JSON rules
	out     []byte
	members []member // a stack: each object being walked owns its top
	keys    []member // scratch for in-place mode's duplicate check
	idBuf   []byte
}

var scannerPool = sync.Pool{New: func() any { return &scanner{members: make([]member, 0, 64)} }}

func getScanner(ids []string, sorted bool) *scanner {
	s := scannerPool.Get().(*scanner)
	s.sorted, s.found, s.errFix, s.bad = sorted, false, false, false
	s.idBuf, s.ids = s.idBuf[:0], s.ids[:0]
	for _, id := range ids {
		s.idBuf = append(append(append(s.idBuf, '"'), id...), '"')
	}
	start := 0
	for _, id := range ids { // slices of idBuf once it stopped growing
		n := len(id) + 2
		s.ids = append(s.ids, s.idBuf[start:start+n:start+n])
		start += n
	}
	return s
}

func putScanner(s *scanner) {
	s.out = nil
	s.members = s.members[:0]
	scannerPool.Put(s)
}

// plainID reports whether id is written in JSON as itself (so a raw search for it finds every occurrence).
func plainID(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return id != ""
}

func (s *scanner) isID(tok []byte) bool {
	for _, id := range s.ids {
		if bytes.Equal(tok, id) {
			return true
		}
	}
	return false
}

// walk writes the scrubbed value at src[i:] (valid and canonical) to s.out with the rules r its parent
// imposes, and returns the index after it.
func (s *scanner) walk(src []byte, i int, r rule, depth int) int {
	if depth > 200 {
		s.bad = true
		return len(src)
	}
	switch src[i] {
	case '{':
		return s.walkObject(src, i, r, depth)
	case '[':
		s.out = append(s.out, '[')
		i++
		for src[i] != ']' {
			if src[i] == ',' {
				s.out = append(s.out, ',')
				i++
			}
			i = s.walk(src, i, 0, depth+1)
			if s.bad {
				return len(src)
			}
		}
		s.out = append(s.out, ']')
		return i + 1
	default:
		end := skipValue(src, i)
		s.out = append(s.out, src[i:end]...)
		return end
	}
}

func (s *scanner) walkObject(src []byte, i int, r rule, depth int) int {
	base := len(s.members)
	i++ // {
	for src[i] != '}' {
		if src[i] == ',' {
			i++
		}
		kEnd := skipString(src, i)
		key := src[i:kEnd]
		if bytes.IndexByte(key, '\\') >= 0 {
			s.bad = true // a key with an escape sorts by its decoded form
			return len(src)
		}
		vEnd := skipValue(src, kEnd+1)
		s.members = append(s.members, member{key: key, val: src[kEnd+1 : vEnd]})
		i = vEnd
	}
	end := i + 1
	ms := s.members[base:]
	sorted := ms
	if !s.sorted {
		sorted = append(s.keys[:0], ms...) // the duplicate check sorts a copy
		s.keys = sorted
	}
	sortMembers(sorted)
	for j := 1; j < len(sorted); j++ {
		if bytes.Equal(sorted[j-1].key, sorted[j].key) {
			s.bad = true
			return len(src)
		}
	}

	// The object's own rule, from its members as its parent's rule left them (no parent rule but an
	// address's touches object, id, verification_session or objects).
	if r&ruleAddress == 0 {
		r |= s.selfRule(ms)
	}
	if r&(ruleSession|ruleLog) != 0 {
		s.addMissing(base, r)
		if s.bad {
			return len(src)
		}
		ms = s.members[base:]
	}
	var param, message []byte // the error rule's rewrite
	if r&ruleError != 0 {
		param, message = s.errorRewrite(ms)
	}

	s.out = append(s.out, '{')
	for j, m := range ms {
		if j > 0 {
			s.out = append(s.out, ',')
		}
		s.out = append(s.out, m.key...)
		s.out = append(s.out, ':')
		if param != nil {
			switch string(m.key) {
			case `"param"`:
				s.out = append(s.out, param...)
				continue
			case `"message"`:
				if message != nil {
					s.out = append(s.out, message...)
					continue
				}
			}
		}
		if r == 0 {
			s.walkMember(m.val, 0, depth)
			continue
		}
		act, child := memberAction(r, string(m.key[1:len(m.key)-1]))
		switch act {
		case actRedact:
			if string(m.val) == "null" {
				s.out = append(s.out, tokNull...)
			} else {
				s.out = append(s.out, tokRedacted...)
			}
		case actNull:
			s.out = append(s.out, tokNull...)
		case actEmptyObj:
			s.out = append(s.out, tokEmptyObj...)
		case actFiles:
			if m.val[0] != '[' {
				s.walkMember(m.val, 0, depth)
				break
			}
			s.out = append(s.out, '[')
			for n := 0; n < countElements(m.val); n++ {
				if n > 0 {
					s.out = append(s.out, ',')
				}
				s.out = append(s.out, tokRedacted...)
			}
			s.out = append(s.out, ']')
		case actParams:
			if m.val[0] != '[' {
				s.walkMember(m.val, 0, depth)
				break
			}
			s.scrubParamsArray(m.val, depth)
		default:
			if m.val[0] != '{' {
				child = 0 // a rule's child applies to an object only
			}
			s.walkMember(m.val, child, depth)
		}
		if s.bad {
			return len(src)
		}
	}
	s.out = append(s.out, '}')
	s.members = s.members[:base]
	return end
}

// walkMember walks a member's value (a slice of the source, or a constant).
func (s *scanner) walkMember(val []byte, r rule, depth int) {
	s.walk(val, 0, r, depth+1)
}

// selfRule is ScrubJSON's test of an object: a session or report of a redacted session, or a request log tied
// to one.
func (s *scanner) selfRule(ms []member) rule {
	obj := memberValue(ms, `"object"`)
	switch string(obj) {
	case `"identity.verification_session"`:
		if s.isID(memberValue(ms, `"id"`)) {
			s.found = true
			return ruleSession
		}
	case `"identity.verification_report"`:
		if s.isID(memberValue(ms, `"verification_session"`)) {
			s.found = true
			return ruleReport
		}
	case `"request_log"`:
		objs := memberValue(ms, `"objects"`)
		if len(objs) > 0 && objs[0] == '[' {
			for i := 1; objs[i] != ']'; {
				if objs[i] == ',' {
					i++
				}
				end := skipValue(objs, i)
				if s.isID(objs[i:end]) {
					s.found = true
					return ruleLog
				}
				i = end
			}
		}
	}
	return 0
}

// addMissing adds the members a rule sets on an object that lacks them: a session's metadata, client_secret
// and url, a log's params (null). In-place mode has no place for them: it leaves the document to the JSON
// rules.
func (s *scanner) addMissing(base int, r rule) {
	n := len(s.members)
	need := func(key, val []byte) {
		for _, m := range s.members[base:n] {
			if bytes.Equal(m.key, key) {
				return
			}
		}
		s.members = append(s.members, member{key: key, val: val})
	}
	if r&ruleSession != 0 {
		need(tokMetaKey, tokEmptyObj)
		need(tokSecret, tokNull)
		need(tokURL, tokNull)
	}
	if r&ruleLog != 0 {
		need(tokParams, tokNull)
	}
	if len(s.members) == n {
		return
	}
	if !s.sorted {
		s.bad = true
		return
	}
	sortMembers(s.members[base:])
}

// errorRewrite is scrubErrorMap on an error object: the tokens that replace param and message, nil when the
// rule does not apply.
func (s *scanner) errorRewrite(ms []member) (param, message []byte) {
	p := memberValue(ms, `"param"`)
	if !bytes.HasPrefix(p, []byte(`"metadata[`)) {
		return nil, nil
	}
	if bytes.IndexByte(p, '\\') >= 0 {
		s.bad = true
		return nil, nil
	}
	s.errFix = true
	if msg := memberValue(ms, `"message"`); len(msg) > 0 && msg[0] == '"' {
		inner := bytes.ReplaceAll(msg[1:len(msg)-1], p[1:len(p)-1], []byte("metadata"))
		message = make([]byte, 0, len(inner)+2)
		message = append(append(append(message, '"'), inner...), '"')
	}
	return []byte(`"metadata"`), message
}

// scrubParamsArray is scrubParamsJSON on an array of parameter objects.
func (s *scanner) scrubParamsArray(val []byte, depth int) {
	s.out = append(s.out, '[')
	first := true
	for i := 1; val[i] != ']'; {
		if val[i] == ',' {
			i++
		}
		end := skipValue(val, i)
		item := val[i:end]
		i = end
		if item[0] != '{' {
			continue // not an object: dropped
		}
		key, ok := paramKey(item)
		if !ok {
			s.bad = true
			return
		}
		if metadataParam(key) {
			continue
		}
		if !first {
			s.out = append(s.out, ',')
		}
		first = false
		if keptParamBytes(key) {
			s.walk(item, 0, 0, depth+1)
			continue
		}
		// {"k":key,"v":"[redacted]"}: keys sorted in both modes (a new map).
		s.out = append(s.out, `{"k":`...)
		s.out = appendJSONString(s.out, string(key))
		s.out = append(s.out, `,"v":"[redacted]"}`...)
	}
	s.out = append(s.out, ']')
}

// paramKey returns an item's "k" as scrubParamsJSON reads it (empty when absent or not a string), unescaped.
func paramKey(item []byte) ([]byte, bool) {
	var k []byte
	for i := 1; item[i] != '}'; {
		if item[i] == ',' {
			i++
		}
		kEnd := skipString(item, i)
		vEnd := skipValue(item, kEnd+1)
		if string(item[i:kEnd]) == `"k"` {
			k = item[kEnd+1 : vEnd]
		}
		i = vEnd
	}
	if len(k) == 0 || k[0] != '"' {
		return nil, true
	}
	if bytes.IndexByte(k, '\\') < 0 {
		return k[1 : len(k)-1], true
	}
	var out string
	if json.Unmarshal(k, &out) != nil {
		return nil, false
	}
	return []byte(out), true
}

// metadataParam reports whether a parameter is a metadata one (dropped with its key).
func metadataParam(key []byte) bool {
	return string(key) == "metadata" || bytes.HasPrefix(key, []byte("metadata["))
}

// keptParamBytes is keptParam without a string.
func keptParamBytes(key []byte) bool {
	if keptParams[string(key)] {
		return true
	}
	for _, a := range keptArrays {
		if len(key) > len(a)+1 && string(key[:len(a)]) == a && key[len(a)] == '[' && key[len(key)-1] == ']' &&
			len(bytes.Trim(key[len(a)+1:len(key)-1], "0123456789")) == 0 {
			return true
		}
	}
	return false
}

// appendJSONString appends s as encoding/json writes it.
func appendJSONString(dst []byte, s string) []byte {
	if s == "" || plainID(s) {
		return append(append(append(dst, '"'), s...), '"')
	}
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

func memberValue(ms []member, key string) []byte {
	for _, m := range ms {
		if string(m.key) == key {
			return m.val
		}
	}
	return nil
}

// sortMembers sorts by key as encoding/json sorts a map's keys (byte order of the unescaped keys; the
// scanner only sorts keys without escapes, whose token is the key quoted).
func sortMembers(ms []member) {
	if len(ms) > 24 {
		slices.SortFunc(ms, func(a, b member) int { return bytes.Compare(a.key[1:len(a.key)-1], b.key[1:len(b.key)-1]) })
		return
	}
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && keyLess(ms[j].key, ms[j-1].key); j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}

// keyLess compares two quoted keys by their contents.
func keyLess(a, b []byte) bool {
	return bytes.Compare(a[1:len(a)-1], b[1:len(b)-1]) < 0
}

func countElements(arr []byte) int {
	n := 0
	for i := 1; arr[i] != ']'; {
		if arr[i] == ',' {
			i++
		}
		i = skipValue(arr, i)
		n++
	}
	return n
}
