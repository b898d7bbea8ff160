package worker

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/identityd/identityd/events"
)

// HandleDeliverWebhook makes one attempt of one (event, endpoint) delivery. A failed attempt returns an
// error, and asynq runs the task again after the webhook backoff (NewServer's RetryDelayFunc); the run
// before the task's spare ones (events.SpareRetries) is the final attempt, after which the delivery fails
// for good. A deferred run (no free slot, circuit open) is no attempt and uses up no retry.
func (w *Worker) HandleDeliverWebhook(ctx context.Context, t *asynq.Task) error {
	var p events.DeliverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("decode webhook payload: %w: %w", err, asynq.SkipRetry)
	}
	if w.Webhooks == nil {
		return fmt.Errorf("webhook delivery is not configured in this process: %w", asynq.SkipRetry)
	}
	retry, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	return w.Webhooks.Deliver(ctx, p.Scope(), p.EventID, p.EndpointID, retry+1, retry >= maxRetry-events.SpareRetries)
}
