package store

import (
	"bytes"
	"encoding/json"
	"strings"
)

// redactionNull is how a stored session without a redaction request encodes the field. It cannot occur inside
// a string value (a quote there is escaped), and no nested object of a stored session has a redaction field.
var redactionNull = []byte(`"redaction":null`)

// sessionRedaction reads the redaction field of a stored session without decoding the rest of it in the
// common case (none requested). An undecodable session counts as redacting, so callers scrub: failing closed.
func sessionRedaction(raw []byte) *Redaction {
	if bytes.Contains(raw, redactionNull) {
		return nil
	}
	var head struct {
		Redaction *Redaction `json:"redaction"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return &Redaction{Status: RedactionProcessing}
	}
	return head.Redaction
}

// storedSessionRedaction is sessionRedaction of a session as stored (compressed or not). A value that does not
// decode counts as redacting, like one that does not parse.
func storedSessionRedaction(stored string) *Redaction {
	raw, err := decodeDocString(stored)
	if err != nil {
		return &Redaction{Status: RedactionProcessing}
	}
	return sessionRedaction(raw)
}

// SessionIDs keeps the verification-session ids among object ids.
func SessionIDs(objects []string) []string {
	var out []string
	for _, id := range objects {
		if strings.HasPrefix(id, "vs_") {
			out = append(out, id)
		}
	}
	return out
}
