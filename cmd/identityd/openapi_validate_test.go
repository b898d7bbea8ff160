package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const specPath = "testdata/sdk/openapi/stripe-identity-openapi-subset.json"

// A session as Stripe documents it (the redact example, with every always-present field).
const validSession = `{"id":"vs_1","object":"identity.verification_session","client_reference_id":null,
 "client_secret":null,"created":1695680120,"last_error":null,"last_verification_report":null,"livemode":false,
 "metadata":{},"options":{"document":{"require_matching_selfie":true}},"redaction":{"status":"processing"},
 "related_customer":null,"related_customer_account":null,"status":"canceled","type":"document","url":null}`

// TestOpenAPISpec_Validate proves the validator the SDK suite relies on catches what it must, each problem
// with its path, and accepts Stripe's own example.
func TestOpenAPISpec_Validate(t *testing.T) {
	t.Parallel()
	spec, err := loadOpenAPISpec(filepath.FromSlash(specPath))
	require.NoError(t, err)

	problems, err := spec.validate("identity.verification_session", []byte(validSession))
	require.NoError(t, err)
	require.Empty(t, problems)

	for _, tt := range []struct {
		name, schema string
		change       func(doc map[string]any)
		want         string
	}{
		{"MissingRequiredField", "identity.verification_session", func(d map[string]any) { delete(d, "livemode") },
			`$: missing required "livemode"`},
		{"MissingAlwaysPresentField", "identity.verification_session", func(d map[string]any) { delete(d, "url") },
			`$: missing "url" (always present in identity.verification_session responses)`},
		{"WrongType", "identity.verification_session", func(d map[string]any) { d["created"] = "yesterday" },
			"$.created: want integer, got string"},
		{"FractionIsNoInteger", "identity.verification_session", func(d map[string]any) { d["created"] = 1.5 },
			"$.created: want integer, got number 1.5"},
		{"NotInEnum", "identity.verification_session", func(d map[string]any) { d["status"] = "done" },
			"$.status: done is not one of"},
		{"NullNotAllowed", "identity.verification_session", func(d map[string]any) { d["metadata"] = nil },
			"$.metadata: null is not allowed"},
		{"NestedThroughAnyOfAndRef", "identity.verification_session",
			func(d map[string]any) { d["redaction"] = map[string]any{"status": "gone"} },
			"$.redaction.status: gone is not one of"},
		{"AnyOfBranches", "identity.verification_session", func(d map[string]any) { d["last_verification_report"] = 7 },
			"$.last_verification_report: matches no anyOf branch (anyOf[0]: $.last_verification_report: want string"},
		{"AdditionalPropertiesSchema", "identity.verification_session",
			func(d map[string]any) { d["metadata"] = map[string]any{"k": 7} }, "$.metadata.k: want string, got number 7"},
		{"ArrayItems", "identity.verification_session", func(d map[string]any) {
			d["options"] = map[string]any{"document": map[string]any{"allowed_types": []any{"passport", "selfie"}}}
		}, "$.options.document.allowed_types[1]: selfie is not one of"},
		{"ListURLPattern", "GET /v1/identity/verification_sessions", nil,
			`$.url: "/v1/events" does not match ^/v1/identity/verification_sessions`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var doc map[string]any
			require.NoError(t, json.Unmarshal([]byte(validSession), &doc))
			var body any = doc
			if tt.change != nil {
				tt.change(doc)
			} else {
				body = map[string]any{"object": "list", "url": "/v1/events", "has_more": false, "data": []any{doc}}
			}
			raw, err := json.Marshal(body)
			require.NoError(t, err)
			problems, err := spec.validate(tt.schema, raw)
			require.NoError(t, err)
			require.Len(t, problems, 1, "%q", problems)
			require.True(t, strings.HasPrefix(problems[0], tt.want), "got %q, want prefix %q", problems[0], tt.want)
		})
	}

	t.Run("ErrorShape", func(t *testing.T) {
		t.Parallel()
		problems, err := spec.validate("error", []byte(`{"error":{"type":"invalid_request_error","param":"type"}}`))
		require.NoError(t, err)
		require.Empty(t, problems)
		problems, err = spec.validate("error", []byte(`{"message":"no"}`))
		require.NoError(t, err)
		require.Equal(t, []string{`$: missing required "error"`}, problems)
	})

	t.Run("UnknownSchemaIsAnError", func(t *testing.T) {
		t.Parallel()
		_, err := spec.validate("identity.verification_flow", []byte(`{}`))
		require.ErrorContains(t, err, "no schema")
		_, err = spec.validate("GET /v1/nowhere", []byte(`{}`))
		require.ErrorContains(t, err, "no 200 answer")
	})
}
