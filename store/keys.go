package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Key layout. Every key of an account carries the hash tag {acct}, so transactions stay in one cluster slot.
// The Redis type of each key is in the trailing comment; "doc" is JSON compressed by EncodeDoc (codec.go).

func (s *Store) base(sc Scope) string {
	return s.prefix + ":{" + sc.Account + "}:" + sc.mode() + ":"
}

// safeID reports whether id can be part of a key without naming another key: the API only lets through ids of
// the shape identityd issues, and the store refuses the rest as not found, as a second line of defence.
func safeID(id string) bool {
	return id != "" && !strings.ContainsAny(id, ":{}*?[]\\ ")
}

func hashPart(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:12])
}

func (s *Store) sessionKey(sc Scope, id string) string { return s.base(sc) + "vs:" + id } // string (doc)
func (s *Store) submissionKey(sc Scope, id string) string {
	return s.base(sc) + "vs:" + id + ":submission" // string (doc)
}
func (s *Store) sessionIndexKey(sc Scope) string { return s.base(sc) + "ix:vs" } // zset (lex)

// personalKey is the session's personal-data record: its versions and the personal parts of requests that
// changed it (personal.go).
func (s *Store) personalKey(sc Scope, id string) string { return s.base(sc) + "pd:" + id } // string (doc)

// requestLogIndexKey lists every request log of the scope.
func (s *Store) requestLogIndexKey(sc Scope) string { return s.base(sc) + "ix:req" } // zset (lex)
func (s *Store) sessionStatusIndexKey(sc Scope, status string) string {
	return s.base(sc) + "ix:vs:status:" + status // zset (lex)
}
func (s *Store) sessionRefIndexKey(sc Scope, ref string) string {
	return s.base(sc) + "ix:vs:ref:" + hashPart(ref) // zset (lex)
}
func (s *Store) sessionCustomerIndexKey(sc Scope, cus string) string {
	return s.base(sc) + "ix:vs:cus:" + hashPart(cus) // zset (lex)
}
func (s *Store) sessionCustomerAccountIndexKey(sc Scope, acct string) string {
	return s.base(sc) + "ix:vs:cusacct:" + hashPart(acct) // zset (lex)
}
func (s *Store) sessionEventsKey(sc Scope, id string) string {
	return s.base(sc) + "vs:" + id + ":events" // zset of event ids by created (small: a listpack, a third of a set's size)
}
func (s *Store) sessionReportsKey(sc Scope, id string) string {
	return s.base(sc) + "ix:vr:vs:" + id // zset (lex)
}
func (s *Store) objectLogsKey(sc Scope, id string) string {
	return s.base(sc) + "ix:req:obj:" + id // zset (lex) of request log ids
}
func (s *Store) objectIdemKey(sc Scope, id string) string {
	return s.base(sc) + "idem:obj:" + id // set of idempotency keys
}
func (s *Store) reportKey(sc Scope, id string) string { return s.base(sc) + "vr:" + id }  // string (doc)
func (s *Store) reportIndexKey(sc Scope) string       { return s.base(sc) + "ix:vr" }     // zset (lex)
func (s *Store) eventKey(sc Scope, id string) string  { return s.base(sc) + "evt:" + id } // string (doc)
func (s *Store) eventIndexKey(sc Scope) string        { return s.base(sc) + "ix:evt" }    // zset (lex)
func (s *Store) eventTypeIndexKey(sc Scope, typ string) string {
	return s.base(sc) + "ix:evt:type:" + typ // zset (lex)
}
func (s *Store) requestLogKey(sc Scope, id string) string { return s.base(sc) + "req:" + id } // string (doc)
func (s *Store) idemKey(sc Scope, key string) string {
	return s.base(sc) + "idem:" + hashPart(key) // string (doc)
}
func (s *Store) redactionRecordKey(sc Scope, id string) string {
	return s.base(sc) + "redaction:" + id // string (doc)
}

// StreamKey is the account's event stream: entries carry ids only.
func (s *Store) StreamKey(sc Scope) string { return s.base(sc) + "events" } // stream

// pendingRedactionsKey lists sessions whose redaction was requested and not finished, scored by request time.
func (s *Store) pendingRedactionsKey(sc Scope) string { return s.base(sc) + "redactions:pending" } // zset

// pendingVerificationsKey lists submissions not yet verified ("session|submission"), scored by submit time.
func (s *Store) pendingVerificationsKey(sc Scope) string { return s.base(sc) + "verifications:pending" } // zset

// failedRedactionsKey records redactions that exhausted their retries (identityd's own durable record).
func (s *Store) failedRedactionsKey(sc Scope) string { return s.base(sc) + "redactions:failed" } // hash id → reason

// accountsKey is the global registry of scopes that ever had a pending redaction, for the reconciler.
func (s *Store) accountsKey() string { return s.prefix + ":accounts" } // set of "acct|mode"

// String renders the scope as "acct|mode", the form task ids and the scope registry use.
func (sc Scope) String() string { return fmt.Sprintf("%s|%s", sc.Account, sc.mode()) }

// Webhook keys. The endpoint's record is the only key that holds its signing secret.

func (s *Store) endpointKey(sc Scope, id string) string { return s.base(sc) + "we:" + id } // string (JSON, with secret)
func (s *Store) endpointIndexKey(sc Scope) string       { return s.base(sc) + "ix:we" }    // zset (lex)

// deliveryKey is the state of one (event, endpoint) delivery: pending, delivered, failed or canceled.
func (s *Store) deliveryKey(sc Scope, eventID, endpointID string) string {
	return s.base(sc) + "dlv:" + eventID + ":" + endpointID // string
}

// pendingWebhooksKey counts, per event, the endpoints that have not acknowledged it yet (absent = 0).
func (s *Store) pendingWebhooksKey(sc Scope) string { return s.base(sc) + "webhooks:pending" } // hash event id → n

// endpointSlotsKey holds the delivery attempts in flight to one endpoint, each with the unix-millisecond
// time its permit lapses if it is never released (a worker killed mid-attempt).
func (s *Store) endpointSlotsKey(sc Scope, endpointID string) string {
	return s.base(sc) + "we:" + endpointID + ":slots" // zset holder → lease end (ms)
}

// accountSlotsKey holds the delivery attempts in flight for the whole scope, as endpointSlotsKey.
func (s *Store) accountSlotsKey(sc Scope) string { return s.base(sc) + "webhooks:slots" } // zset holder → lease end (ms)

// endpointBreakerKey is one endpoint's circuit breaker: consecutive unreachable attempts (fails), until when
// it is open (open_until, ms) and until when a half-open probe is out (probe_until, ms).
func (s *Store) endpointBreakerKey(sc Scope, endpointID string) string {
	return s.base(sc) + "we:" + endpointID + ":breaker" // hash
}

func (s *Store) attemptKey(sc Scope, id string) string { return s.base(sc) + "wha:" + id } // string (JSON)
func (s *Store) endpointAttemptsKey(sc Scope, endpointID string) string {
	return s.base(sc) + "ix:wha:we:" + endpointID // zset (lex)
}
func (s *Store) sessionAttemptsKey(sc Scope, sessionID string) string {
	return s.base(sc) + "ix:wha:vs:" + sessionID // set of attempt ids
}

// Bulk redaction jobs, retention and the hosted page's links.

func (s *Store) bulkKey(sc Scope, id string) string { return s.base(sc) + "br:" + id } // hash
func (s *Store) bulkIndexKey(sc Scope) string       { return s.base(sc) + "ix:br" }    // zset (lex)

// bulkCursorKey holds the walk's saved cursor: the index member of the last session walked, or
// walkDoneCursor. It is apart from the job hash so that the walk's optimistic transaction watches only it,
// not the counters that completing redactions keep moving.
func (s *Store) bulkCursorKey(sc Scope, id string) string { return s.base(sc) + "br:" + id + ":cursor" } // string

// bulkWalkingKey lists the jobs whose walk has not finished, for the reconciler.
func (s *Store) bulkWalkingKey(sc Scope) string { return s.base(sc) + "br:walking" } // set of job ids

// batchedRedactionsKey maps a pending session to the batch that scrubs it, so the reconciler leaves sessions
// covered by a live batch task alone.
func (s *Store) batchedRedactionsKey(sc Scope) string { return s.base(sc) + "redactions:batched" } // hash id → batch id

// retentionWatermarkKey is the index member up to which every session of the scope is known to be in
// redaction, so a retention run does not re-read what earlier runs finished.
func (s *Store) retentionWatermarkKey(sc Scope) string { return s.base(sc) + "retention:watermark" } // string

// verifyTokenKey maps a link token's SHA-256 to "acct|mode|vs_id"; the token itself is never a key name.
func (s *Store) verifyTokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return s.prefix + ":vt:" + hex.EncodeToString(sum[:]) // string
}

// verifyPageSecretKey holds the hosted page's form-signing key (hex).
func (s *Store) verifyPageSecretKey() string { return s.prefix + ":vt-secret" } // string

// returnURLKey holds the return_url of a session while its link lives. It is personal data (a merchant may put
// anything in it): a redaction request deletes it.
func (s *Store) returnURLKey(sc Scope, id string) string {
	return s.base(sc) + "vs:" + id + ":return_url"
} // string
