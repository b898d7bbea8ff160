package store

import (
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
	return s.watchRetry(ctx, func(tx *redis.Tx) error {
		vals, err := tx.MGet(ctx, keys...).Result()
		if err != nil {
			return err
		}
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue
			}
			var head struct {
				Redaction *Redaction `json:"redaction"`
			}
			if json.Unmarshal([]byte(str), &head) == nil && head.Redaction != nil {
				scrub(sessionIDs[i])
			}
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error { write(pipe); return nil })
		return err
	}, keys...)
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
