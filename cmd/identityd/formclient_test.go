package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/worker"
)

// formClient speaks the API with raw form bodies, for what stripe-go has no method for (the test-mode submit
// helper, request logs, redaction records) and for racing many requests from goroutines.
type formClient struct {
	base   string
	secret string
	http   *http.Client
}

// form returns a raw client for key (a spec from harness_test.go's constants).
func (d *daemon) form(spec string) *formClient {
	return &formClient{base: d.url(), secret: secretOf(spec), http: &http.Client{Timeout: 30 * time.Second}}
}

// apiResponse is one answer: status, decoded JSON body and headers.
type apiResponse struct {
	Status int
	Body   map[string]any
	Raw    string
	Header http.Header
}

// errCode is the Stripe error code of a failed answer ("" when it has none).
func (r *apiResponse) errCode() string {
	e, _ := r.Body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// do sends one request; it returns an error instead of failing the test, so goroutines can call it.
// extra headers come as name, value pairs.
func (c *formClient) do(ctx context.Context, method, path string, params url.Values, headers ...string) (*apiResponse, error) {
	var body io.Reader
	target := c.base + path
	if method == http.MethodGet {
		if len(params) > 0 {
			target += "?" + params.Encode()
		}
	} else {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := &apiResponse{Status: resp.StatusCode, Raw: string(raw), Header: resp.Header}
	if err := json.Unmarshal(raw, &out.Body); err != nil {
		return nil, fmt.Errorf("%s %s: %d with a body that is not a JSON object: %w", method, path, resp.StatusCode, err)
	}
	return out, nil
}

// post sends a POST and fails the test on a transport error.
func (c *formClient) post(t *testing.T, path string, params url.Values, headers ...string) *apiResponse {
	t.Helper()
	r, err := c.do(context.Background(), http.MethodPost, path, params, headers...)
	require.NoError(t, err)
	return r
}

// get sends a GET and fails the test on a transport error.
func (c *formClient) get(t *testing.T, path string, params url.Values) *apiResponse {
	t.Helper()
	r, err := c.do(context.Background(), http.MethodGet, path, params)
	require.NoError(t, err)
	return r
}

// submitPath is the test-mode submission helper of a session.
func submitPath(id string) string {
	return "/v1/test_helpers/identity/verification_sessions/" + id + "/submit"
}

// listAll pages through a list endpoint (100 at a time) and returns every object.
func (c *formClient) listAll(t *testing.T, path string, params url.Values) []map[string]any {
	t.Helper()
	var out []map[string]any
	q := url.Values{}
	maps.Copy(q, params)
	q.Set("limit", "100")
	for {
		r := c.get(t, path, q)
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		data, _ := r.Body["data"].([]any)
		for _, x := range data {
			out = append(out, x.(map[string]any))
		}
		if more, _ := r.Body["has_more"].(bool); !more || len(data) == 0 {
			return out
		}
		q.Set("starting_after", data[len(data)-1].(map[string]any)["id"].(string))
	}
}

// sessionEvents lists every event of the daemon's account and counts them per session id and type.
func (c *formClient) sessionEvents(t *testing.T) map[string]map[string]int {
	t.Helper()
	out := map[string]map[string]int{}
	for _, ev := range c.listAll(t, "/v1/events", nil) {
		obj := ev["data"].(map[string]any)["object"].(map[string]any)
		id := obj["id"].(string)
		if out[id] == nil {
			out[id] = map[string]int{}
		}
		out[id][ev["type"].(string)]++
	}
	return out
}

// jsonStr reads a string at a dotted path in decoded JSON ("" when absent or not a string).
func jsonStr(v any, path string) string {
	s, _ := jsonAt(v, path).(string)
	return s
}

// jsonAt walks a dotted path through decoded JSON objects; nil when absent.
func jsonAt(v any, path string) any {
	for part := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	return v
}

// redactTaskCount is how many redaction tasks the daemon's queue holds in any state, completed included.
func redactTaskCount(t *testing.T, d *daemon) int {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(d.redis.Client)
	info, err := insp.GetQueueInfo(worker.NewQueues(d.redis.QueuePrefix).Redact)
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return 0
	}
	require.NoError(t, err)
	return info.Pending + info.Active + info.Scheduled + info.Retry + info.Archived + info.Completed + info.Aggregating
}

// scrapeMetrics returns the admin listener's /metrics text.
func scrapeMetrics(t *testing.T, d *daemon) string {
	t.Helper()
	resp, err := http.Get("http://" + d.main.AdminAddr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return string(body)
}
