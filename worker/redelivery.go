package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
)

// TypeWebhookRedelivery walks the events of a webhook redelivery job and queues their deliveries. Payload:
// RedeliveryPayload.
const TypeWebhookRedelivery = "webhook:redeliver"

// RedeliveryPayload names a webhook redelivery job.
type RedeliveryPayload struct {
	ScopePayload
	RedeliveryID string `json:"webhook_redelivery"`
}

// redeliveryTaskID is deterministic: one walk task per job, however often it is enqueued.
func redeliveryTaskID(sc store.Scope, id string) string { return "redeliver:" + sc.String() + ":" + id }

// redeliveryMaxRetry bounds the retries of a walk that keeps failing; then the job is marked failed.
const redeliveryMaxRetry = 20

// redeliveryEnqueueBatch is how many queued events one drain round enqueues and acknowledges at once.
const redeliveryEnqueueBatch = 1000

// EnqueueWebhookRedelivery starts the walk of a webhook redelivery job; a duplicate is a no-op.
func (c *Client) EnqueueWebhookRedelivery(ctx context.Context, sc store.Scope, id string) error {
	_, err := c.enqueueOnce(ctx, "webhook redelivery", TypeWebhookRedelivery,
		RedeliveryPayload{ScopePayload: scopePayload(sc), RedeliveryID: id},
		asynq.TaskID(redeliveryTaskID(sc, id)), asynq.Queue(c.Queues.Default), asynq.MaxRetry(redeliveryMaxRetry),
		asynq.Timeout(time.Hour), asynq.Retention(24*time.Hour))
	return err
}

// HandleWebhookRedelivery runs a job's walk to its end. It resumes from the job's saved cursor and first
// enqueues what a dead run committed and did not enqueue; when the last retry fails, the job is marked failed.
func (w *Worker) HandleWebhookRedelivery(ctx context.Context, t *asynq.Task) error {
	var p RedeliveryPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("decode redelivery payload: %w: %w", err, asynq.SkipRetry)
	}
	sc := p.scope()
	return w.handleJobRun(ctx, jobRun{kind: "webhook redelivery", key: "webhook_redelivery", id: p.RedeliveryID,
		run: func(ctx context.Context) error { return w.RunWebhookRedelivery(ctx, sc, p.RedeliveryID) },
		fail: func(ctx context.Context, reason string) error {
			return w.Store.FailRedelivery(ctx, sc, p.RedeliveryID, reason)
		}})
}

// RunWebhookRedelivery walks a job page by page until its walk is done, enqueueing each committed page's
// deliveries before the next page.
func (w *Worker) RunWebhookRedelivery(ctx context.Context, sc store.Scope, id string) error {
	if w.Webhooks == nil {
		return errors.New("webhook delivery is not configured in this process")
	}
	job, err := w.Store.GetRedelivery(ctx, sc, id)
	if err != nil {
		return err
	}
	var enabled []string
	if ep, err := w.Store.GetEndpoint(ctx, sc, job.WebhookEndpoint); err == nil {
		enabled = ep.EnabledEvents
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	} // a deleted endpoint: the step fails the job
	walk := store.RedeliveryWalk{TTL: w.Webhooks.DeliveryTTL(),
		Match: func(typ string) bool { return events.Matches(enabled, typ) }}
	for {
		if err := w.drainRedelivery(ctx, sc, id, job.WebhookEndpoint); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		done, err := w.Store.RedeliveryStep(ctx, sc, id, walk)
		if errors.Is(err, store.ErrRedeliveryStopped) {
			return w.drainRedelivery(ctx, sc, id, job.WebhookEndpoint)
		}
		if err != nil {
			return fmt.Errorf("webhook redelivery %s: %w", id, err)
		}
		if done {
			return w.drainRedelivery(ctx, sc, id, job.WebhookEndpoint)
		}
	}
}

// drainRedelivery enqueues the delivery tasks of every event in the job's queue, a batch at a time, and
// acknowledges each batch once its tasks are in.
func (w *Worker) drainRedelivery(ctx context.Context, sc store.Scope, id, endpointID string) error {
	for {
		ids, err := w.Store.RedeliveryQueue(ctx, sc, id, redeliveryEnqueueBatch)
		if err != nil || len(ids) == 0 {
			return err
		}
		if err := w.Webhooks.EnqueueRedeliveries(ctx, sc, id, endpointID, ids); err != nil {
			return err
		}
		if err := w.Store.AckRedeliveryQueue(ctx, sc, id, ids); err != nil {
			return err
		}
	}
}

// reconcileRedeliveries makes sure every job whose walk or enqueueing has not finished has a live task, as
// reconcileBulk does for bulk redactions.
func (w *Worker) reconcileRedeliveries(ctx context.Context, sc store.Scope) error { //nolint:dupl // the same job-walk shape as bulk.go; a shared runner for both job kinds is a refactor of its own
	ids, err := w.Store.WalkingRedeliveries(ctx, sc)
	if err != nil {
		return err
	}
	for _, id := range ids {
		info, err := w.Inspector.GetTaskInfo(w.Client.Queues.Default, redeliveryTaskID(sc, id))
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
		case err != nil:
			return fmt.Errorf("inspect redelivery task: %w", err)
		case info.State == asynq.TaskStateArchived || info.State == asynq.TaskStateCompleted:
			if err := w.Inspector.DeleteTask(w.Client.Queues.Default, info.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				return fmt.Errorf("delete stale redelivery task: %w", err)
			}
		default:
			continue // pending, scheduled, active or retrying
		}
		if err := w.Client.EnqueueWebhookRedelivery(ctx, sc, id); err != nil {
			return err
		}
	}
	return nil
}
