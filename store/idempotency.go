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

// IdemEntry is a cached response for an Idempotency-Key.
type IdemEntry struct {
	Fingerprint string `json:"fingerprint"`
	// KeptFingerprint hashes only the parameters a redaction keeps (ScrubParams); it survives the scrub, so a
	// retry with the same key still replays after Fingerprint — a hash over personal data — was dropped.
	KeptFingerprint string          `json:"kept_fingerprint,omitempty"`
	State           string          `json:"state"`
	Status          int             `json:"status,omitempty"`
	Body            json.RawMessage `json:"body,omitempty"`
	Objects         []string        `json:"objects,omitempty"`
}

// scrub removes a redacted session from the cached body and drops the full fingerprint: it is a hash of the
// request's parameters, personal data included, and low-entropy values (a phone number) could be recovered
// from it. Matches then use KeptFingerprint.
func (e *IdemEntry) scrub(sessionID string) {
	e.Body, _ = ScrubJSONBytes(e.Body, sessionID)
	e.Fingerprint = ""
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
	for i := 0; i < 3; i++ {
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
		return &e, false, nil
	}
	return nil, false, ErrConflict
}

// FinishIdempotent stores the response for replay and ties it to the sessions it shows.
func (s *Store) FinishIdempotent(ctx context.Context, sc Scope, key string, e *IdemEntry) error {
	e.State = IdemDone
	k := s.idemKey(sc, key)
	ttl := s.IdempotencyTTL
	scrub := e.scrub
	err := s.saveTied(ctx, sc, SessionIDs(e.Objects), scrub, func(pipe redis.Pipeliner) {
		body, _ := json.Marshal(e) // an IdemEntry always marshals
		pipe.Set(ctx, k, EncodeDoc(body), ttl)
		for _, id := range SessionIDs(e.Objects) {
			ok := s.objectIdemKey(sc, id)
			pipe.SAdd(ctx, ok, k)
			pipe.Expire(ctx, ok, ttl)
		}
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
