package store

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"github.com/redis/go-redis/v9"
)

// saveTied writes a record that may hold personal data of the sessions it names (a request log, a cached
// response). Under WATCH on those sessions it looks at each one: if its redaction was already requested, the
// record is scrubbed before it is written. Either the write lands before the redaction request — and the
// redaction worker, which starts after the request, finds and scrubs it — or it sees the request and scrubs
// itself. So no personal data can slip in behind a redaction.
func (s *Store) saveTied(ctx context.Context, sc Scope, sessionIDs []string, scrub func(sessionID string), write func(pipe redis.Pipeliner)) error {
	keys := make([]string, len(sessionIDs))
	for i, id := range sessionIDs {
		keys[i] = s.sessionKey(sc, id)
	}
	if len(keys) == 0 {
		_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error { write(pipe); return nil })
		return err
	}
	return s.watchLoad(ctx, keys, func(tx *watchedTx, vals []any) error {
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue
			}
			if r := storedSessionRedaction(str); r != nil {
				scrub(sessionIDs[i])
			}
		}
		return tx.commit(ctx, func(pipe redis.Pipeliner) error { write(pipe); return nil })
	})
}

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
