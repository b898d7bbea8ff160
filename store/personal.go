package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/redis/go-redis/v9"
)

// The personal-data record: every personal value of a session is stored once, in the session's own keys —
// the session, its reports, and this record — under the account's hash tag. The record is one compressed
// document per session (personalDoc):
//
//   - its versions: version n is the top-level fields of the session that changed since version n-1 (version
//     1 is the whole session). A session gets a version whenever a committed change or an event shows a new
//     state; an event's data.object and a logged or cached response are references (session id, version) to it.
//   - the personal part of each API request that changed the session (its personal parameters, its
//     Idempotency-Key and the fingerprint of its parameters), by request id: a request log shows it from here.
//
// A redaction scrubs the whole record with the table's rules (rules.go) in the transaction that marks the
// session redacted, so everything that refers to the session renders scrubbed from then on, with nothing else
// to rewrite: the cost of a redaction does not depend on how often the session was read.

// personalDoc is the personal-data record as stored.
type personalDoc struct {
	Versions []json.RawMessage           `json:"v"`
	Requests map[string]*RequestPersonal `json:"r,omitempty"`
}

// decodePersonal decodes a stored record; nil (no record yet) is an empty one.
func decodePersonal(id string, stored any) (*personalDoc, error) {
	doc := &personalDoc{}
	str, ok := stored.(string)
	if !ok || str == "" {
		return doc, nil
	}
	raw, err := decodeDocString(str)
	if err != nil {
		return nil, fmt.Errorf("personal data of %s: %w", id, err)
	}
	if err := json.Unmarshal(raw, doc); err != nil {
		return nil, fmt.Errorf("personal data of %s: %w", id, err)
	}
	return doc, nil
}

// encode returns the record as stored.
func (d *personalDoc) encode() []byte {
	raw, _ := json.Marshal(d) // a personalDoc always marshals
	return EncodeDoc(raw)
}

// scrub applies the table's rules to every version and every request's personal part.
func (d *personalDoc) scrub(id string) error {
	for i, v := range d.Versions {
		scrubbed, err := scrubRaw(KindSession, v)
		if err != nil {
			return fmt.Errorf("personal data of %s, version %d: %w", id, i+1, err)
		}
		d.Versions[i] = scrubbed
	}
	for _, p := range d.Requests {
		if p != nil {
			p.scrub()
		}
	}
	return nil
}

// RequestPersonal is the personal part of an API request that changed a session.
type RequestPersonal struct {
	IdempotencyKey *string `json:"idempotency_key,omitempty"`
	Params         []Param `json:"params,omitempty"`
	// Fingerprint hashes every parameter of the request; it decides whether a retry with the same
	// Idempotency-Key is the same request. Low-entropy values could be recovered from it, so it goes too.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// empty reports whether there is nothing personal to keep.
func (p *RequestPersonal) empty() bool {
	return p == nil || (p.IdempotencyKey == nil && len(p.Params) == 0 && p.Fingerprint == "")
}

func (p *RequestPersonal) scrub() {
	if p.IdempotencyKey != nil {
		r := Redacted
		p.IdempotencyKey = &r
	}
	p.Params = ScrubParams(p.Params)
	p.Fingerprint = ""
}

// versionJSON is the session as a version records it: everything but the version counter.
func versionJSON(sess *Session) []byte {
	v := *sess
	v.Rev = 0
	body, _ := json.Marshal(&v) // a Session always marshals
	return body
}

// diffTop returns the top-level members of next that differ from prev (members gone from next as null), as
// a JSON object; nil when nothing differs. Both are compact JSON objects as json.Marshal writes them; anything
// else goes through a full decode.
func diffTop(prev, next []byte) ([]byte, error) {
	old := map[string][]byte{}
	if !EachMember(prev, func(k string, v []byte) bool { old[k] = v; return true }) {
		return diffTopDecoded(prev, next)
	}
	patch := make([]byte, 0, 64)
	patch = append(patch, '{')
	seen := make(map[string]bool, len(old))
	walked := EachMember(next, func(k string, v []byte) bool {
		seen[k] = true
		if o, ok := old[k]; ok && bytes.Equal(o, v) {
			return true
		}
		patch = appendMember(patch, k, v)
		return true
	})
	if !walked {
		return diffTopDecoded(prev, next)
	}
	for k := range old {
		if !seen[k] {
			patch = appendMember(patch, k, []byte("null"))
		}
	}
	if len(patch) == 1 {
		return nil, nil
	}
	return append(patch, '}'), nil
}

// appendMember appends "k":v to a JSON object being written (k holds no character that needs escaping: it
// came out of an encoded object unescaped).
func appendMember(dst []byte, k string, v []byte) []byte {
	if len(dst) > 1 {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, k...)
	dst = append(dst, '"', ':')
	return append(dst, v...)
}

// diffTopDecoded is diffTop through a full decode, for JSON EachMember cannot walk.
func diffTopDecoded(prev, next []byte) ([]byte, error) {
	var a, b map[string]json.RawMessage
	if err := json.Unmarshal(prev, &a); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(next, &b); err != nil {
		return nil, err
	}
	patch := map[string]json.RawMessage{}
	for k, v := range b {
		if old, ok := a[k]; !ok || !bytes.Equal(old, v) {
			patch[k] = v
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			patch[k] = json.RawMessage("null")
		}
	}
	if len(patch) == 0 {
		return nil, nil
	}
	return json.Marshal(patch)
}

// foldVersions applies patches 1..n in order and decodes the result.
func foldVersions(id string, patches [][]byte) (*Session, error) {
	merged := map[string]json.RawMessage{}
	for i, p := range patches {
		if p == nil {
			return nil, fmt.Errorf("session %s: version %d is missing", id, i+1)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(p, &m); err != nil {
			return nil, fmt.Errorf("session %s: version %d: %w", id, i+1, err)
		}
		maps.Copy(merged, m)
	}
	body, err := json.Marshal(merged)
	if err != nil {
		return nil, err
	}
	var sess Session
	if err := json.Unmarshal(body, &sess); err != nil {
		return nil, fmt.Errorf("session %s: %w", id, err)
	}
	sess.Rev = int64(len(patches))
	return &sess, nil
}

// SessionRef names one version of a session.
type SessionRef struct {
	ID  string
	Rev int64
}

// sessionHistory is what rendering references to one session needs: its versions, the personal parts of
// requests, and whether its redaction was requested (then every version renders scrubbed, even before the
// worker scrubbed the record).
type sessionHistory struct {
	id        string
	versions  [][]byte
	requests  map[string]*RequestPersonal
	redacting bool
	found     bool
	folded    map[int64]*Session
}

// at returns version rev, scrubbed when the session is in redaction. The result is shared: do not change it.
func (h *sessionHistory) at(rev int64) (*Session, error) {
	if s, ok := h.folded[rev]; ok {
		return s, nil
	}
	if rev < 1 || rev > int64(len(h.versions)) {
		return nil, fmt.Errorf("session %s: no version %d: %w", h.id, rev, ErrNotFound)
	}
	sess, err := foldVersions(h.id, h.versions[:rev])
	if err != nil {
		return nil, err
	}
	if h.redacting {
		if err := ScrubSession(sess); err != nil {
			return nil, err
		}
	}
	if h.folded == nil {
		h.folded = map[int64]*Session{}
	}
	h.folded[rev] = sess
	return sess, nil
}

// request returns the personal part of a request, scrubbed when the session is in redaction; nil when none
// was recorded.
func (h *sessionHistory) request(id string) *RequestPersonal {
	p := h.requests[id]
	if p == nil {
		return nil
	}
	out := *p
	if h.redacting {
		out.scrub()
	}
	return &out
}

// historyWant is what to read of one session's record.
type historyWant struct {
	maxRev   int64
	requests []string
}

// histories reads, in one pipeline, the personal-data record and the redaction state of each session.
func (s *Store) histories(ctx context.Context, sc Scope, want map[string]*historyWant) (map[string]*sessionHistory, error) {
	out := make(map[string]*sessionHistory, len(want))
	if len(want) == 0 {
		return out, nil
	}
	type cmds struct{ record, session *redis.StringCmd }
	all := make(map[string]*cmds, len(want))
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for id := range want {
			if safeID(id) {
				all[id] = &cmds{record: pipe.Get(ctx, s.personalKey(sc, id)), session: pipe.Get(ctx, s.sessionKey(sc, id))}
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read personal data: %w", err)
	}
	for id, c := range all {
		h := &sessionHistory{id: id, requests: map[string]*RequestPersonal{}}
		if stored, err := c.session.Result(); err == nil {
			h.found = true
			h.redacting = storedSessionRedaction(stored) != nil
		}
		record, _ := c.record.Result()
		doc, err := decodePersonal(id, record)
		if err != nil {
			return nil, err
		}
		for _, v := range doc.Versions {
			h.versions = append(h.versions, []byte(v))
		}
		for _, r := range want[id].requests {
			if p := doc.Requests[r]; p != nil {
				h.requests[r] = p
			}
		}
		out[id] = h
	}
	return out, nil
}

// SessionVersions returns the given versions of sessions (nil where a session or version is missing), each
// scrubbed when its session's redaction was requested, and for each whether it was (now, not as of the version).
// It reads in one round trip.
func (s *Store) SessionVersions(ctx context.Context, sc Scope, refs []SessionRef) ([]*Session, []bool, error) {
	want := map[string]*historyWant{}
	for _, r := range refs {
		w := want[r.ID]
		if w == nil {
			w = &historyWant{}
			want[r.ID] = w
		}
		w.maxRev = max(w.maxRev, r.Rev)
	}
	hist, err := s.histories(ctx, sc, want)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*Session, len(refs))
	redacting := make([]bool, len(refs))
	for i, r := range refs {
		h := hist[r.ID]
		if h == nil || !h.found {
			continue
		}
		if out[i], err = h.at(r.Rev); err != nil {
			return nil, nil, err
		}
		redacting[i] = h.redacting
	}
	return out, redacting, nil
}

// RequestPersonals returns the recorded personal parts of requests that changed sessions (keyed by request
// id; nil where none was recorded), each scrubbed when its session's redaction was requested.
func (s *Store) RequestPersonals(ctx context.Context, sc Scope, bySession map[string][]string) (map[string]*RequestPersonal, error) {
	want := map[string]*historyWant{}
	for id, reqs := range bySession {
		want[id] = &historyWant{requests: reqs}
	}
	hist, err := s.histories(ctx, sc, want)
	if err != nil {
		return nil, err
	}
	out := map[string]*RequestPersonal{}
	for id, reqs := range bySession {
		for _, r := range reqs {
			out[r] = hist[id].request(r)
		}
	}
	return out, nil
}
