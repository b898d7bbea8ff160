package api

import (
	"github.com/identityd/identityd/store"
)

func (s *Server) retrieveReport(c *call) (any, error) {
	ex, err := readExpand(c.form, false, reportExpandable...)
	if err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	r, err := s.cfg.Store.GetReport(c.ctx, c.scope, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	c.touchReport(r)
	return viewReport(r, ex), nil
}

func (c *call) touchReport(r *store.Report) {
	c.touch(r.ID)
	if r.VerificationSession != nil {
		c.touch(*r.VerificationSession)
	}
}

func (s *Server) listReports(c *call) (any, error) {
	f := c.form
	var filter store.ReportFilter
	vs, err := f.ObjectID("verification_session")
	if err != nil {
		return nil, err
	}
	if vs != nil {
		filter.VerificationSession = *vs
	}
	ref, err := f.NonEmpty("client_reference_id")
	if err != nil {
		return nil, err
	}
	if ref != nil {
		filter.ClientReferenceID = *ref
	}
	typ, err := f.Enum("type", sessionTypes...)
	if err != nil {
		return nil, err
	}
	if typ != nil {
		filter.Type = *typ
	}
	page, err := readPage(f)
	if err != nil {
		return nil, err
	}
	ex, err := readExpand(f, true, reportExpandable...)
	if err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	reports, hasMore, err := s.cfg.Store.ListReports(c.ctx, c.scope, filter, page)
	if err != nil {
		return nil, listError(err, "verification report", page)
	}
	for _, r := range reports {
		c.touchReport(r)
	}
	return newList("/v1/identity/verification_reports", viewReports(reports, ex), hasMore), nil
}
