package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// A session's hosted verification link is <public url>/verify/<token>. The token is random (it cannot be derived
// from the session id) and is the page's only credential: the page has no API key, so the token alone resolves
// to the account, the mode and the session.

// VerifyLinkLifetime is how long after a session's creation its link can be used (Stripe's 48 hours).
const VerifyLinkLifetime = 48 * time.Hour

// verifyLinkKept is how long a token keeps resolving: past VerifyLinkLifetime, so that an expired link's page
// can say it expired rather than that it never existed.
const verifyLinkKept = VerifyLinkLifetime + 7*24*time.Hour

// VerifyTokenLen is the length of a link token: 32 base62 characters, about 190 random bits.
const VerifyTokenLen = 32

// VerifyLink is what a link token resolves to.
type VerifyLink struct {
	Scope     Scope
	SessionID string
}

// ValidVerifyToken reports whether token has the shape issued tokens have; anything else is never looked up.
func ValidVerifyToken(token string) bool {
	if len(token) != VerifyTokenLen {
		return false
	}
	for i := range len(token) {
		if strings.IndexByte(idAlphabet, token[i]) < 0 {
			return false
		}
	}
	return true
}

// issueVerifyLink mints the token of a new session's link and records what it resolves to, and the session's
// return_url when it has one. Both keys expire on their own. The token's key lives outside the account's hash
// slot (the page knows no account), so it is written before the session's transaction, like registerScope: a
// failed create leaves a token that resolves to no session, which the page treats as unknown.
func (s *Store) issueVerifyLink(ctx context.Context, sc Scope, id string, returnURL *string) (string, error) {
	token := RandomString(VerifyTokenLen)
	_, err := s.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, s.verifyTokenKey(token), sc.String()+"|"+id, verifyLinkKept)
		if returnURL != nil {
			pipe.Set(ctx, s.returnURLKey(sc, id), *returnURL, VerifyLinkLifetime)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("issue verification link: %w", err)
	}
	return s.PublicURL + "/verify/" + token, nil
}

// ResolveVerifyToken returns the session a link token names; ErrNotFound for a token never issued or no longer
// kept. The caller still loads the session, which may have been canceled, redacted or never committed.
func (s *Store) ResolveVerifyToken(ctx context.Context, token string) (VerifyLink, error) {
	if !ValidVerifyToken(token) {
		return VerifyLink{}, ErrNotFound
	}
	raw, err := s.rdb.Get(ctx, s.verifyTokenKey(token)).Result()
	if errors.Is(err, redis.Nil) {
		return VerifyLink{}, ErrNotFound
	}
	if err != nil {
		return VerifyLink{}, fmt.Errorf("resolve verification link: %w", err)
	}
	acct, rest, ok1 := strings.Cut(raw, "|")
	mode, id, ok2 := strings.Cut(rest, "|")
	if !ok1 || !ok2 || !safeID(id) {
		return VerifyLink{}, errors.New("resolve verification link: malformed entry")
	}
	return VerifyLink{Scope: Scope{Account: acct, Livemode: mode == "live"}, SessionID: id}, nil
}

// ReturnURL returns the return_url a session was created with, or nil when it had none (or the link's lifetime
// is over, or its redaction was requested).
func (s *Store) ReturnURL(ctx context.Context, sc Scope, id string) (*string, error) {
	if !safeID(id) {
		return nil, ErrNotFound
	}
	v, err := s.rdb.Get(ctx, s.returnURLKey(sc, id)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get return url: %w", err)
	}
	return &v, nil
}

// LinkExpired reports whether the session's link is past its lifetime, on the store's clock.
func (s *Store) LinkExpired(sess *Session) bool {
	return !s.clock.Now().Before(time.Unix(sess.Created, 0).Add(VerifyLinkLifetime))
}

// VerifyPageSecret returns the key the hosted page signs its form tokens with. It is made once per key prefix
// and kept in Redis, so every API process behind one load balancer accepts the forms the others rendered.
func (s *Store) VerifyPageSecret(ctx context.Context) ([]byte, error) {
	var fresh [32]byte
	if _, err := rand.Read(fresh[:]); err != nil {
		return nil, fmt.Errorf("page secret: %w", err)
	}
	key := s.verifyPageSecretKey()
	if err := s.rdb.SetNX(ctx, key, hex.EncodeToString(fresh[:]), 0).Err(); err != nil {
		return nil, fmt.Errorf("page secret: %w", err)
	}
	v, err := s.rdb.Get(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("page secret: %w", err)
	}
	secret, err := hex.DecodeString(v)
	if err != nil || len(secret) < 16 {
		return nil, errors.New("page secret: malformed")
	}
	return secret, nil
}
