package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// RequestLog records one authenticated API request, as stored. Nothing in it is personal data: the request's
// personal parameters and Idempotency-Key live in the personal-data record of Session when the request changed
// a session (rendered from there, scrubbed once it is redacted), and are dropped otherwise; Response is a
// reference document the API renders when the log is read (a session as a version of it, a list as ids and
// versions, another log as its id), never another log's content.
type RequestLog struct {
	ID       string `json:"id"`
	Object   string `json:"object"`
	Created  int64  `json:"created"`
	Livemode bool   `json:"livemode"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	Status   int    `json:"status"`
	// IdempotencyKey is Redacted when the request had one whose value is not kept here.
	IdempotencyKey *string         `json:"idempotency_key"`
	Params         []Param         `json:"params"`
	Response       json.RawMessage `json:"response"`
	// Objects are the objects the request named (its path, what it created): the log is listed under each.
	Objects []string `json:"objects"`
	// Session is the session whose personal-data record holds this request's personal part, if any.
	Session string `json:"session,omitempty"`
}

// MaxStoredResponse caps a stored response document; a larger one is stored as its size only.
const MaxStoredResponse = 64 << 10

// SaveRequestLog stores a request log with the configured TTL and indexes it in the scope's log index and
// under every object it names.
func (s *Store) SaveRequestLog(ctx context.Context, sc Scope, l *RequestLog) error {
	l.Object = "request_log"
	if l.Params == nil {
		l.Params = []Param{}
	}
	if len(l.Response) == 0 {
		l.Response = json.RawMessage("null")
	}
	if len(l.Response) > MaxStoredResponse {
		l.Response = json.RawMessage(fmt.Sprintf(`{"t":"omitted","bytes":%d}`, len(l.Response)))
	}
	w := &logWrite{key: s.requestLogKey(sc, l.ID), indexes: make([]string, 0, 1+len(l.Objects)),
		body: EncodeDoc(l.encode()), member: indexMember(l.Created, l.ID)}
	w.indexes = append(w.indexes, s.requestLogIndexKey(sc))
	for _, id := range l.Objects {
		if !safeID(id) {
			continue
		}
		w.indexes = append(w.indexes, s.objectLogsKey(sc, id))
	}
	if err := s.logs.Do(ctx, sc, w); err != nil {
		return fmt.Errorf("save request log: %w", err)
	}
	return nil
}

// ListRequestLogs returns a page of the request logs that named object (every log of the scope when object is
// empty), newest first.
func (s *Store) ListRequestLogs(ctx context.Context, sc Scope, object string, p Page) ([]*RequestLog, bool, error) {
	cursor, err := s.cursorMember(p, func(id string) (int64, error) {
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
	index := s.requestLogIndexKey(sc)
	if object != "" {
		index = s.objectLogsKey(sc, object)
	}
	return listFiltered(ctx, s, index, p, cursor, func(ctx context.Context, ids []string) ([]*RequestLog, error) {
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
