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
	// WebhookDeferrals counts delivery runs put off without an attempt, by reason (AdmitCode names).
	WebhookDeferrals *prometheus.CounterVec
	// WebhookCircuitsOpened counts endpoints whose circuit opened after consecutive unreachable attempts.
	WebhookCircuitsOpened prometheus.Counter
	// WebhookEndpointsDisabled counts endpoints identityd disabled itself, by reason.
	WebhookEndpointsDisabled *prometheus.CounterVec
	EventsEmitted            *prometheus.CounterVec
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
		WebhookDeferrals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "identityd_webhook_deliveries_deferred_total",
			Help: "Webhook delivery runs put off without an attempt: endpoint or account slots full, or circuit open.",
		}, []string{"reason"}),
		WebhookCircuitsOpened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "identityd_webhook_circuits_opened_total",
			Help: "Times a webhook endpoint's circuit opened after consecutive timeouts or connection failures.",
		}),
		WebhookEndpointsDisabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "identityd_webhook_endpoints_disabled_total", Help: "Webhook endpoints identityd disabled, by reason.",
		}, []string{"reason"}),
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
	for _, c := range []store.AdmitCode{store.CircuitOpen, store.EndpointBusy, store.AccountBusy} {
		m.WebhookDeferrals.WithLabelValues(c.String())
	}
	m.WebhookEndpointsDisabled.WithLabelValues(store.DisabledDeliveryFailed)
	if reg != nil {
		reg.MustRegister(m.HTTPRequests, m.HTTPDuration, m.RedactionsRequested, m.RedactionsCompleted,
			m.RedactionsFailed, m.RedactionDuration, m.WebhookDeliveries, m.EventsEmitted, m.WebhookDeferrals, m.WebhookCircuitsOpened, m.WebhookEndpointsDisabled)
	}
	return m
}
