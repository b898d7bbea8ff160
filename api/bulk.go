package api

import (
	"net/http"

	"github.com/identityd/identityd/store"
)

// Bulk redaction (an identityd extension): the API stores a queued job and enqueues its walk; the worker does
// the rest.

var bulkStatuses = []string{store.StatusRequiresInput, store.StatusProcessing, store.StatusVerified, store.StatusCanceled}

func (s *Server) createBulkRedaction(c *call) (any, error) {
	f := c.form
	var filter store.BulkFilter
	if err := f.NonEmptyFilters(StringFilter{"client_reference_id", &filter.ClientReferenceID},
		StringFilter{"related_customer", &filter.RelatedCustomer}); err != nil {
		return nil, err
	}
	status, err := f.Enum("status", bulkStatuses...)
	if err != nil {
		return nil, err
	}
	if status != nil {
		filter.Status = *status
	}
	created, err := f.Created("created")
	if err != nil {
		return nil, err
	}
	filter.Created = store.NewCreatedBounds(created)
	dryRun, err := f.Bool("dry_run")
	if err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	if filter.Empty() {
		return nil, &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "parameter_missing",
			Message: "Missing filter: send at least one of client_reference_id, status, related_customer or created."}
	}
	job, err := s.cfg.Store.CreateBulkRedaction(c.ctx, c.scope, filter, dryRun != nil && *dryRun)
	if err != nil {
		return nil, err
	}
	c.name(job.ID)
	// The job is durable before the enqueue; if the enqueue fails, the reconciler enqueues its walk.
	if err := s.cfg.Queue.EnqueueBulkRedaction(c.ctx, c.scope, job.ID); err != nil {
		s.cfg.Logger.Warn("bulk redaction enqueue failed; the reconciler will retry", "request_id", c.requestID,
			"bulk_redaction", job.ID, "err", err)
	}
	return job, nil
}

func (s *Server) retrieveBulkRedaction(c *call) (any, error) {
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	job, err := s.cfg.Store.GetBulkRedaction(c.ctx, c.scope, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	c.name(job.ID)
	return job, nil
}

func (s *Server) listBulkRedactions(c *call) (any, error) {
	page, err := readPage(c.form)
	if err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	jobs, hasMore, err := s.cfg.Store.ListBulkRedactions(c.ctx, c.scope, page)
	if err != nil {
		return nil, listError(err, "bulk redaction", page)
	}
	for _, j := range jobs {
		c.touch(j.ID)
	}
	return newList("/v1/identity/bulk_redactions", jobs, hasMore), nil
}
