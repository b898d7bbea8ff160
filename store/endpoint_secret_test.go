package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

func TestEndpoints_RollSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const oldSecret, newSecret = "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "whsec_bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3"

	t.Run("OverlapEndsAndTheOldSecretIsForgotten", func(t *testing.T) {
		t.Parallel()
		s, b := whSetup(t)
		ep := whCreateEndpoint(t, s, "*")
		rolled, err := s.RollEndpointSecret(ctx, whScope, ep.ID, newSecret, time.Hour)
		require.NoError(t, err)
		require.Equal(t, ep, rolled, "the endpoint as shown is unchanged")
		_, secrets, err := s.SigningSecrets(ctx, whScope, ep.ID)
		require.NoError(t, err)
		require.Equal(t, []string{newSecret, oldSecret}, secrets)
		_, current, err := s.EndpointSecret(ctx, whScope, ep.ID)
		require.NoError(t, err)
		require.Equal(t, newSecret, current)

		b.clock.Advance(time.Hour)
		_, secrets, err = s.SigningSecrets(ctx, whScope, ep.ID)
		require.NoError(t, err)
		require.Equal(t, []string{newSecret}, secrets)
		// The next change of the record drops the expired secret from Redis.
		_, err = s.UpdateEndpoint(ctx, whScope, ep.ID, func(*store.WebhookEndpoint) error { return nil })
		require.NoError(t, err)
		all, err := storetest.ScanAll(ctx, b.redis.Client)
		require.NoError(t, err)
		for key, v := range all {
			if strings.HasPrefix(key, b.redis.KeyPrefix+":") {
				require.NotContains(t, v, oldSecret, key)
			}
		}
	})

	t.Run("UnknownOrDeleted", func(t *testing.T) {
		t.Parallel()
		s, _ := whSetup(t)
		_, err := s.RollEndpointSecret(ctx, whScope, "we_missing", newSecret, time.Hour)
		require.ErrorIs(t, err, store.ErrNotFound)
		ep := whCreateEndpoint(t, s, "*")
		require.NoError(t, s.DeleteEndpoint(ctx, whScope, ep.ID))
		_, err = s.RollEndpointSecret(ctx, whScope, ep.ID, newSecret, time.Hour)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, _, err = s.SigningSecrets(ctx, whScope, ep.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}
