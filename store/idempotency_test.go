package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

// idemTTL reads the TTL of an idempotency entry (key layout of store/keys.go: the key is hashed).
func (b *testBundle) idemTTL(t *testing.T, key string) time.Duration {
	t.Helper()
	sum := sha256.Sum256([]byte(key))
	ttl, err := b.redis.Client.TTL(context.Background(), b.key("idem:"+hex.EncodeToString(sum[:12]))).Result()
	require.NoError(t, err)
	return ttl
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("BeginFinishReplay", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		entry, started, err := b.st.BeginIdempotent(ctx, b.sc, "k1", "fp1", "kept")
		require.NoError(t, err)
		require.True(t, started)
		require.Nil(t, entry)
		ttl := b.idemTTL(t, "k1")
		require.Greater(t, ttl, time.Duration(0))
		require.LessOrEqual(t, ttl, time.Minute, "a pending claim expires quickly if its request dies")

		entry, started, err = b.st.BeginIdempotent(ctx, b.sc, "k1", "fp1", "kept")
		require.NoError(t, err)
		require.False(t, started)
		require.Equal(t, store.IdemPending, entry.State)
		require.Equal(t, "fp1", entry.Fingerprint)

		entry, started, err = b.st.BeginIdempotent(ctx, b.sc, "k1", "fp2", "kept")
		require.NoError(t, err)
		require.False(t, started)
		require.Equal(t, "fp1", entry.Fingerprint, "the caller compares fingerprints to detect a mismatch")

		body := json.RawMessage(`{"id":"vs_x","object":"identity.verification_session"}`)
		require.NoError(t, b.st.FinishIdempotent(ctx, b.sc, "k1", &store.IdemEntry{Fingerprint: "fp1", Status: 200, Body: body, Objects: []string{"vs_x"}}))
		entry, started, err = b.st.BeginIdempotent(ctx, b.sc, "k1", "fp1", "kept")
		require.NoError(t, err)
		require.False(t, started)
		require.Equal(t, store.IdemDone, entry.State)
		require.Equal(t, 200, entry.Status)
		require.JSONEq(t, string(body), string(entry.Body))
		require.Equal(t, []string{"vs_x"}, entry.Objects)
		ttl = b.idemTTL(t, "k1")
		require.Greater(t, ttl, 23*time.Hour)
		require.LessOrEqual(t, ttl, 24*time.Hour)
	})
	t.Run("AbandonFreesTheKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, started, err := b.st.BeginIdempotent(ctx, b.sc, "k", "fp1", "kept")
		require.NoError(t, err)
		require.True(t, started)
		require.NoError(t, b.st.AbandonIdempotent(ctx, b.sc, "k"))
		_, started, err = b.st.BeginIdempotent(ctx, b.sc, "k", "fp2", "kept")
		require.NoError(t, err)
		require.True(t, started, "an abandoned key can be used again, even with other parameters")
		require.NoError(t, b.st.AbandonIdempotent(ctx, b.sc, "never-claimed"))
	})
	t.Run("ScopedPerAccountAndMode", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, sc := range []store.Scope{b.sc, {Account: b.sc.Account, Livemode: true}, {Account: "acct_other"}} {
			_, started, err := b.st.BeginIdempotent(ctx, sc, "shared", "fp", "kept")
			require.NoError(t, err)
			require.True(t, started, "%+v", sc)
		}
	})
	t.Run("ConcurrentBeginOneStarts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const n = 10
		start := make(chan struct{})
		results := make([]bool, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				_, results[i], errs[i] = b.st.BeginIdempotent(ctx, b.sc, "race", "fp", "kept")
			}(i)
		}
		close(start)
		wg.Wait()
		n1 := 0
		for i, s := range results {
			require.NoError(t, errs[i])
			if s {
				n1++
			}
		}
		require.Equal(t, 1, n1)
	})
}

func TestRequestLogs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	save := func(t *testing.T, b *testBundle, sc store.Scope, objects ...string) *store.RequestLog {
		t.Helper()
		l := &store.RequestLog{ID: store.NewID("req"), Created: b.clock.Now().Unix(), Method: "GET",
			Path: "/v1/x", Status: 200, Params: []store.Param{{Key: "limit", Value: "3"}},
			Response: json.RawMessage(`{"ok":true}`), Objects: objects}
		require.NoError(t, b.st.SaveRequestLog(ctx, sc, l))
		return l
	}
	logIDs := func(logs []*store.RequestLog) []string {
		out := []string{}
		for _, l := range logs {
			out = append(out, l.ID)
		}
		return out
	}
	t.Run("ByObject", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a := save(t, b, b.sc, "vs_a", "vr_a")
		b.clock.Advance(time.Second)
		both := save(t, b, b.sc, "vs_a", "vs_b")
		save(t, b, b.sc)                                   // touches nothing
		save(t, b, store.Scope{Account: "acct_o"}, "vs_a") // another account's log about an id of the same name

		got, more, err := b.st.ListRequestLogs(ctx, b.sc, "vs_a", store.Page{Limit: 10})
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, []string{both.ID, a.ID}, logIDs(got))
		require.Equal(t, "request_log", got[0].Object)
		require.Equal(t, []store.Param{{Key: "limit", Value: "3"}}, got[0].Params)
		require.JSONEq(t, `{"ok":true}`, string(got[0].Response))

		got, _, err = b.st.ListRequestLogs(ctx, b.sc, "vr_a", store.Page{Limit: 10})
		require.NoError(t, err)
		require.Equal(t, []string{a.ID}, logIDs(got))
		got, _, err = b.st.ListRequestLogs(ctx, b.sc, "vs_none", store.Page{Limit: 10})
		require.NoError(t, err)
		require.Empty(t, got)

		ttl, err := b.redis.Client.TTL(ctx, b.key("req:"+a.ID)).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, 29*24*time.Hour)
		require.LessOrEqual(t, ttl, 30*24*time.Hour)
	})
	t.Run("PaginationAndExpiry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var all []string
		for range 7 {
			all = append(all, save(t, b, b.sc, "vs_p").ID)
		}
		sort.Sort(sort.Reverse(sort.StringSlice(all)))
		got, more, err := b.st.ListRequestLogs(ctx, b.sc, "vs_p", store.Page{Limit: 3, StartingAfter: all[1]})
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, all[2:5], logIDs(got))
		got, more, err = b.st.ListRequestLogs(ctx, b.sc, "vs_p", store.Page{Limit: 3, EndingBefore: all[4]})
		require.NoError(t, err)
		require.True(t, more)
		require.Equal(t, all[1:4], logIDs(got))
		_, _, err = b.st.ListRequestLogs(ctx, b.sc, "vs_p", store.Page{StartingAfter: "req_nope"})
		require.ErrorIs(t, err, store.ErrNotFound)

		// An expired log leaves its index member behind; lists skip it.
		require.NoError(t, b.redis.Client.Del(ctx, b.key("req:"+all[0])).Err())
		got, more, err = b.st.ListRequestLogs(ctx, b.sc, "vs_p", store.Page{Limit: 6})
		require.NoError(t, err)
		require.False(t, more)
		require.Equal(t, all[1:], logIDs(got))
	})
}

func TestIdemEntry_MatchesAfterTheFullFingerprintIsDropped(t *testing.T) {
	t.Parallel()
	e := store.IdemEntry{Fingerprint: "full", KeptFingerprint: "kept"}
	require.True(t, e.Matches("full", "kept"))
	require.False(t, e.Matches("other", "kept"), "while the full fingerprint exists it decides")
	e.Fingerprint = "" // what a redaction's scrub leaves
	require.True(t, e.Matches("whatever", "kept"))
	require.False(t, e.Matches("full", "other"))
	require.False(t, (&store.IdemEntry{}).Matches("", ""), "an entry with no fingerprint matches nothing")
}
