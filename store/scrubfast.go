package store

import (
	"bytes"
	"encoding/json"
)

// Typed fast paths of the scrub rules for the batched redaction path, where thousands of sessions and event
// snapshots are scrubbed per second and the generic JSON walk of scrub.go dominates the CPU profile. They
// apply exactly scrubSessionMap's rules (scrubfast_test.go checks them against the JSON rules) and fall back
// to the JSON rules for anything not in the exact shape they know.

// scrubSessionFields applies the session rules to a typed session.
func scrubSessionFields(s *Session) {
	s.Metadata = map[string]string{}
	s.ClientSecret, s.URL = nil, nil
	if pd := s.ProvidedDetails; pd != nil {
		redactPtrs(&pd.Email, &pd.Phone)
	}
	if vo := s.VerifiedOutputs; vo != nil {
		redactPtrs(&vo.FirstName, &vo.LastName, &vo.Email, &vo.Phone, &vo.IDNumber, &vo.UnparsedPlaceOfBirth,
			&vo.UnparsedSex, &vo.Sex)
		if a := vo.Address; a != nil {
			redactPtrs(&a.City, &a.Country, &a.Line1, &a.Line2, &a.PostalCode, &a.State)
		}
		vo.Dob, vo.IDNumberType = nil, nil
	}
}

func redactPtrs(ps ...**string) {
	for _, p := range ps {
		if *p != nil {
			r := Redacted
			*p = &r
		}
	}
}

// scrubEventBytes scrubs a stored event for one session. An event whose data.object is that session's
// snapshot exactly as sessionSnapshot renders it gets the scrubbed snapshot spliced in (the envelope bytes are
// kept); any other event goes through ScrubJSONBytes.
func scrubEventBytes(raw []byte, sessionID string) []byte {
	if !bytes.Contains(raw, []byte(sessionID)) {
		return raw
	}
	var head struct {
		Data struct {
			Object json.RawMessage `json:"object"`
		} `json:"data"`
	}
	if json.Unmarshal(raw, &head) == nil && len(head.Data.Object) > 0 {
		obj := head.Data.Object
		var sess Session
		if json.Unmarshal(obj, &sess) == nil && sess.ID == sessionID && sess.Object == "identity.verification_session" &&
			sess.VerifiedOutputs == nil && bytes.Equal(sessionSnapshot(&sess), obj) && bytes.Count(raw, obj) == 1 {
			i := bytes.Index(raw, obj)
			scrubSessionFields(&sess)
			snap := sessionSnapshot(&sess)
			out := make([]byte, 0, len(raw)-len(obj)+len(snap))
			out = append(append(append(out, raw[:i]...), snap...), raw[i+len(obj):]...)
			return out
		}
	}
	out, _ := ScrubJSONBytes(raw, sessionID)
	return out
}
