package worker

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// SafePayloadKeys are the task payload fields that may leave the queue for humans (task logs, the dashboard):
// ids and flags, never personal data. A payload field not listed here is hidden, so a future payload that
// carries something else stays out of sight until someone decides it is safe and adds it.
var SafePayloadKeys = map[string]bool{
	"account":            true,
	"livemode":           true,
	"session_id":         true,
	"submission_id":      true,
	"report_id":          true,
	"event_id":           true,
	"endpoint_id":        true,
	"delivery_id":        true,
	"attempt":            true,
	"request_id":         true,
	"batch":              true,
	"bulk_redaction":     true,
	"webhook_redelivery": true,
}

// idValue is what a shown string must look like: an identifier, not free text (no spaces, no @, no +).
var idValue = regexp.MustCompile(`^[A-Za-z0-9_|:.\-]{0,128}$`)

// SafeFields returns the whitelisted fields of a JSON-object payload whose values are ids, flags or numbers,
// and how many other fields it hid. A payload that is not a JSON object is hidden whole (hidden = -1).
func SafeFields(payload []byte) (fields map[string]any, hidden int) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, -1
	}
	fields = map[string]any{}
	for k, v := range raw {
		if val, ok := safeValue(v); ok && SafePayloadKeys[k] {
			fields[k] = val
			continue
		}
		hidden++
	}
	return fields, hidden
}

func safeValue(raw json.RawMessage) (any, bool) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, false
	}
	switch x := v.(type) {
	case bool, float64:
		return x, true
	case string:
		return x, idValue.MatchString(x)
	}
	return nil, false
}

// FormatPayload renders a payload for the dashboard and logs: `account=acct_1 session_id=vs_2`, the hidden
// rest counted, never shown.
func FormatPayload(payload []byte) string {
	if len(payload) == 0 {
		return ""
	}
	fields, hidden := SafeFields(payload)
	if hidden < 0 {
		return fmt.Sprintf("[%d bytes hidden]", len(payload))
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		parts = append(parts, k+"="+formatValue(fields[k]))
	}
	if hidden > 0 {
		parts = append(parts, fmt.Sprintf("[%d fields hidden]", hidden))
	}
	return strings.Join(parts, " ")
}

func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}
