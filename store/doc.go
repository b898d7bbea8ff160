// Package store keeps identityd's domain objects — verification sessions, reports, events, request logs and
// cached idempotent responses — in Redis, and owns the rule table that says which of their fields are personal.
//
// A session's personal data is stored once, in the session's own keys: the session, its reports and its
// personal-data record (personal.go), which holds the session's versions and the personal part of each request
// that changed it. Events, request logs and cached responses refer to a version instead of copying it, so a
// redaction scrubs those keys only, in one transaction (redact.go), whatever refers to them.
//
// Every key of one account shares the hash tag {acct_…}, so each multi-key transaction touches a single
// cluster slot. Lists are read from lexicographic sorted-set indexes whose members encode (created, id), so a
// page costs the same whatever the number of stored objects.
package store
