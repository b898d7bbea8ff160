package api

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/identityd/identityd/store"
)

// A response is stored (in its request log, and for an idempotent replay) as a reference document: what it
// showed, by id and version, never the personal values themselves. A session is stored as (id, version,
// expansions) and rendered from the session's personal-data record when the log is read or the response
// replayed — with the same renderer as the live answer, so a replay before redaction is byte for byte the
// first answer, and after it the scrubbed one. Objects with no personal data (webhook endpoints, bulk jobs,
// audit records) are kept as they were sent; an error keeps only what cannot echo a client's value.

// Stored document types.
const (
	storedSession  = "session"  // ID, Rev, Expand
	storedSessions = "sessions" // Items ("id.rev"), Expand, URL, HasMore
	storedReport   = "report"   // ID, Expand
	storedReports  = "reports"  // IDs, Expand, URL, HasMore
	storedEvent    = "event"    // ID, APIVersion
	storedEvents   = "events"   // IDs, URL, HasMore, APIVersion
	storedLogs     = "logs"     // IDs, URL, HasMore: other logs by id, never their content
	storedJSON     = "json"     // Body: a response with no personal data, as sent
	storedError    = "error"    // Status, Error
	storedOmitted  = "omitted"  // nothing kept (a response this server does not know to be free of personal data)
)

// storedBody is the reference document of one response.
type storedBody struct {
	T       string          `json:"t"`
	ID      string          `json:"id,omitempty"`
	Rev     int64           `json:"v,omitempty"`
	Items   []string        `json:"items,omitempty"`
	IDs     []string        `json:"ids,omitempty"`
	Expand  []string        `json:"x,omitempty"`
	URL     string          `json:"url,omitempty"`
	HasMore bool            `json:"more,omitempty"`
	Body    json.RawMessage `json:"body,omitempty"`
	Error   *Error          `json:"error,omitempty"`
	Bytes   int             `json:"bytes,omitempty"`
	// APIVersion is the version events were rendered with, when it was not the default.
	APIVersion string `json:"av,omitempty"`
}

func (ex expansions) list() []string {
	out := make([]string, 0, len(ex))
	for _, paths := range [][]string{sessionExpandable, reportExpandable} {
		for _, p := range paths {
			if ex[p] {
				out = append(out, p)
			}
		}
	}
	return out
}

func expansionsOf(paths []string) expansions {
	ex := expansions{}
	for _, p := range paths {
		ex[p] = true
	}
	return ex
}

func sessionItem(id string, rev int64) string { return id + "." + strconv.FormatInt(rev, 10) }

func parseSessionItem(item string) (store.SessionRef, bool) {
	id, rev, ok := strings.Cut(item, ".")
	n, err := strconv.ParseInt(rev, 10, 64)
	return store.SessionRef{ID: id, Rev: n}, ok && err == nil
}

// refFor derives the reference document of a handler's successful result.
func refFor(out any) *storedBody {
	switch v := out.(type) {
	case *sessionView:
		return &storedBody{T: storedSession, ID: v.Session.ID, Rev: v.Session.Rev, Expand: v.ex.list()}
	case *listResponse[*sessionView]:
		doc := &storedBody{T: storedSessions, URL: v.URL, HasMore: v.HasMore, Items: make([]string, len(v.Data))}
		for i, s := range v.Data {
			doc.Items[i] = sessionItem(s.Session.ID, s.Session.Rev)
			if i == 0 {
				doc.Expand = s.ex.list()
			}
		}
		return doc
	case *reportView:
		return &storedBody{T: storedReport, ID: v.ID, Expand: v.ex.list()}
	case *listResponse[*reportView]:
		doc := &storedBody{T: storedReports, URL: v.URL, HasMore: v.HasMore, IDs: make([]string, len(v.Data))}
		for i, r := range v.Data {
			doc.IDs[i] = r.ID
			if i == 0 {
				doc.Expand = r.ex.list()
			}
		}
		return doc
	case *store.Event:
		return &storedBody{T: storedEvent, ID: v.ID, APIVersion: nonDefaultVersion(v.APIVersion)}
	case *listResponse[*store.Event]:
		doc := listRef(storedEvents, v, func(e *store.Event) string { return e.ID })
		if len(v.Data) > 0 {
			doc.APIVersion = nonDefaultVersion(v.Data[0].APIVersion)
		}
		return doc
	case *listResponse[*requestLogView]:
		return listRef(storedLogs, v, func(l *requestLogView) string { return l.ID })
	}
	return nil
}

// nonDefaultVersion returns v, or "" for the default version (a stored document leaves it out).
func nonDefaultVersion(v string) string {
	if v == store.APIVersion {
		return ""
	}
	return v
}

// version is the API version the stored events were rendered with.
func (doc *storedBody) version() string {
	if doc.APIVersion == "" {
		return store.APIVersion
	}
	return doc.APIVersion
}

// listRef is the reference document of a list page of objects stored by id.
func listRef[T any](typ string, page *listResponse[T], id func(T) string) *storedBody {
	doc := &storedBody{T: typ, URL: page.URL, HasMore: page.HasMore, IDs: make([]string, len(page.Data))}
	for i, x := range page.Data {
		doc.IDs[i] = id(x)
	}
	return doc
}

// storedDoc returns the document to store for a response: the handler's reference, the body itself when the
// handler declared it free of personal data, the error's safe part, or nothing.
func (c *call) storedDoc(status int, body []byte) []byte {
	doc := &storedBody{T: storedOmitted, Bytes: len(body)}
	switch {
	case status >= 400 && c.err != nil:
		doc = &storedBody{T: storedError, Error: storableError(c.err, c.form)}
	case status >= 400:
		doc = &storedBody{T: storedError, Error: &Error{Type: "api_error", Message: Redacted}}
	case c.ref != nil:
		doc = c.ref
	case c.plainBody:
		doc = &storedBody{T: storedJSON, Body: c.stored(body, status)}
	}
	out, _ := json.Marshal(doc) // a storedBody always marshals
	return out
}

// Redacted stands in for a value a stored document does not keep.
const Redacted = store.Redacted

// storableError keeps what an error can show without echoing a client's value: its type, code and status,
// the parameter it names when that is a parameter identityd knows, and the message with anything the client
// chose (an unknown parameter's name, the value of the parameter it names, any personal value) replaced.
func storableError(e *Error, f *Form) *Error {
	out := *e.bounded()
	if out.Param != "" && !store.KnownParam(out.Param) && out.Param != "id" && out.Param != "Idempotency-Key" {
		out.Message = strings.ReplaceAll(out.Message, out.Param, Redacted)
		out.Param = Redacted
	}
	if f == nil {
		return &out
	}
	for _, p := range f.Params() {
		if len(p.Value) >= 3 && (!store.KeptParam(p.Key) || inFamily(p.Key, e.Param)) {
			out.Message = strings.ReplaceAll(out.Message, p.Value, Redacted)
		}
		if len(p.Key) >= 3 && !store.KnownParam(p.Key) {
			out.Message = strings.ReplaceAll(out.Message, p.Key, Redacted)
		}
	}
	return &out
}

// inFamily reports whether the parameter key is param or one of its elements (expand → expand[0]).
func inFamily(key, param string) bool {
	return param != "" && (key == param || strings.HasPrefix(key, param+"["))
}

// renderStored renders a stored reference document as the response it stands for. A list of request logs
// renders as their ids only, so a log never grows with the logs it listed.
func (c *call) renderStored(ctx context.Context, raw []byte) ([]byte, error) {
	var doc storedBody
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("stored response: %w", err)
	}
	st := c.srv.cfg.Store
	switch doc.T {
	case storedSession:
		sessions, redacting, err := st.SessionVersions(ctx, c.scope, []store.SessionRef{{ID: doc.ID, Rev: doc.Rev}})
		if err != nil {
			return nil, err
		}
		if sessions[0] == nil {
			return nil, fmt.Errorf("stored response: session %s: %w", doc.ID, store.ErrNotFound)
		}
		views, err := c.renderStoredSessions(ctx, sessions, redacting, expansionsOf(doc.Expand))
		if err != nil {
			return nil, err
		}
		return json.Marshal(views[0])
	case storedSessions:
		refs := make([]store.SessionRef, 0, len(doc.Items))
		for _, item := range doc.Items {
			if ref, ok := parseSessionItem(item); ok {
				refs = append(refs, ref)
			}
		}
		found, foundRedacting, err := st.SessionVersions(ctx, c.scope, refs)
		if err != nil {
			return nil, err
		}
		var sessions []*store.Session
		var redacting []bool
		for i, s := range found {
			if s != nil {
				sessions, redacting = append(sessions, s), append(redacting, foundRedacting[i])
			}
		}
		views, err := c.renderStoredSessions(ctx, sessions, redacting, expansionsOf(doc.Expand))
		if err != nil {
			return nil, err
		}
		return json.Marshal(newList(doc.URL, views, doc.HasMore))
	case storedReport:
		reports, err := c.storedReports(ctx, []string{doc.ID})
		if err != nil {
			return nil, err
		}
		if len(reports) == 0 {
			return nil, fmt.Errorf("stored response: report %s: %w", doc.ID, store.ErrNotFound)
		}
		return json.Marshal(viewReport(reports[0], expansionsOf(doc.Expand)))
	case storedReports:
		reports, err := c.storedReports(ctx, doc.IDs)
		if err != nil {
			return nil, err
		}
		return json.Marshal(newList(doc.URL, viewReports(reports, expansionsOf(doc.Expand)), doc.HasMore))
	case storedEvent:
		ev, err := st.GetEvent(ctx, c.scope, doc.ID)
		if err != nil {
			return nil, err
		}
		return json.Marshal(ev.In(doc.version()))
	case storedEvents:
		evs, err := st.Events(ctx, c.scope, doc.IDs)
		if err != nil {
			return nil, err
		}
		evs = dropNil(evs)
		for i, ev := range evs {
			evs[i] = ev.In(doc.version())
		}
		return json.Marshal(newList(doc.URL, evs, doc.HasMore))
	case storedLogs:
		stubs := make([]logStub, len(doc.IDs))
		for i, id := range doc.IDs {
			stubs[i] = logStub{ID: id, Object: "request_log"}
		}
		return json.Marshal(newList(doc.URL, stubs, doc.HasMore))
	case storedJSON:
		return doc.Body, nil
	case storedError:
		if doc.Error == nil {
			return []byte("null"), nil
		}
		return errorBody(doc.Error), nil
	default:
		return json.Marshal(map[string]any{"object": "omitted", "bytes": doc.Bytes})
	}
}

// renderStoredSessions is renderSessions for versions read from personal-data records: an expanded report of a
// session whose redaction was requested (redacting[i], read with the versions) is scrubbed like the session.
func (c *call) renderStoredSessions(ctx context.Context, sessions []*store.Session, redacting []bool, ex expansions) ([]*sessionView, error) {
	views, err := c.renderSessions(ctx, sessions, ex)
	if err != nil {
		return nil, err
	}
	for i, v := range views {
		if r, ok := v.LastVerificationReport.(*reportView); ok && redacting[i] {
			scrubbed := *r.Report
			if err := store.ScrubReport(&scrubbed); err != nil {
				return nil, err
			}
			v.LastVerificationReport = viewReport(&scrubbed, r.ex)
		}
	}
	return views, nil
}

// storedReports loads reports for a stored response, scrubbed when their session's redaction was requested
// (the worker scrubs the stored reports themselves when it completes the redaction).
func (c *call) storedReports(ctx context.Context, ids []string) ([]*store.Report, error) {
	st := c.srv.cfg.Store
	loaded, err := st.GetReports(ctx, c.scope, ids)
	if err != nil {
		return nil, err
	}
	reports := dropNil(loaded)
	sessions := make([]string, len(reports))
	for i, r := range reports {
		if r.VerificationSession != nil {
			sessions[i] = *r.VerificationSession
		}
	}
	statuses, err := st.RedactionStatuses(ctx, c.scope, sessions)
	if err != nil {
		return nil, err
	}
	for i, r := range reports {
		if statuses[i] != "" {
			if err := store.ScrubReport(r); err != nil {
				return nil, err
			}
		}
	}
	return reports, nil
}

// logStub stands for a request log inside another log's rendered response.
type logStub struct {
	ID     string `json:"id"`
	Object string `json:"object"`
}

func dropNil[T any](in []*T) []*T {
	out := make([]*T, 0, len(in))
	for _, x := range in {
		if x != nil {
			out = append(out, x)
		}
	}
	return out
}
