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

// rateLimited serves the API with the given rate limit on clock and returns a GET as key, with its status
// and error code.
func rateLimited(t *testing.T, rate float64, clock *storetest.FakeClock) func(key string) (int, string) {
	t.Helper()
	r := storetest.New(t)
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
		Emitter: &events.Emitter{Metrics: metrics}, Metrics: metrics, RateLimit: rate}))
	t.Cleanup(srv.Close)

	return func(key string) (int, string) {
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
}

func TestRateLimit_PerKeyTokenBucket(t *testing.T) {
	t.Parallel()
	clock := storetest.NewFakeClock(time.Unix(1_700_000_000, 0))
	get := rateLimited(t, 2, clock)

	// Rate 2/s, burst 4: the fifth call within the same instant is refused, with Stripe's code.
	for i := range 4 {
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

// A rate below 0.5/s would make the burst (twice the rate) smaller than one request: every request refused.
// The burst is at least one, so such a rate allows one request per 1/rate seconds.
func TestRateLimit_SlowRateAllowsSomeRequests(t *testing.T) {
	t.Parallel()
	clock := storetest.NewFakeClock(time.Unix(1_700_000_000, 0))
	get := rateLimited(t, 0.25, clock)
	status, _ := get(keyA)
	require.Equal(t, http.StatusOK, status, "the first request")
	status, code := get(keyA)
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Equal(t, "rate_limit", code)
	clock.Advance(3 * time.Second)
	status, _ = get(keyA)
	require.Equal(t, http.StatusTooManyRequests, status, "3s refill only 0.75 of a token at 0.25/s")
	clock.Advance(time.Second)
	status, _ = get(keyA)
	require.Equal(t, http.StatusOK, status, "4s refill one token")
}
