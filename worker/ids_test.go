package worker

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFormatPayload(t *testing.T) {
	t.Parallel()
	redact, err := json.Marshal(RedactPayload{ScopePayload: ScopePayload{Account: "acct_1", Livemode: true}, SessionID: "vs_9"})
	require.NoError(t, err)
	verify, err := json.Marshal(VerifyPayload{ScopePayload: ScopePayload{Account: "acct_1"}, SessionID: "vs_9", SubmissionID: "vsub_3"})
	require.NoError(t, err)

	cases := []struct {
		name, payload, want string
	}{
		{"RedactPayload", string(redact), "account=acct_1 livemode=true session_id=vs_9"},
		{"VerifyPayload", string(verify), "account=acct_1 livemode=false session_id=vs_9 submission_id=vsub_3"},
		{"UnknownFieldHidden", `{"session_id":"vs_1","email":"jane@example.com","name":"Jane"}`, "session_id=vs_1 [2 fields hidden]"},
		{"FreeTextInIDFieldHidden", `{"session_id":"Jane Doe","account":"jane@example.com"}`, "[2 fields hidden]"},
		{"NestedHidden", `{"account":{"email":"jane@example.com"}}`, "[1 fields hidden]"},
		{"NotJSON", "jane@example.com", "[16 bytes hidden]"},
		{"JSONArray", `["jane@example.com"]`, "[20 bytes hidden]"},
		{"Empty", "", ""},
		{"Number", `{"attempt":3}`, "attempt=3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, FormatPayload([]byte(tc.payload)))
		})
	}
}
