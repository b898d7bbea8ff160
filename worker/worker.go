package worker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/groupcommit"
)

// Worker holds the task handlers and what they need.
type Worker struct {
	Store     *store.Store
	Client    *Client
	Inspector *asynq.Inspector
	Emitter   *events.Emitter
	Metrics   *events.Metrics
	Logger    *slog.Logger
	// Webhooks delivers webhook events (nil: delivery tasks are dropped).
	Webhooks *events.Webhooks
	// Retention is the retention period of the retention sweep (0: off). Walk sizes the pages and scrub
	// batches of bulk jobs and retention sweeps (zero: store defaults).
	Retention time.Duration
	Walk      store.WalkOptions

	afterBulkPage func(*store.BulkStep) // test hook: called after each committed page of a bulk walk

	groups      *groupcommit.Group[store.Scope, string] // single-session redactions sharing batches (coalesce.go)
	groupsOnce  sync.Once                               // builds groups on the first redaction
	beforeBatch func([]string)                          // test hook: called with each shared batch's ids before it is scrubbed
	drainLimit  int                                     // test hook: batches in flight per scope (0: the default)
}

// Mux routes task types to handlers, logging one line per task.
func (w *Worker) Mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.Use(w.logTask)
	mux.HandleFunc(TypeVerifySession, w.HandleVerify)
	mux.HandleFunc(TypeRedactSession, w.HandleRedact)
	mux.HandleFunc(TypeReconcile, w.HandleReconcile)
	mux.HandleFunc(events.TypeDeliverWebhook, w.HandleDeliverWebhook)
	mux.HandleFunc(TypeBulkRedaction, w.HandleBulkRedaction)
	mux.HandleFunc(TypeRedactBatch, w.HandleRedactBatch)
	mux.HandleFunc(TypeRetention, w.HandleRetention)
	mux.HandleFunc(TypeWebhookRedelivery, w.HandleWebhookRedelivery)
	return mux
}

func (w *Worker) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Logger
}

// logTask logs type, task id, the payload's ids (SafeFields: whitelisted id fields only), outcome and
// duration.
func (w *Worker) logTask(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		err := next.ProcessTask(ctx, t)
		id, _ := asynq.GetTaskID(ctx)
		retry, _ := asynq.GetRetryCount(ctx)
		outcome := "ok"
		if _, deferred := events.DeferredFor(err); deferred {
			outcome = "deferred"
		} else if err != nil {
			outcome = "error"
		}
		args := []any{"type", t.Type(), "task_id", id}
		fields, _ := SafeFields(t.Payload())
		for _, k := range []string{"account", "livemode", "session_id", "submission_id", "batch", "bulk_redaction", "event_id", "endpoint_id",
			"webhook_redelivery"} {
			if v, ok := fields[k]; ok {
				args = append(args, k, v)
			}
		}
		args = append(args, "retry", retry, "outcome", outcome,
			"duration_ms", float64(time.Since(start).Microseconds())/1000, "err", err)
		if outcome == "deferred" { // every second or so per waiting delivery while an endpoint is busy
			w.logger().Debug("task", args...)
			return err
		}
		w.logger().Info("task", args...)
		return err
	})
}

// DefaultShutdownTimeout is how long running tasks may finish after shutdown begins; asynq requeues the
// ones that do not.
const DefaultShutdownTimeout = 20 * time.Second

// ServerConfig configures NewServer and NewWebhookServer.
type ServerConfig struct {
	// Concurrency sizes the main pool (redaction, verification, scheduled jobs); WebhookConcurrency the
	// webhook delivery pool.
	Concurrency        int
	WebhookConcurrency int
	Queues             Queues
	ShutdownTimeout    time.Duration
	Logger             *slog.Logger
	// WebhookBackoff is the wait after each failed webhook attempt (--webhook-backoff; empty: the default).
	WebhookBackoff []time.Duration
}

// NewServer returns the main pool's asynq server on rdb (the same client the store uses; asynq does not close
// it). It also runs webhook deliveries still queued on the default queue.
func NewServer(rdb redis.UniversalClient, cfg ServerConfig) *asynq.Server {
	return newServer(rdb, cfg, cfg.Concurrency, cfg.Queues.Weights())
}

// NewWebhookServer returns the webhook delivery pool: an asynq server of its own on the webhook queue, so a
// receiver that hangs holds delivery slots only, never one a redaction needs.
func NewWebhookServer(rdb redis.UniversalClient, cfg ServerConfig) *asynq.Server {
	return newServer(rdb, cfg, max(cfg.WebhookConcurrency, 1), map[string]int{cfg.Queues.Webhook: 1})
}

func newServer(rdb redis.UniversalClient, cfg ServerConfig, concurrency int, queues map[string]int) *asynq.Server {
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:     concurrency,
		Queues:          queues,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          asynqLogger{logger},
		LogLevel:        asynq.WarnLevel,
		// Delayed work (the verification delay, retries) becomes runnable within a second, not asynq's 5s.
		DelayedTaskCheckInterval: time.Second,
		// An idle worker looks for new work every 100ms instead of asynq's 1s: a redaction requested on a quiet
		// system starts within ~0.1s. The cost is ten cheap dequeue attempts a second per idle process.
		TaskCheckInterval: 100 * time.Millisecond,
		RetryDelayFunc: func(n int, err error, t *asynq.Task) time.Duration {
			if d, ok := events.DeferredFor(err); ok {
				return d
			}
			if t.Type() == events.TypeDeliverWebhook {
				return events.RetryDelay(cfg.WebhookBackoff, n)
			}
			d := time.Second << min(n, 8) // 1s, 2s, 4s … capped at ~4m
			return d
		},
		// A deferred delivery made no attempt: it does not use up one of its retries.
		IsFailure: func(err error) bool {
			_, deferred := events.DeferredFor(err)
			return !deferred
		},
	})
}

// AsynqLogger adapts slog for asynq's own logs.
func AsynqLogger(l *slog.Logger) asynq.Logger { return asynqLogger{l} }

// asynqLogger routes asynq's own logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Error(args ...any) {
	msg := fmt.Sprint(args...)
	if strings.Contains(msg, "connection is shared") {
		return // asynq reports that it may not close the client we own and close ourselves
	}
	a.l.Error(msg, "component", "asynq")
}
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }

// published hands committed events to the emitter.
func (w *Worker) published(ctx context.Context, sc store.Scope, evs []*store.Event) {
	if err := w.Emitter.Published(ctx, sc, evs); err != nil {
		w.logger().Warn("event fan-out failed", "err", err)
	}
}
