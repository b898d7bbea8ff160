package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/api"
)

func TestKeyring_Authenticate(t *testing.T) {
	t.Parallel()
	var keys []api.APIKey
	for _, spec := range []string{keyA + "=acct_alpha", keyB + "=acct_bravo", liveKeyA + "=acct_alpha"} {
		k, err := api.ParseAPIKey(spec)
		require.NoError(t, err)
		keys = append(keys, k)
	}
	ring, err := api.NewKeyring(keys)
	require.NoError(t, err)

	auth := func(header string) (string, bool, bool) {
		r := httptest.NewRequest(http.MethodGet, "/v1/identity/verification_sessions", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		sc, ok := ring.Authenticate(r)
		return sc.Account, sc.Livemode, ok
	}
	for _, tc := range []struct {
		header, account string
		live, ok        bool
	}{
		{"Bearer " + keyA, "acct_alpha", false, true},
		{"Bearer " + keyB, "acct_bravo", false, true},
		{"Bearer " + liveKeyA, "acct_alpha", true, true},
		{"Bearer " + keyA[:len(keyA)-1], "", false, false},
		{"Bearer " + keyA + "0", "", false, false},
		{"Bearer sk_test_", "", false, false},
		{"", "", false, false},
	} {
		account, live, ok := auth(tc.header)
		require.Equal(t, tc.ok, ok, tc.header)
		require.Equal(t, tc.account, account, tc.header)
		require.Equal(t, tc.live, live, tc.header)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(keyB, "")
	sc, ok := ring.Authenticate(r)
	require.True(t, ok)
	require.Equal(t, "acct_bravo", sc.Account)

	_, err = api.NewKeyring(append(keys, keys[1]))
	require.Error(t, err, "a duplicate key")
}

// The keyring holds digests only: a dump of it (a debugger, a panic, a %+v in a log line) shows no key.
func TestKeyring_HoldsNoSecrets(t *testing.T) {
	t.Parallel()
	k, err := api.ParseAPIKey(keyA)
	require.NoError(t, err)
	ring, err := api.NewKeyring([]api.APIKey{k})
	require.NoError(t, err)
	dump := fmt.Sprintf("%+v %#v", *ring, *ring)
	require.NotContains(t, dump, "alpha0000")
}
