package events

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/identityd/identityd/store"
)

// Metrics holds every metric whose name is part of identityd's contract with dashboards and alerts. Labels
// carry routes, codes, outcomes and event types — never ids or personal data.
type Metrics struct {
	HTTPRequests        *prometheus.CounterVec
	HTTPDuration        *prometheus.HistogramVec
	RedactionsRequested prometheus.Counter
	RedactionsCompleted prometheus.Counter
	RedactionsFailed    prometheus.Counter
	RedactionDuration   prometheus.Histogram
	WebhookDeliveries   *prometheus.CounterVec
	EventsEmitted       *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "identityd_http_requests_total", Help: "API requests by route pattern and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "identityd_http_request_duration_seconds", Help: "API request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		RedactionsRequested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "identityd_redactions_requested_total", Help: "Sessions put into redaction (each once).",
		}),
		RedactionsCompleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "identityd_redactions_completed_total", Help: "Sessions whose redaction finished (each once).",
		}),
		RedactionsFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "identityd_redactions_failed_total", Help: "Sessions whose redaction exhausted its retries (each once).",
		}),
		RedactionDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "identityd_redaction_duration_seconds", Help: "Time from redaction request to redacted.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 16),
		}),
		WebhookDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "identityd_webhook_deliveries_total", Help: "Webhook delivery attempts by outcome.",
		}, []string{"outcome"}),
		EventsEmitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "identityd_events_emitted_total", Help: "Events recorded, by Stripe event type.",
		}, []string{"type"}),
	}
	for _, t := range store.EventTypes {
		m.EventsEmitted.WithLabelValues(t)
	}
	for _, o := range []string{"delivered", "failed", "retrying"} {
		m.WebhookDeliveries.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.HTTPRequests, m.HTTPDuration, m.RedactionsRequested, m.RedactionsCompleted,
			m.RedactionsFailed, m.RedactionDuration, m.WebhookDeliveries, m.EventsEmitted)
	}
	return m
}
