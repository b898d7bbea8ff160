package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/api"
	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store/storetest"
)

func TestRateLimit_PerKeyTokenBucket(t *testing.T) {
	t.Parallel()
	r := storetest.New(t)
	clock := storetest.NewFakeClock(time.Unix(1_700_000_000, 0))
	var keys []api.APIKey
	for _, spec := range []string{keyA + "=acct_alpha", keyB + "=acct_bravo"} {
		k, err := api.ParseAPIKey(spec)
		require.NoError(t, err)
		keys = append(keys, k)
	}
	ring, err := api.NewKeyring(keys)
	require.NoError(t, err)
	metrics := events.NewMetrics(nil)
	srv := httptest.NewServer(api.NewServer(api.Config{Store: r.Store(clock), Keys: ring, Queue: &fakeQueue{},
		Emitter: &events.Emitter{Metrics: metrics}, Metrics: metrics, RateLimit: 2}))
	t.Cleanup(srv.Close)

	get := func(key string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/identity/verification_sessions", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body struct {
			Error struct {
				Type, Code string
			}
		}
		if resp.StatusCode != http.StatusOK {
			require.NoError(t, jsonDecode(resp, &body))
			require.Equal(t, "invalid_request_error", body.Error.Type)
		}
		return resp.StatusCode, body.Error.Code
	}

	// Rate 2/s, burst 4: the fifth call within the same instant is refused, with Stripe's code.
	for i := 0; i < 4; i++ {
		status, _ := get(keyA)
		require.Equal(t, http.StatusOK, status, "call %d", i+1)
	}
	status, code := get(keyA)
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Equal(t, "rate_limit", code)

	// Another key has its own bucket.
	status, _ = get(keyB)
	require.Equal(t, http.StatusOK, status)

	// Half a second refills one token at 2/s.
	clock.Advance(500 * time.Millisecond)
	status, _ = get(keyA)
	require.Equal(t, http.StatusOK, status)
	status, _ = get(keyA)
	require.Equal(t, http.StatusTooManyRequests, status)
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
