package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

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
	// InRedaction names sessions the caller knows to have a redaction requested (the redact call's own session):
	// the log is scrubbed for them before its first write instead of after the write script finds their
	// records. A hint only: every other session the log names is still checked. Not stored.
	InRedaction []string `json:"-"`
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
	// Sessions whose redaction the log has not been scrubbed for. A redaction record never goes away, so each
	// round that finds one scrubs for it for good: at most one round more than there are sessions. The first
	// round scrubs for the sessions the caller knows to be in redaction before anything is written.
	pending := sessions
	redacting := knownInRedaction(sessions, l.InRedaction)
	for {
		if len(redacting) > 0 {
			var err error
			if body, err = scrubLogMany(body, redacting); err != nil {
				return fmt.Errorf("scrub request log: %w", err)
			}
			pending = slices.DeleteFunc(slices.Clone(pending), func(id string) bool { return slices.Contains(redacting, id) })
		}
		found, ok, err := s.saveLogUnredacted(ctx, sc, l, pending, EncodeDoc(body), member)
		if err != nil {
			return fmt.Errorf("save request log: %w", err)
		}
		if !ok {
			break // an id that cannot name a key: the WATCH/MULTI path below decides
		}
		if len(found) == 0 {
			return nil
		}
		redacting = found
	}
	err := s.saveTied(ctx, sc, sessions, l.scrub, func(pipe redis.Pipeliner) {
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

// knownInRedaction returns the sessions of the log that the caller named in RequestLog.InRedaction.
func knownInRedaction(sessions, hinted []string) []string {
	var known []string
	for _, id := range hinted {
		if slices.Contains(sessions, id) && !slices.Contains(known, id) {
			known = append(known, id)
		}
	}
	return known
}

// saveLogUnredacted writes the stored (encoded) log, checked against sessions, through a shared run of
// saveLogsScript. It returns the sessions that have a redaction requested (nothing was written), or none (the
// log is saved); ok is false when a session id cannot name a key and the log must go through saveTied.
func (s *Store) saveLogUnredacted(ctx context.Context, sc Scope, l *RequestLog, sessions []string, body []byte,
	member string) (redacting []string, ok bool, err error) {
	w := &logWrite{key: s.requestLogKey(sc, l.ID), records: make([]string, 0, len(sessions)),
		indexes: make([]string, 0, len(l.Objects)), body: body, member: member}
	for _, id := range sessions {
		if !safeID(id) {
			return nil, false, nil
		}
		w.records = append(w.records, s.redactionRecordKey(sc, id))
	}
	for _, id := range l.Objects {
		w.indexes = append(w.indexes, s.objectLogsKey(sc, id))
	}
	positions, err := s.saveLogShared(ctx, sc, w)
	if err != nil {
		return nil, false, err
	}
	for _, p := range positions {
		redacting = append(redacting, sessions[p-1])
	}
	return redacting, true, nil
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
