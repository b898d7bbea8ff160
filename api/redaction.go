package api

import (
	"github.com/identityd/identityd/store"
)

// redactSession requests redaction: one atomic step in the store, then the scrub task. The
// answer is the session with redaction.status=processing; calling again returns it and enqueues nothing.
func (s *Server) redactSession(c *call) (any, error) {
	ex, err := readExpand(c.form, false, sessionExpandable...)
	if err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	id := c.r.PathValue("id")
	res, err := s.cfg.Store.RequestRedaction(c.ctx, c.scope, id,
		store.Requester{Type: store.RequestedByRequest, ID: c.requestID}, c.origin())
	if err != nil {
		return nil, sessionStateError(err, "redact", "requires_input, verified or canceled")
	}
	if res.New {
		s.cfg.Metrics.RedactionsRequested.Inc()
		c.published(res.Events)
		// The request is durable (pending index) before this call; if the enqueue fails, the reconciler
		// enqueues it, so the answer is still 200.
		if err := s.cfg.Queue.EnqueueRedact(c.ctx, c.scope, id); err != nil {
			s.cfg.Logger.Warn("redaction enqueue failed; the reconciler will retry", "request_id", c.requestID,
				"session", id, "err", err)
		}
	}
	return c.renderSession(res.Session, ex)
}

// redactionRecord returns the audit record of a session's redaction.
func (s *Server) redactionRecord(c *call) (any, error) {
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	id := c.r.PathValue("id")
	if _, err := s.cfg.Store.GetSession(c.ctx, c.scope, id); err != nil {
		return nil, err
	}
	rec, err := s.cfg.Store.RedactionRecord(c.ctx, c.scope, id)
	if err != nil {
		return nil, err
	}
	return rec, nil
}
