// Package events publishes what happens to verification sessions: it counts emitted events, fans them out to
// webhook endpoints (signed, retried, rendered at delivery time) and holds the process's Prometheus metrics.
// The events themselves are written by the store in the same transaction as the change they describe.
package events
