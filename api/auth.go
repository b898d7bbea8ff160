package api

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
		return APIKey{}, fmt.Errorf("api key must start with sk_test_ or sk_live_ and have more after it")
	}
	if strings.ContainsAny(secret, " \t:,{}") {
		return APIKey{}, fmt.Errorf("api key may not contain spaces, ':', ',', '{' or '}'")
	}
	if named {
		if !strings.HasPrefix(acct, "acct_") || len(acct) == len("acct_") || strings.ContainsAny(acct, " \t:|{}") {
			return APIKey{}, fmt.Errorf("account after '=' must look like acct_…")
		}
	} else {
		sum := sha256.Sum256([]byte(secret))
		acct = "acct_" + hex.EncodeToString(sum[:8])
	}
	return APIKey{Secret: secret, Scope: store.Scope{Account: acct, Livemode: live}}, nil
}

// Keyring authenticates requests against the configured keys.
type Keyring struct {
	keys map[string]store.Scope
}

// NewKeyring builds a keyring; a duplicate secret is an error.
func NewKeyring(keys []APIKey) (*Keyring, error) {
	k := &Keyring{keys: map[string]store.Scope{}}
	for _, key := range keys {
		if _, dup := k.keys[key.Secret]; dup {
			return nil, fmt.Errorf("api key configured twice")
		}
		k.keys[key.Secret] = key.Scope
	}
	return k, nil
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
	sc, ok := k.keys[secret]
	return sc, ok
}
