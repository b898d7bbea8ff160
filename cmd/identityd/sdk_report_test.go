package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"
)

// sdkReport collects a scenario's check lines; the Go scenario writes the same lines the scripts print.
type sdkReport struct{ lines []byte }

// run runs one check: fn returns the raw answer to validate (or an error); a failure is reported and the
// scenario goes on, so one deviation does not hide the others.
func (r *sdkReport) run(check, schema string, fn func() ([]byte, error)) bool {
	body, err := fn()
	c := sdkCheck{Check: check, Schema: schema, OK: err == nil, Body: body}
	if err != nil {
		c.Message = err.Error()
		var se *stripe.Error
		if errors.As(err, &se) && se.LastResponse != nil {
			c.Body = se.LastResponse.RawJSON
		}
	}
	if len(c.Body) == 0 {
		c.Body = json.RawMessage("null")
	}
	line, _ := json.Marshal(c) // an sdkCheck always marshals
	r.lines = append(append(r.lines, line...), '\n')
	return err == nil
}

// failing runs call, which must fail with a Stripe error; inspect checks it, and the body as sent is validated.
func (r *sdkReport) failing(check string, call func() error, inspect func(se *stripe.Error) error) {
	r.run(check, "error", func() ([]byte, error) {
		var se *stripe.Error
		if err := call(); !errors.As(err, &se) {
			return nil, fmt.Errorf("the call did not fail with a Stripe error: %w", err)
		}
		if err := inspect(se); err != nil {
			return se.LastResponse.RawJSON, err
		}
		return se.LastResponse.RawJSON, nil
	})
}

func expectf(cond bool, format string, args ...any) error {
	if !cond {
		return fmt.Errorf(format, args...)
	}
	return nil
}

func rawOf(r *stripe.APIResponse) []byte {
	if r == nil {
		return nil
	}
	return r.RawJSON
}

// TestJudgeSDKReport proves the SDK suite fails on what it must: a failed check, a schema violation, a line
// that is no check, a repeated or unknown check, and a check the report misses.
func TestJudgeSDKReport(t *testing.T) {
	t.Parallel()
	spec, err := loadOpenAPISpec(filepath.FromSlash(specPath))
	require.NoError(t, err)
	line := func(c sdkCheck) string {
		raw, err := json.Marshal(c)
		require.NoError(t, err)
		return string(raw) + "\n"
	}
	var all strings.Builder
	for _, name := range sdkChecks {
		all.WriteString(line(sdkCheck{Check: name, Schema: "identity.verification_session", OK: true, Body: json.RawMessage(validSession)}))
	}
	passed, failures := judgeSDKReport(spec, "go", []byte(all.String()))
	require.Empty(t, failures)
	require.Equal(t, len(sdkChecks), passed)

	broken := strings.Replace(validSession, `"livemode":false`, `"livemode":"no"`, 1)
	report := line(sdkCheck{Check: "session_create", Schema: "identity.verification_session", OK: true, Body: json.RawMessage(broken)}) +
		line(sdkCheck{Check: "session_retrieve", Schema: "identity.verification_session", OK: false, Message: "status is canceled"}) +
		line(sdkCheck{Check: "session_retrieve", OK: true}) +
		line(sdkCheck{Check: "session_teleport", OK: true}) +
		"Traceback (most recent call last):\n" +
		line(sdkCheck{Check: "session_update", Schema: "identity.verification_flow", OK: true, Body: json.RawMessage(validSession)}) +
		line(sdkCheck{Check: "session_list_auto_pagination", OK: true, Body: json.RawMessage("null")})
	passed, failures = judgeSDKReport(spec, "node", []byte(report))
	require.Equal(t, 1, passed, "only the auto-pagination check passed")
	want := []string{
		"node session_create: the answer breaks Stripe's identity.verification_session schema: $.livemode: want boolean, got string",
		"node session_retrieve: status is canceled",
		"node session_retrieve: unexpected or repeated check",
		"node session_teleport: unexpected or repeated check",
		`node report line is not a check: "Traceback (most recent call last):"`,
		`node session_update: the answer breaks Stripe's identity.verification_flow schema: the spec has no schema "identity.verification_flow"`,
	}
	require.Len(t, failures, len(want)+len(sdkChecks)-4, "%q", failures) // four checks were reported
	for i, w := range want {
		require.True(t, strings.HasPrefix(failures[i], w), "failure %d: got %q, want prefix %q", i, failures[i], w)
	}
	require.Contains(t, failures, "node webhook_endpoint_create: not reported")
}
