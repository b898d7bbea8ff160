// Package store keeps identityd's domain objects — verification sessions, reports, events, request logs and
// cached idempotent responses — in Redis, and owns the rules that scrub personal data out of them.
//
// Every key of one account shares the hash tag {acct_…}, so each multi-key transaction touches a single
// cluster slot. Lists are read from lexicographic sorted-set indexes whose members encode (created, id), so a
// page is one index range read plus one MGET whatever the number of stored objects.
package store
