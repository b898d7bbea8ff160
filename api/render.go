package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/identityd/identityd/store"
)

// expansions is the set of expand[] paths a request asked for, checked against what the endpoint allows.
type expansions map[string]bool

// readExpand reads expand[] and rejects paths the endpoint cannot expand. In lists, paths start with "data.".
func readExpand(f *Form, list bool, allowed ...string) (expansions, error) {
	paths, _, err := f.Values("expand")
	if err != nil {
		return nil, err
	}
	ex := expansions{}
	for _, p := range paths {
		path := p
		if list {
			var ok bool
			if path, ok = strings.CutPrefix(p, "data."); !ok {
				return nil, invalidParam("expand", "parameter_invalid", "List expansions must start with data.")
			}
		}
		ok := false
		for _, a := range allowed {
			if path == a {
				ok = true
			}
		}
		if !ok {
			return nil, invalidParam("expand", "parameter_invalid", "This property cannot be expanded.")
		}
		ex[path] = true
	}
	return ex, nil
}

// reportExpandable are a report's sensitive fields: shown only when expanded, as on Stripe.
var reportExpandable = []string{"document.dob", "document.number", "id_number.dob", "id_number.id_number"}

// sessionExpandable are the session's expansions: its report (and that report's sensitive fields), and
// verified_outputs with its sensitive fields. Expanding a nested path shows what contains it.
var sessionExpandable = append([]string{"last_verification_report", "verified_outputs", "verified_outputs.dob",
	"verified_outputs.id_number"}, prefixed("last_verification_report.", reportExpandable)...)

func prefixed(prefix string, paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = prefix + p
	}
	return out
}

// under returns the expansions below prefix, with the prefix cut.
func (ex expansions) under(prefix string) expansions {
	out := expansions{}
	for p := range ex {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			out[rest] = true
		}
	}
	return out
}

// shown is a field a response shows only on request: absent when not shown, null when shown with no value.
// Use it with the omitzero option.
type shown[T any] struct {
	on bool
	v  *T
}

func show[T any](v *T) shown[T] { return shown[T]{on: true, v: v} }

// IsZero reports whether the field is left out.
func (s shown[T]) IsZero() bool { return !s.on }

// MarshalJSON renders the value, or null.
func (s shown[T]) MarshalJSON() ([]byte, error) { return json.Marshal(s.v) }

// sessionView is a session as a response shows it: verified_outputs only when expanded (null when the
// session has none; its dob and id_number only when those are expanded too), last_verification_report as an
// id or, expanded, the report.
type sessionView struct {
	*store.Session
	LastVerificationReport any                        `json:"last_verification_report"`
	VerifiedOutputs        shown[verifiedOutputsView] `json:"verified_outputs,omitzero"`
	Rev                    *struct{}                  `json:"rev,omitempty"` // the store's version counter: never shown
	// ex are the expansions it was rendered with, for its stored reference (stored.go).
	ex expansions
}

type verifiedOutputsView struct {
	store.VerifiedOutputs
	Dob      shown[store.Date] `json:"dob,omitzero"`
	IDNumber shown[string]     `json:"id_number,omitzero"`
}

// reportView is a report as a response shows it: its sensitive fields only when expanded.
type reportView struct {
	*store.Report
	Document *documentView `json:"document,omitempty"`
	IDNumber *idNumberView `json:"id_number,omitempty"`
	// ex are the expansions it was rendered with, for its stored reference (stored.go).
	ex expansions
}

type documentView struct {
	store.DocumentReport
	Dob    shown[store.Date] `json:"dob,omitzero"`
	Number shown[string]     `json:"number,omitzero"`
}

type idNumberView struct {
	store.IDNumberReport
	Dob      shown[store.Date] `json:"dob,omitzero"`
	IDNumber shown[string]     `json:"id_number,omitzero"`
}

// viewReport renders a report with the expansions of its sensitive fields.
func viewReport(r *store.Report, ex expansions) *reportView {
	v := &reportView{Report: r, ex: ex}
	if d := r.Document; d != nil {
		v.Document = &documentView{DocumentReport: *d}
		if ex["document.dob"] {
			v.Document.Dob = show(d.Dob)
		}
		if ex["document.number"] {
			v.Document.Number = show(d.Number)
		}
	}
	if n := r.IDNumber; n != nil {
		v.IDNumber = &idNumberView{IDNumberReport: *n}
		if ex["id_number.dob"] {
			v.IDNumber.Dob = show(n.Dob)
		}
		if ex["id_number.id_number"] {
			v.IDNumber.IDNumber = show(n.IDNumber)
		}
	}
	return v
}

func viewReports(reports []*store.Report, ex expansions) []*reportView {
	out := make([]*reportView, len(reports))
	for i, r := range reports {
		out[i] = viewReport(r, ex)
	}
	return out
}

// renderSessions renders sessions with the requested expansions, loading expanded reports in one MGET.
func (c *call) renderSessions(ctx context.Context, sessions []*store.Session, ex expansions) ([]*sessionView, error) {
	views := make([]*sessionView, len(sessions))
	var reportIDs []string
	for i, s := range sessions {
		c.touch(s.ID)
		v := &sessionView{Session: s, ex: ex}
		if s.LastVerificationReport != nil {
			v.LastVerificationReport = *s.LastVerificationReport
			reportIDs = append(reportIDs, *s.LastVerificationReport)
		}
		if ex["verified_outputs"] || ex["verified_outputs.dob"] || ex["verified_outputs.id_number"] {
			var vo *verifiedOutputsView
			if s.VerifiedOutputs != nil {
				vo = &verifiedOutputsView{VerifiedOutputs: *s.VerifiedOutputs}
				if ex["verified_outputs.dob"] {
					vo.Dob = show(s.VerifiedOutputs.Dob)
				}
				if ex["verified_outputs.id_number"] {
					vo.IDNumber = show(s.VerifiedOutputs.IDNumber)
				}
			}
			v.VerifiedOutputs = show(vo)
		}
		views[i] = v
	}
	if len(reportIDs) > 0 && ex.expandsReport() {
		reports, err := c.srv.cfg.Store.GetReports(ctx, c.scope, reportIDs)
		if err != nil {
			return nil, err
		}
		byID := map[string]*store.Report{}
		for _, r := range reports {
			if r != nil {
				byID[r.ID] = r
				c.touch(r.ID)
			}
		}
		for _, v := range views {
			if v.Session.LastVerificationReport != nil {
				if r, ok := byID[*v.Session.LastVerificationReport]; ok {
					v.LastVerificationReport = viewReport(r, ex.under("last_verification_report."))
				}
			}
		}
	}
	return views, nil
}

// expandsReport reports whether last_verification_report is expanded, itself or through a nested path.
func (ex expansions) expandsReport() bool {
	for p := range ex {
		if p == "last_verification_report" || strings.HasPrefix(p, "last_verification_report.") {
			return true
		}
	}
	return false
}

func (c *call) renderSession(s *store.Session, ex expansions) (*sessionView, error) {
	views, err := c.renderSessions(c.ctx, []*store.Session{s}, ex)
	if err != nil {
		return nil, err
	}
	return views[0], nil
}

// listResponse is Stripe's list object.
type listResponse[T any] struct {
	Object  string `json:"object"`
	URL     string `json:"url"`
	HasMore bool   `json:"has_more"`
	Data    []T    `json:"data"`
}

func newList[T any](url string, data []T, hasMore bool) *listResponse[T] {
	if data == nil {
		data = []T{}
	}
	return &listResponse[T]{Object: "list", URL: url, HasMore: hasMore, Data: data}
}

// readPage reads limit, starting_after, ending_before and created.
func readPage(f *Form) (store.Page, error) {
	var p store.Page
	limit, err := f.Int("limit")
	if err != nil {
		return p, err
	}
	p.Limit = 10
	if limit != nil {
		if *limit < 1 || *limit > 100 {
			return p, invalidParam("limit", "parameter_invalid", "Invalid limit: must be between 1 and 100.")
		}
		p.Limit = int(*limit)
	}
	sa, err := f.NonEmpty("starting_after")
	if err != nil {
		return p, err
	}
	eb, err := f.NonEmpty("ending_before")
	if err != nil {
		return p, err
	}
	for _, cur := range []struct {
		name string
		v    *string
	}{{"starting_after", sa}, {"ending_before", eb}} {
		if cur.v != nil && !validObjectID(*cur.v) {
			return p, resourceMissing("object", cur.name) // no object has such an id
		}
	}
	if sa != nil && eb != nil {
		return p, invalidParam("ending_before", "parameter_invalid", "starting_after and ending_before are mutually exclusive.")
	}
	if sa != nil {
		p.StartingAfter = *sa
	}
	if eb != nil {
		p.EndingBefore = *eb
	}
	p.Created, err = f.Created("created")
	return p, err
}

// listError words a list's failure: a cursor naming no object of the kind is resource_missing on the cursor
// parameter (the only way a list read finds nothing to stand on); anything else passes through.
func listError(err error, kind string, p store.Page) error {
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	param := "starting_after"
	if p.EndingBefore != "" {
		param = "ending_before"
	}
	return resourceMissing(kind, param)
}

// readListPage finishes reading a list whose objects have nothing to expand: the page, an expand[] that may
// only be empty, and the unknown-parameter check — the common tail of the list handlers.
func (c *call) readListPage() (store.Page, error) {
	page, err := readPage(c.form)
	if err != nil {
		return page, err
	}
	if _, err := readExpand(c.form, true); err != nil {
		return page, err
	}
	return page, c.checkUnknown()
}

// rendered is a response body the handler already rendered as JSON; run sends it as is.
type rendered []byte

// appendSessionView appends a stored session (compact JSON, store.ListSessionsJSON) as a response shows it without
// expansions — what json.Marshal(&sessionView{…}) renders, spliced from the stored bytes: every member in
// stored order but verified_outputs (shown only when expanded) and last_verification_report, which a
// sessionView renders last. ok is false when raw is not a session this can splice; dst is then unchanged.
func appendSessionView(dst, raw []byte) (out []byte, ok bool) {
	start := len(dst)
	dst = append(dst, '{')
	first := true
	report := []byte("null")
	walked := store.EachMember(raw, func(k string, v []byte) bool {
		switch k {
		case "verified_outputs", "rev":
			return true
		case "last_verification_report":
			report = v
			return true
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, k...)
		dst = append(dst, '"', ':')
		dst = append(dst, v...)
		return true
	})
	if !walked || first {
		return dst[:start], false
	}
	dst = append(dst, `,"last_verification_report":`...)
	dst = append(dst, report...)
	return append(dst, '}'), true
}

// renderSessionList renders a list page of stored sessions without expansions: the list object json.Marshal
// renders for newList(url, views, hasMore), with each session spliced by appendSessionView.
func (c *call) renderSessionList(url string, sessions []*store.SessionJSON, hasMore bool) (rendered, error) {
	size := 96 + len(url)
	for _, s := range sessions {
		size += len(s.JSON) + 1
	}
	b := make([]byte, 0, size)
	b = append(b, `{"object":"list","url":`...)
	b = strconv.AppendQuote(b, url)
	b = append(b, `,"has_more":`...)
	b = strconv.AppendBool(b, hasMore)
	b = append(b, `,"data":[`...)
	c.ref = &storedBody{T: storedSessions, URL: url, HasMore: hasMore, Items: make([]string, len(sessions))}
	for i, s := range sessions {
		c.touch(s.ID)
		c.ref.Items[i] = sessionItem(s.ID, s.Rev)
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendSessionView(b, s.JSON); !ok {
			return nil, fmt.Errorf("render session %s: stored JSON is not an object", s.ID)
		}
	}
	return append(b, ']', '}'), nil
}
