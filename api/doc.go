// Package api is identityd's HTTP surface: Stripe's form encoding, authentication, Stripe-shaped errors,
// idempotency, request logs, and the handlers for verification sessions, reports, events and redaction.
//
// Handlers return a value or an error; one wrapper (server.go) turns that into the response, caches it for
// the Idempotency-Key and logs the request, so every endpoint behaves the same at the edges.
package api
