package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/identityd/identityd/store"
)

// APIKey is one configured secret key and the scope it unlocks.
type APIKey struct {
	Secret string
	Scope  store.Scope
}

// ParseAPIKey parses "sk_test_…" or "sk_live_…", optionally followed by "=acct_…" to name the account.
// Without an account, one is derived from the key, so the same key always sees the same objects.
func ParseAPIKey(spec string) (APIKey, error) {
	secret, acct, named := strings.Cut(strings.TrimSpace(spec), "=")
	var live bool
	switch {
	case strings.HasPrefix(secret, "sk_test_") && len(secret) > len("sk_test_"):
	case strings.HasPrefix(secret, "sk_live_") && len(secret) > len("sk_live_"):
		live = true
	default:
		return APIKey{}, errors.New("api key must start with sk_test_ or sk_live_ and have more after it")
	}
	if strings.ContainsAny(secret, " \t:,{}") {
		return APIKey{}, errors.New("api key may not contain spaces, ':', ',', '{' or '}'")
	}
	if named {
		if !strings.HasPrefix(acct, "acct_") || len(acct) == len("acct_") || strings.ContainsAny(acct, " \t:|{}") {
			return APIKey{}, errors.New("account after '=' must look like acct_…")
		}
	} else {
		sum := sha256.Sum256([]byte(secret))
		acct = "acct_" + hex.EncodeToString(sum[:8])
	}
	return APIKey{Secret: secret, Scope: store.Scope{Account: acct, Livemode: live}}, nil
}

// Keyring authenticates requests against the configured keys. It keeps the keys' SHA-256 digests, not the
// keys, and compares a presented key's digest with every one of them in constant time, so neither the time a
// request takes nor a dump of the keyring tells anything about a key.
type Keyring struct {
	keys []keyDigest
}

type keyDigest struct {
	sum   [sha256.Size]byte
	scope store.Scope
}

// NewKeyring builds a keyring; a duplicate secret is an error.
func NewKeyring(keys []APIKey) (*Keyring, error) {
	k := &Keyring{}
	seen := map[[sha256.Size]byte]bool{}
	for _, key := range keys {
		sum := sha256.Sum256([]byte(key.Secret))
		if seen[sum] {
			return nil, errors.New("api key configured twice")
		}
		seen[sum] = true
		k.keys = append(k.keys, keyDigest{sum: sum, scope: key.Scope})
	}
	return k, nil
}

// lookup compares secret's digest with every key's, without stopping at a match.
func (k *Keyring) lookup(secret string) (store.Scope, bool) {
	sum := sha256.Sum256([]byte(secret))
	var found store.Scope
	match := 0
	for _, key := range k.keys {
		if subtle.ConstantTimeCompare(sum[:], key.sum[:]) == 1 {
			found, match = key.scope, 1
		}
	}
	return found, match == 1
}

// Authenticate reads `Authorization: Bearer <key>` or Basic with the key as user name.
func (k *Keyring) Authenticate(r *http.Request) (store.Scope, bool) {
	secret := ""
	h := r.Header.Get("Authorization")
	if rest, ok := strings.CutPrefix(h, "Bearer "); ok {
		secret = strings.TrimSpace(rest)
	} else if user, _, ok := r.BasicAuth(); ok {
		secret = user
	}
	if secret == "" {
		return store.Scope{}, false
	}
	return k.lookup(secret)
}
