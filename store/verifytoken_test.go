package store_test

import (
	"context"
	"net/url"
	"path"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

// linkToken returns the token at the end of a session's url.
func linkToken(t *testing.T, sess *store.Session) string {
	t.Helper()
	require.NotNil(t, sess.URL)
	u, err := url.Parse(*sess.URL)
	require.NoError(t, err)
	require.Equal(t, "/verify", path.Dir(u.Path))
	return path.Base(u.Path)
}

func TestVerifyLink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("TokenResolvesToItsSession", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		live := store.Scope{Account: b.sc.Account, Livemode: true}
		first, second := b.create(t, store.SessionCreate{}), b.create(t, store.SessionCreate{})
		liveSess, _, err := b.st.CreateSession(ctx, live, store.SessionCreate{Type: "id_number"}, store.Origin{})
		require.NoError(t, err)
		for _, c := range []struct {
			sess *store.Session
			sc   store.Scope
		}{{first, b.sc}, {second, b.sc}, {liveSess, live}} {
			token := linkToken(t, c.sess)
			require.True(t, store.ValidVerifyToken(token), token)
			got, err := b.st.ResolveVerifyToken(ctx, token)
			require.NoError(t, err)
			require.Equal(t, store.VerifyLink{Scope: c.sc, SessionID: c.sess.ID}, got)
		}
		require.NotEqual(t, linkToken(t, first), linkToken(t, second))
	})

	t.Run("TokenIsNotAKeyName", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		token := linkToken(t, b.create(t, store.SessionCreate{}))
		keys, err := b.redis.Client.Keys(ctx, b.redis.KeyPrefix+":*").Result()
		require.NoError(t, err)
		for _, k := range keys {
			require.NotContains(t, k, token)
		}
	})

	t.Run("UnknownAndMalformedTokensAreNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.create(t, store.SessionCreate{})
		for _, token := range []string{"", "short", store.RandomString(store.VerifyTokenLen),
			store.RandomString(store.VerifyTokenLen-1) + ":", "*", store.RandomString(store.VerifyTokenLen + 1)} {
			_, err := b.st.ResolveVerifyToken(ctx, token)
			require.ErrorIs(t, err, store.ErrNotFound, "%q", token)
		}
	})

	t.Run("TokenOutlivesTheLinkSoExpiryCanBeExplained", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		sess := b.create(t, store.SessionCreate{ReturnURL: new("https://shop.example/back?order=7")})
		keys, err := b.redis.Client.Keys(ctx, b.redis.KeyPrefix+":vt:*").Result()
		require.NoError(t, err)
		require.Len(t, keys, 1)
		ttl, err := b.redis.Client.TTL(ctx, keys[0]).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, store.VerifyLinkLifetime)
		ttl, err = b.redis.Client.TTL(ctx, b.key("vs:"+sess.ID+":return_url")).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, time.Duration(0))
		require.LessOrEqual(t, ttl, store.VerifyLinkLifetime)

		require.False(t, b.st.LinkExpired(sess))
		b.clock.Advance(store.VerifyLinkLifetime - time.Second)
		require.False(t, b.st.LinkExpired(sess))
		b.clock.Advance(time.Second)
		require.True(t, b.st.LinkExpired(sess))
	})

	t.Run("ReturnURLKeptUntilRedactionIsRequested", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		with := b.create(t, store.SessionCreate{ReturnURL: new("https://shop.example/back?order=7")})
		without := b.create(t, store.SessionCreate{})
		got, err := b.st.ReturnURL(ctx, b.sc, with.ID)
		require.NoError(t, err)
		require.Equal(t, "https://shop.example/back?order=7", *got)
		got, err = b.st.ReturnURL(ctx, b.sc, without.ID)
		require.NoError(t, err)
		require.Nil(t, got)

		_, err = b.st.RequestRedaction(ctx, b.sc, with.ID, store.Requester{Type: store.RequestedByRequest, ID: "req_r"}, store.Origin{})
		require.NoError(t, err)
		got, err = b.st.ReturnURL(ctx, b.sc, with.ID)
		require.NoError(t, err)
		require.Nil(t, got, "a return_url may hold personal data: the redaction request deletes it")
	})

	t.Run("PageSecretIsSharedByEveryStoreOnThePrefix", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first, err := b.st.VerifyPageSecret(ctx)
		require.NoError(t, err)
		require.Len(t, first, 32)
		again, err := b.redis.Store(nil).VerifyPageSecret(ctx)
		require.NoError(t, err)
		require.Equal(t, first, again)
	})
}
