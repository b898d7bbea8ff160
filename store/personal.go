package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The personal-data record: every personal value of a session is stored once, in the session's own keys —
// the session, its reports, and this record — under the account's hash tag. The record is one hash per
// session:
//
//   - "v<n>": version n of the session, as the top-level fields that changed since version n-1 (version 1 is
//     the whole session). A session gets a version whenever a committed change or an event shows a new state;
//     an event's data.object, a logged or cached response are references (session id, version) to it.
//   - "r:<request id>": the personal part of an API request that changed the session (its personal
//     parameters, its Idempotency-Key and the fingerprint of its parameters): a request log shows it from here.
//
// A redaction scrubs every field of the record with the table's rules (rules.go) in the transaction that
// marks the session redacted, so everything that refers to the session renders scrubbed from then on, with
// nothing else to rewrite: the cost of a redaction does not depend on how often the session was read.

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

func versionField(rev int64) string { return "v" + strconv.FormatInt(rev, 10) }

func requestField(requestID string) string { return "r:" + requestID }

// versionJSON is the session as a version records it: everything but the version counter.
func versionJSON(sess *Session) []byte {
	v := *sess
	v.Rev = 0
	body, _ := json.Marshal(&v) // a Session always marshals
	return body
}

// diffTop returns the top-level members of next that differ from prev (members gone from next as null), as
// a JSON object; nil when nothing differs.
func diffTop(prev, next []byte) ([]byte, error) {
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
		for k, v := range m {
			merged[k] = v
		}
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

// histories reads, in one pipeline, the versions up to the highest one wanted and the named request parts of
// each session, and each session's redaction state.
func (s *Store) histories(ctx context.Context, sc Scope, want map[string]*historyWant) (map[string]*sessionHistory, error) {
	out := make(map[string]*sessionHistory, len(want))
	if len(want) == 0 {
		return out, nil
	}
	type cmds struct {
		fields  []string
		values  *redis.SliceCmd
		session *redis.StringCmd
	}
	all := make(map[string]*cmds, len(want))
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for id, w := range want {
			if !safeID(id) {
				continue
			}
			c := &cmds{}
			for rev := int64(1); rev <= w.maxRev; rev++ {
				c.fields = append(c.fields, versionField(rev))
			}
			for _, r := range w.requests {
				c.fields = append(c.fields, requestField(r))
			}
			if len(c.fields) > 0 {
				c.values = pipe.HMGet(ctx, s.personalKey(sc, id), c.fields...)
			}
			c.session = pipe.Get(ctx, s.sessionKey(sc, id))
			all[id] = c
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("read personal data: %w", err)
	}
	for id, c := range all {
		w := want[id]
		h := &sessionHistory{id: id, requests: map[string]*RequestPersonal{}}
		if stored, err := c.session.Result(); err == nil {
			h.found = true
			h.redacting = storedSessionRedaction(stored) != nil
		}
		if c.values != nil {
			vals := c.values.Val()
			for i := int64(0); i < w.maxRev && int(i) < len(vals); i++ {
				str, _ := vals[i].(string)
				if str == "" {
					h.versions = append(h.versions, nil)
					continue
				}
				doc, err := decodeDocString(str)
				if err != nil {
					return nil, fmt.Errorf("session %s: %w", id, err)
				}
				h.versions = append(h.versions, doc)
			}
			for j, r := range w.requests {
				str, _ := vals[int(w.maxRev)+j].(string)
				if str == "" {
					continue
				}
				var p RequestPersonal
				if doc, err := decodeDocString(str); err == nil && json.Unmarshal(doc, &p) == nil {
					h.requests[r] = &p
				}
			}
		}
		out[id] = h
	}
	return out, nil
}

// SessionVersions returns the given versions of sessions (nil where a session or version is missing), each
// scrubbed when its session's redaction was requested. It reads in one round trip.
func (s *Store) SessionVersions(ctx context.Context, sc Scope, refs []SessionRef) ([]*Session, error) {
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
		return nil, err
	}
	out := make([]*Session, len(refs))
	for i, r := range refs {
		h := hist[r.ID]
		if h == nil || !h.found {
			continue
		}
		if out[i], err = h.at(r.Rev); err != nil {
			return nil, err
		}
	}
	return out, nil
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

// scrubPersonalRecord returns the record's fields (as stored) scrubbed by the table, as a flat field/value
// list for HSET.
func scrubPersonalRecord(id string, fields map[string]string) ([]any, error) {
	out := make([]any, 0, 2*len(fields))
	for name, stored := range fields {
		val, err := decodeDocString(stored)
		if err != nil {
			return nil, fmt.Errorf("session %s: %s: %w", id, name, err)
		}
		var scrubbed []byte
		switch {
		case len(name) > 2 && name[:2] == "r:":
			var p RequestPersonal
			if err := json.Unmarshal(val, &p); err != nil {
				return nil, fmt.Errorf("session %s: %s: %w", id, name, err)
			}
			p.scrub()
			scrubbed, _ = json.Marshal(&p)
		default:
			if scrubbed, err = scrubDoc(KindSession, val); err != nil {
				return nil, fmt.Errorf("session %s: %s: %w", id, name, err)
			}
		}
		out = append(out, name, EncodeDoc(scrubbed))
	}
	return out, nil
}
