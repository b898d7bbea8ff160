package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawClient speaks the HTTP API without an SDK, so a test sees exactly which calls were answered and which
// failed in transport (connection refused, reset) when it kills the server.
type rawClient struct {
	base   string
	secret string
	hc     *http.Client
}

func newRawClient(base, spec string) *rawClient {
	return &rawClient{base: base, secret: secretOf(spec), hc: &http.Client{Timeout: 30 * time.Second}}
}

// do sends one request (form in the body for POST, in the query otherwise) and decodes the JSON answer.
// err is set only when no answer arrived.
func (c *rawClient) do(method, path string, form url.Values) (int, map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target := c.base + path
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(form.Encode())
	} else if len(form) > 0 {
		target += "?" + form.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.secret)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("decode %s %s answer (%d): %w", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, out, nil
}

// must sends a request that has to succeed with 200.
func (c *rawClient) must(t testing.TB, method, path string, form url.Values) map[string]any {
	t.Helper()
	code, out, err := c.do(method, path, form)
	require.NoError(t, err, "%s %s", method, path)
	require.Equal(t, http.StatusOK, code, "%s %s: %v", method, path, out)
	return out
}

// listAll pages through a list endpoint (limit 100, starting_after) and returns every object.
func (c *rawClient) listAll(t testing.TB, path string, filter url.Values) []map[string]any {
	t.Helper()
	var all []map[string]any
	after := ""
	for page := 0; ; page++ {
		require.Less(t, page, 1000, "list %s does not end", path)
		q := url.Values{"limit": {"100"}}
		maps.Copy(q, filter)
		if after != "" {
			q.Set("starting_after", after)
		}
		out := c.must(t, http.MethodGet, path, q)
		data, _ := out["data"].([]any)
		for _, d := range data {
			obj := d.(map[string]any)
			all = append(all, obj)
			after = obj["id"].(string)
		}
		if more, _ := out["has_more"].(bool); !more || len(data) == 0 {
			return all
		}
	}
}

// str reads a nested string field ("a.b.c"); "" when absent or not a string.
func str(obj map[string]any, path string) string {
	v, _ := field(obj, path).(string)
	return v
}

// field reads a nested field ("a.b.c"); nil when absent.
func field(obj map[string]any, path string) any {
	var cur any = obj
	for part := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}
