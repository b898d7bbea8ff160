// Package worker runs identityd's background work on asynq: verifying submissions, scrubbing redacted
// sessions, and the reconciler that makes sure no requested redaction is ever lost. Task payloads carry ids
// only; the data lives in the store.
package worker
