package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// RequestLog records one authenticated API request.
type RequestLog struct {
	ID             string          `json:"id"`
	Object         string          `json:"object"`
	Created        int64           `json:"created"`
	Livemode       bool            `json:"livemode"`
	Method         string          `json:"method"`
	Path           string          `json:"path"`
	Status         int             `json:"status"`
	IdempotencyKey *string         `json:"idempotency_key"`
	Params         []Param         `json:"params"`
	Response       json.RawMessage `json:"response"`
	Objects        []string        `json:"objects"`
}

func (l *RequestLog) scrub(sessionID string) {
	l.Params = ScrubParams(l.Params)
	l.Response = scrubLogResponse(l.Response, sessionID)
}

// SaveRequestLog stores a request log with the configured TTL and indexes it under every object it touched.
func (s *Store) SaveRequestLog(ctx context.Context, sc Scope, l *RequestLog) error {
	l.Object = "request_log"
	if l.Params == nil {
		l.Params = []Param{}
	}
	if len(l.Response) == 0 {
		l.Response = json.RawMessage("null")
	}
	ttl := s.RequestLogTTL
	member := indexMember(l.Created, l.ID)
	sessions := SessionIDs(l.Objects)
	body := l.encode()
	saved, err := s.saveLogUnredacted(ctx, sc, l, sessions, EncodeDoc(body), member)
	if err != nil {
		return fmt.Errorf("save request log: %w", err)
	}
	if saved {
		return nil
	}
	err = s.saveTied(ctx, sc, sessions, l.scrub, func(pipe redis.Pipeliner) {
		body := l.encode() // again: scrub may have changed the log
		pipe.Set(ctx, s.requestLogKey(sc, l.ID), EncodeDoc(body), ttl)
		for _, id := range l.Objects {
			key := s.objectLogsKey(sc, id)
			pipe.ZAdd(ctx, key, redis.Z{Member: member})
			pipe.Expire(ctx, key, ttl)
		}
	})
	if err != nil {
		return fmt.Errorf("save request log: %w", err)
	}
	return nil
}

// saveLogScript is the common case of SaveRequestLog in one round trip: when none of the sessions the log
// names has a redaction requested, it writes the log and indexes it under every object, atomically with that
// check — what saveTied's WATCH/MULTI does in three round trips. Otherwise it writes nothing and returns 0,
// and the caller takes saveTied, which scrubs.
//
// The check is the existence of each session's redaction record: requestRedaction writes the record in the
// transaction that sets the session's redaction (the only writer of a redaction request), and nothing deletes
// it, so "no record" is "no redaction requested" — read without loading the (compressed) session.
//
// KEYS: the log, then ARGV[1] redaction-record keys, then the object-log indexes. ARGV: the record count, the
// stored log, the TTL in milliseconds (0: none), the index member.
var saveLogScript = redis.NewScript(`
local n = tonumber(ARGV[1])
for i = 2, n + 1 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    return 0
  end
end
local ms = tonumber(ARGV[3])
if ms > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ms)
else
  redis.call('SET', KEYS[1], ARGV[2])
end
for i = n + 2, #KEYS do
  redis.call('ZADD', KEYS[i], 0, ARGV[4])
  if ms > 0 then
    redis.call('PEXPIRE', KEYS[i], ms)
  end
end
return 1
`)

// saveLogUnredacted runs saveLogScript with the stored (encoded) log; saved is false when the log must go
// through saveTied.
func (s *Store) saveLogUnredacted(ctx context.Context, sc Scope, l *RequestLog, sessions []string, body []byte, member string) (saved bool, err error) {
	keys := make([]string, 0, 1+len(sessions)+len(l.Objects))
	keys = append(keys, s.requestLogKey(sc, l.ID))
	for _, id := range sessions {
		if !safeID(id) {
			return false, nil
		}
		keys = append(keys, s.redactionRecordKey(sc, id))
	}
	for _, id := range l.Objects {
		keys = append(keys, s.objectLogsKey(sc, id))
	}
	n, err := saveLogScript.Run(ctx, s.rdb, keys, len(sessions), body, s.RequestLogTTL.Milliseconds(), member).Int()
	return n == 1, err
}

// ListRequestLogs returns a page of the request logs that touched object, newest first.
func (s *Store) ListRequestLogs(ctx context.Context, sc Scope, object string, p Page) ([]*RequestLog, bool, error) {
	cursor, err := s.cursorMember(ctx, "", p, func(id string) (int64, error) {
		logs, err := mget[RequestLog](ctx, s, []string{id}, func(id string) string { return s.requestLogKey(sc, id) })
		if err != nil {
			return 0, err
		}
		if logs[0] == nil {
			return 0, ErrNotFound
		}
		return logs[0].Created, nil
	})
	if err != nil {
		return nil, false, err
	}
	// Expired logs leave members behind in the index; they load as nil and are skipped.
	return listFiltered(ctx, s, s.objectLogsKey(sc, object), p, cursor, func(ctx context.Context, ids []string) ([]*RequestLog, error) {
		return mget[RequestLog](ctx, s, ids, func(id string) string { return s.requestLogKey(sc, id) })
	}, nil)
}

// responsePlaceholder stands in for the response while the rest of a log is marshalled: the response is
// already JSON (rendered or scrubbed by this process), and json.Marshal would validate and compact it again —
// the largest part of a list request's log.
var responsePlaceholder = []byte(`"response":0,"objects"`)

// encode marshals the log with its response spliced in as is.
func (l *RequestLog) encode() []byte {
	resp := l.Response
	l.Response = json.RawMessage("0")
	body, _ := json.Marshal(l) // a RequestLog always marshals
	l.Response = resp
	i := bytes.Index(body, responsePlaceholder)
	if i < 0 || len(resp) == 0 || (resp[0] != '{' && resp[0] != '[' && resp[0] != 'n') {
		out, _ := json.Marshal(l) // not a rendered response: let json validate it
		return out
	}
	out := make([]byte, 0, len(body)+len(resp))
	out = append(out, body[:i]...)
	out = append(out, `"response":`...)
	out = append(out, resp...)
	out = append(out, body[i+len(`"response":0`):]...)
	return out
}
