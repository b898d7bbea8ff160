package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
)

// EachMember calls fn with the key and the raw value of every member of the JSON object raw, in order, as
// long as fn returns true. It reports false when raw is not a compact object it can walk: whitespace between
// tokens, an escaped key, a truncated value. It checks structure only (strings, brackets, where members end),
// not the grammar of literals: callers use it on JSON this process wrote, and fall back to a full decode when
// it reports false.
func EachMember(raw []byte, fn func(key string, value []byte) bool) bool {
	if len(raw) < 2 || raw[0] != '{' || raw[len(raw)-1] != '}' {
		return false
	}
	i := 1
	if raw[i] == '}' {
		return i == len(raw)-1
	}
	for {
		if i >= len(raw) || raw[i] != '"' {
			return false
		}
		end := stringEnd(raw[i+1:])
		if end < 0 {
			return false
		}
		key := raw[i+1 : i+1+end]
		if bytes.IndexByte(key, '\\') >= 0 {
			return false
		}
		i += end + 2
		if i >= len(raw) || raw[i] != ':' {
			return false
		}
		i++
		n := valueLen(raw[i:])
		if n <= 0 {
			return false
		}
		if !fn(string(key), raw[i:i+n]) {
			return true
		}
		i += n
		if i >= len(raw) {
			return false
		}
		switch raw[i] {
		case ',':
			i++
		case '}':
			return i == len(raw)-1
		default:
			return false
		}
	}
}

// valueLen returns the length of the compact JSON value at the start of b, or 0 when it does not end (or
// nests deeper than 32, more than any stored object).
func valueLen(b []byte) int {
	var open [32]byte // the closing bracket each open one expects
	depth := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			end := stringEnd(b[i+1:])
			if end < 0 {
				return 0
			}
			i += 1 + end
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			if depth == len(open) {
				return 0
			}
			open[depth] = c + 2 // '{'+2 == '}', '['+2 == ']'
			depth++
		case '}', ']':
			if depth == 0 || open[depth-1] != c { //nolint:gosec // G602: depth > 0 is checked first
				return 0
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ' ', '\t', '\r', '\n':
			return 0
		case ',', ':':
			if depth == 0 {
				return 0
			}
		default:
			if depth == 0 { // a literal: up to the next delimiter
				j := i
				for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' {
					if b[j] == ' ' || b[j] == '\t' || b[j] == '\r' || b[j] == '\n' || b[j] == '"' {
						return 0
					}
					j++
				}
				return j
			}
		}
	}
	return 0
}

// stringEnd returns the index in b of the quote that closes a JSON string whose opening quote precedes b, or
// -1 when there is none.
func stringEnd(b []byte) int {
	off := 0
	for {
		q := bytes.IndexByte(b[off:], '"')
		if q < 0 {
			return -1
		}
		q += off
		escapes := 0
		for j := q - 1; j >= 0 && b[j] == '\\'; j-- {
			escapes++
		}
		if escapes%2 == 0 {
			return q
		}
		off = q + 1
	}
}

// rawStringIs reports whether the raw JSON value v is the string s.
func rawStringIs(v []byte, s string) bool {
	if len(v) < 2 || v[0] != '"' {
		return false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1:len(v)-1]) == s
	}
	var got string
	return json.Unmarshal(v, &got) == nil && got == s
}

// SessionJSON is a stored session as JSON, as a list loads it, with the fields the list's filters look at.
type SessionJSON struct {
	ID   string
	JSON []byte
	// Rev is the session's version (its personal-data record's latest).
	Rev int64
	// raw values of the filtered fields
	status, clientReferenceID, relatedCustomer, relatedCustomerAccount []byte
}

// ListSessionsJSON is ListSessions with the sessions as stored JSON, for callers that render them without
// decoding. It reads each stretch of the index together with its sessions (rangeDocs), so an unfiltered page
// costs one round trip where ListSessions' costs two.
func (s *Store) ListSessionsJSON(ctx context.Context, sc Scope, f SessionFilter, p Page) ([]*SessionJSON, bool, error) {
	cursor, key, err := s.listStart(ctx, sc, f, p)
	if err != nil {
		return nil, false, err
	}
	match := func(x *SessionJSON) bool {
		return (f.ClientReferenceID == "" || rawStringIs(x.clientReferenceID, f.ClientReferenceID)) &&
			(f.RelatedCustomer == "" || rawStringIs(x.relatedCustomer, f.RelatedCustomer)) &&
			(f.RelatedCustomerAccount == "" || rawStringIs(x.relatedCustomerAccount, f.RelatedCustomerAccount)) &&
			(f.Status == "" || rawStringIs(x.status, f.Status))
	}
	docPrefix := s.sessionKey(sc, "")
	return listPaged(ctx, p, func(ctx context.Context, offset, count int64) ([]*SessionJSON, error) {
		ids, bodies, err := s.rangeDocs(ctx, key, docPrefix, p, cursor, offset, count)
		if err != nil {
			return nil, err
		}
		out := make([]*SessionJSON, len(bodies))
		for i, body := range bodies {
			if body == nil {
				continue
			}
			if out[i], err = readSessionJSON(ids[i], body); err != nil {
				return nil, err
			}
		}
		return out, nil
	}, match)
}

// readSessionJSON finds the filtered fields of a stored session. JSON it cannot walk (not written by
// json.Marshal) is decoded and marshalled again, so callers always get the compact form.
func readSessionJSON(id string, body []byte) (*SessionJSON, error) {
	x := &SessionJSON{JSON: body}
	walk := func() bool {
		return EachMember(x.JSON, func(k string, v []byte) bool {
			switch k {
			case "id":
				if rawStringIs(v, id) {
					x.ID = id
				} else if json.Unmarshal(v, &x.ID) != nil {
					return false
				}
			case "client_reference_id":
				x.clientReferenceID = v
			case "related_customer":
				x.relatedCustomer = v
			case "related_customer_account":
				x.relatedCustomerAccount = v
			case "status":
				x.status = v
			case "rev":
				n, err := strconv.ParseInt(string(v), 10, 64)
				if err != nil {
					return false
				}
				x.Rev = n
			}
			return true
		}) && x.ID != ""
	}
	if walk() {
		return x, nil
	}
	var sess Session
	if err := json.Unmarshal(body, &sess); err != nil {
		return nil, fmt.Errorf("decode %s: %w", id, err)
	}
	x.JSON, _ = json.Marshal(&sess) // a Session always marshals
	*x = SessionJSON{JSON: x.JSON}
	if !walk() {
		return nil, fmt.Errorf("decode %s: not a stored session", id)
	}
	return x, nil
}
