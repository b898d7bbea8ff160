package bench

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/api"
	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
	"github.com/identityd/identityd/worker"
)

// TestFloor_KeysCoverWhatARedactionRewrites: the I/O floor moves at least every document a redaction rewrites.
// Two sessions are seeded as the bench seeds them; once the first one's redaction is requested, its keys are
// found as the floor finds them, and its redaction is completed: every document that existed and changed is
// among the first session's documents, and the second session's documents are not.
func TestFloor_KeysCoverWhatARedactionRewrites(t *testing.T) {
	t.Parallel()
	r := storetest.New(t)
	ctx := context.Background()
	env := &benchEnv{tag: r.KeyPrefix, rdb: r.Client, key: "sk_test_" + store.RandomString(24),
		queues: worker.NewQueues(r.QueuePrefix), metrics: events.NewMetrics(nil)}
	env.st = r.Store(store.SystemClock{})
	key, err := api.ParseAPIKey(env.key)
	require.NoError(t, err)
	env.scope = key.Scope
	stop, err := env.startAPI(key)
	require.NoError(t, err)
	defer stop()
	require.NoError(t, seedOne(ctx, env, 0, benchRefRest))
	require.NoError(t, seedOne(ctx, env, 1, benchRefRest))
	ids, err := env.sessionIDs(ctx, benchRefRest)
	require.NoError(t, err)
	require.Len(t, ids, 2)
	_, err = env.st.RequestRedaction(ctx, env.scope, ids[0], store.Requester{Type: "test", ID: "t"}, store.Origin{})
	require.NoError(t, err)

	keys, err := env.sessionKeys(ctx, ids, 2)
	require.NoError(t, err)
	require.Equal(t, ids[0], keys[0].id)
	require.NotEmpty(t, keys[0].zsets, "the session's indexes are read")
	before := stringValues(ctx, t, env)
	_, err = env.st.CompleteRedaction(ctx, env.scope, ids[0])
	require.NoError(t, err)
	after := stringValues(ctx, t, env)

	changed := 0
	for k, v := range before {
		if after[k] != v {
			changed++
			require.Contains(t, keys[0].docs, k, "a document the redaction rewrote is one the floor rewrites")
			require.NotContains(t, keys[1].docs, k)
		}
	}
	require.GreaterOrEqual(t, changed, 4, "the session, its personal-data record, its audit record and its report")
}

// stringValues reads every string key of env's account.
func stringValues(ctx context.Context, t *testing.T, env *benchEnv) map[string]string {
	t.Helper()
	out := map[string]string{}
	iter := env.rdb.Scan(ctx, 0, env.st.Prefix()+":{"+env.scope.Account+"}:*", 1000).Iterator()
	for iter.Next(ctx) {
		v, err := env.rdb.Get(ctx, iter.Val()).Result()
		if err == nil {
			out[iter.Val()] = v
		} else if !strings.HasPrefix(err.Error(), "WRONGTYPE") {
			require.NoError(t, err)
		}
	}
	require.NoError(t, iter.Err())
	return out
}
