package api

import (
	"github.com/identityd/identityd/store"
)

// Webhook redelivery (an identityd extension): after re-enabling an endpoint, one call redelivers everything
// it missed since a given time, as a job whose progress can be read. The API stores the job and enqueues its
// walk; the worker does the rest.

// redeliverWebhookEndpoint starts a redelivery of every event created at or after `since` that the endpoint
// subscribes to and has not acknowledged.
func (s *Server) redeliverWebhookEndpoint(c *call) (any, error) {
	since, err := c.form.Int("since")
	if err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	if since == nil {
		return nil, missingParam("since")
	}
	now := s.cfg.Store.Now()
	if *since < now.Add(-store.MaxRedeliveryAge).Unix() || *since > now.Unix() {
		return nil, invalidParam("since", "parameter_invalid",
			"Invalid since: must be a unix time within the last 30 days and not in the future.")
	}
	ep, err := s.cfg.Store.GetEndpoint(c.ctx, c.scope, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if ep.Status != store.EndpointEnabled {
		return nil, invalidParam("id", "parameter_invalid", "The webhook endpoint is disabled; enable it before redelivering to it.")
	}
	job, err := s.cfg.Store.CreateRedelivery(c.ctx, c.scope, ep.ID, *since)
	if err != nil {
		return nil, err
	}
	c.touch(ep.ID)
	c.name(job.ID)
	// The job is durable before the enqueue; if the enqueue fails, the reconciler enqueues its walk.
	if err := s.cfg.Queue.EnqueueWebhookRedelivery(c.ctx, c.scope, job.ID); err != nil {
		s.cfg.Logger.Warn("webhook redelivery enqueue failed; the reconciler will retry", "request_id", c.requestID,
			"webhook_redelivery", job.ID, "err", err)
	}
	return job, nil
}

// retrieveWebhookRedelivery shows a redelivery job's progress.
func (s *Server) retrieveWebhookRedelivery(c *call) (any, error) {
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	job, err := s.cfg.Store.GetRedelivery(c.ctx, c.scope, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	c.name(job.ID)
	return job, nil
}
