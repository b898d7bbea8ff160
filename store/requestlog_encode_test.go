package store

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRequestLog_EncodeSplicesTheResponse(t *testing.T) {
	t.Parallel()
	key := "k"
	l := &RequestLog{ID: "req_1", Object: "request_log", Created: 1, Method: "GET", Path: "/v1/x", Status: 200,
		IdempotencyKey: &key, Params: []Param{{Key: "a", Value: `"response":0,"objects"`}},
		Response: json.RawMessage(`{"id":"vs_1","nested":{"response":0}}`), Objects: []string{"vs_1"}}
	want, err := json.Marshal(l)
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(l.encode()))
	require.Equal(t, `{"id":"vs_1","nested":{"response":0}}`, string(l.Response), "encode leaves the log as it was")

	l.Response = json.RawMessage(`"not a rendered response"`)
	want, err = json.Marshal(l)
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(l.encode()))
}

func TestSessionRedaction_ReadsTheFieldWithoutTrustingStrings(t *testing.T) {
	t.Parallel()
	require.Nil(t, sessionRedaction([]byte(`{"id":"vs_1","redaction":null}`)))
	require.Equal(t, RedactionProcessing, sessionRedaction([]byte(`{"id":"vs_1","metadata":{"k":"\"redaction\":null"},"redaction":{"status":"processing"}}`)).Status)
	require.Equal(t, RedactionRedacted, sessionRedaction([]byte(`{"redaction":{"status":"redacted"}}`)).Status)
	require.NotNil(t, sessionRedaction([]byte(`not json`)), "undecodable fails closed")
}
