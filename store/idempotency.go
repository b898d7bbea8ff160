package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Idempotency entry states.
const (
	IdemPending = "pending"
	IdemDone    = "done"
)

// pendingIdemTTL bounds how long a crashed request can hold its key "in use".
const pendingIdemTTL = time.Minute

// IdemEntry is a cached response for an Idempotency-Key. It holds no personal data: Body is the response as a
// reference document (the API renders it), and the fingerprint of the request's parameters — a hash over
// personal values, from which low-entropy ones (a phone number) could be recovered — lives in the
// personal-data record of Session when the request changed a session.
type IdemEntry struct {
	// Fingerprint hashes every parameter; set here only while the request runs or when no session holds it.
	Fingerprint string `json:"fingerprint,omitempty"`
	// KeptFingerprint hashes only the kept parameters (ScrubParams); a retry still matches on it once the
	// full fingerprint was scrubbed by a redaction.
	KeptFingerprint string          `json:"kept_fingerprint,omitempty"`
	State           string          `json:"state"`
	Status          int             `json:"status,omitempty"`
	Body            json.RawMessage `json:"body,omitempty"`
	// Objects are the sessions the response shows, for the redaction audit's count; Named are the objects the
	// request created, under which the log of a replay is listed too.
	Objects []string `json:"objects,omitempty"`
	Named   []string `json:"named,omitempty"`
	// Session and Request name where the full fingerprint is: the request's part of that session's record.
	Session string `json:"session,omitempty"`
	Request string `json:"request,omitempty"`
}

// Matches reports whether a request with these fingerprints is the one the entry was made for.
func (e *IdemEntry) Matches(full, kept string) bool {
	if e.Fingerprint != "" {
		return e.Fingerprint == full
	}
	return e.KeptFingerprint != "" && e.KeptFingerprint == kept
}

// BeginIdempotent claims key for a request with the given fingerprint. When it returns started=false, entry
// is the existing one: pending (another request holds it) or done (replay it).
func (s *Store) BeginIdempotent(ctx context.Context, sc Scope, key, fingerprint, keptFingerprint string) (entry *IdemEntry, started bool, err error) {
	pending, _ := json.Marshal(IdemEntry{Fingerprint: fingerprint, KeptFingerprint: keptFingerprint, State: IdemPending})
	k := s.idemKey(sc, key)
	for range 3 {
		ok, err := s.rdb.SetNX(ctx, k, EncodeDoc(pending), pendingIdemTTL).Result()
		if err != nil {
			return nil, false, fmt.Errorf("claim idempotency key: %w", err)
		}
		if ok {
			return nil, true, nil
		}
		raw, err := s.rdb.Get(ctx, k).Bytes()
		if errors.Is(err, redis.Nil) {
			continue // expired between the two calls
		}
		if err != nil {
			return nil, false, fmt.Errorf("read idempotency key: %w", err)
		}
		var e IdemEntry
		if raw, err = DecodeDoc(raw); err != nil {
			return nil, false, fmt.Errorf("decode idempotency entry: %w", err)
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, false, fmt.Errorf("decode idempotency entry: %w", err)
		}
		if e.Fingerprint == "" && e.Session != "" && e.Request != "" {
			parts, err := s.RequestPersonals(ctx, sc, map[string][]string{e.Session: {e.Request}})
			if err != nil {
				return nil, false, err
			}
			if p := parts[e.Request]; p != nil {
				e.Fingerprint = p.Fingerprint
			}
		}
		return &e, false, nil
	}
	return nil, false, ErrConflict
}

// FinishIdempotent stores the response for replay and counts it for the sessions it shows.
func (s *Store) FinishIdempotent(ctx context.Context, sc Scope, key string, e *IdemEntry) error {
	e.State = IdemDone
	if e.Session != "" {
		e.Fingerprint = "" // the session's record holds it
	}
	k := s.idemKey(sc, key)
	ttl := s.IdempotencyTTL
	body, _ := json.Marshal(e) // an IdemEntry always marshals
	_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, k, EncodeDoc(body), ttl)
		for _, id := range SessionIDs(e.Objects) {
			if !safeID(id) {
				continue
			}
			ok := s.objectIdemKey(sc, id)
			pipe.SAdd(ctx, ok, k)
			pipe.Expire(ctx, ok, ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save idempotent response: %w", err)
	}
	return nil
}

// AbandonIdempotent releases a claimed key whose request ended without a result worth replaying.
func (s *Store) AbandonIdempotent(ctx context.Context, sc Scope, key string) error {
	return s.rdb.Del(ctx, s.idemKey(sc, key)).Err()
}
