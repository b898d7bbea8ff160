package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// openAPISpec validates JSON documents against the schemas of Stripe's OpenAPI spec (the Identity subset in
// testdata/sdk/openapi). It supports what that subset uses: $ref, type, nullable, required, properties, enum,
// anyOf, items, additionalProperties, maxLength and pattern. A component's fields listed as always present in
// responses (the SDK spec's required lists, kept in the subset's x-subset-annotations) are required too.
type openAPISpec struct {
	schemas       map[string]any
	paths         map[string]any
	alwaysPresent map[string][]string
}

// loadOpenAPISpec reads the spec file at path.
func loadOpenAPISpec(path string) (*openAPISpec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	var doc struct {
		Paths      map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
		Annotations map[string]struct {
			AlwaysPresent []string `json:"always_present_in_responses_per_sdk_spec"`
		} `json:"x-subset-annotations"` //nolint:tagliatelle // the spec's extension key, spelled as the spec spells it
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decode spec: %w", err)
	}
	s := &openAPISpec{schemas: doc.Components.Schemas, paths: doc.Paths, alwaysPresent: map[string][]string{}}
	for name, a := range doc.Annotations {
		s.alwaysPresent[name] = a.AlwaysPresent
	}
	return s, nil
}

// schema finds a schema by name: a component ("identity.verification_session", "event", "error") or an
// operation ("GET /v1/identity/verification_sessions"), meaning the schema of its 200 answer.
func (s *openAPISpec) schema(name string) (any, error) {
	if method, path, ok := strings.Cut(name, " "); ok {
		op, _ := walk(s.paths, path, strings.ToLower(method), "responses", "200", "content", "application/json", "schema")
		if op == nil {
			return nil, fmt.Errorf("the spec has no 200 answer for %s", name)
		}
		return op, nil
	}
	if _, ok := s.schemas[name]; !ok {
		return nil, fmt.Errorf("the spec has no schema %q", name)
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}, nil
}

// validate returns every place doc breaks the named schema, each as "path: problem" (path $ is the root).
func (s *openAPISpec) validate(name string, doc []byte) ([]string, error) {
	sch, err := s.schema(name)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber() // integers are told from numbers by their text
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode document: %w", err)
	}
	var problems []string
	s.check(sch, v, "$", &problems)
	return problems, nil
}

func (s *openAPISpec) check(sch, v any, path string, problems *[]string) {
	m, ok := sch.(map[string]any)
	if !ok {
		return // `true` (additionalProperties: true) and anything unknown accept every value
	}
	if ref, ok := m["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		target, found := s.schemas[name]
		if !found {
			*problems = append(*problems, path+": unresolved $ref "+ref)
			return
		}
		s.check(target, v, path, problems)
		required, _ := target.(map[string]any)["required"].([]any)
		if obj, isObj := v.(map[string]any); isObj {
			for _, field := range s.alwaysPresent[name] {
				if _, has := obj[field]; !has && !slices.Contains(required, any(field)) {
					*problems = append(*problems, fmt.Sprintf("%s: missing %q (always present in %s responses)", path, field, name))
				}
			}
		}
		return
	}
	if v == nil {
		if m["nullable"] != true {
			*problems = append(*problems, path+": null is not allowed")
		}
		return
	}
	if anyOf, ok := m["anyOf"].([]any); ok && len(anyOf) == 1 {
		s.check(anyOf[0], v, path, problems) // Stripe's way of saying "this object, nullable"
	} else if ok {
		var branchProblems []string
		for i, branch := range anyOf {
			var p []string
			s.check(branch, v, path, &p)
			if len(p) == 0 {
				branchProblems = nil
				break
			}
			branchProblems = append(branchProblems, fmt.Sprintf("anyOf[%d]: %s", i, strings.Join(p, "; ")))
		}
		if branchProblems != nil {
			*problems = append(*problems, path+": matches no anyOf branch ("+strings.Join(branchProblems, " | ")+")")
			return
		}
	}
	if typ, ok := m["type"].(string); ok && !hasType(v, typ) {
		*problems = append(*problems, fmt.Sprintf("%s: want %s, got %s", path, typ, jsonKind(v)))
		return
	}
	if enum, ok := m["enum"].([]any); ok && !slices.Contains(enum, v) {
		*problems = append(*problems, fmt.Sprintf("%s: %v is not one of %v", path, v, enum))
	}
	if str, ok := v.(string); ok {
		s.checkString(m, str, path, problems)
	}
	if arr, ok := v.([]any); ok {
		for i, item := range arr {
			s.check(m["items"], item, path+"["+strconv.Itoa(i)+"]", problems)
		}
	}
	if obj, ok := v.(map[string]any); ok {
		s.checkObject(m, obj, path, problems)
	}
}

func (s *openAPISpec) checkString(m map[string]any, str, path string, problems *[]string) {
	if limit, ok := m["maxLength"].(float64); ok && utf8.RuneCountInString(str) > int(limit) {
		*problems = append(*problems, fmt.Sprintf("%s: longer than %d characters", path, int(limit)))
	}
	if pattern, ok := m["pattern"].(string); ok {
		re, err := regexp.Compile(pattern)
		if err != nil || !re.MatchString(str) {
			*problems = append(*problems, fmt.Sprintf("%s: %q does not match %s", path, str, pattern))
		}
	}
}

func (s *openAPISpec) checkObject(m map[string]any, obj map[string]any, path string, problems *[]string) {
	props, _ := m["properties"].(map[string]any)
	if required, ok := m["required"].([]any); ok {
		for _, r := range required {
			if _, has := obj[r.(string)]; !has {
				*problems = append(*problems, fmt.Sprintf("%s: missing required %q", path, r))
			}
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys) // problems in a stable order
	for _, k := range keys {
		if p, declared := props[k]; declared {
			s.check(p, obj[k], path+"."+k, problems)
			continue
		}
		switch extra := m["additionalProperties"].(type) {
		case bool:
			if !extra {
				*problems = append(*problems, fmt.Sprintf("%s: unexpected property %q", path, k))
			}
		case map[string]any:
			s.check(extra, obj[k], path+"."+k, problems)
		}
	}
}

func hasType(v any, typ string) bool {
	switch typ {
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := strconv.ParseInt(string(n), 10, 64)
		return err == nil
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	}
	return false
}

func jsonKind(v any) string {
	switch v := v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		return "number " + string(v)
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

// walk follows keys down nested maps.
func walk(m map[string]any, keys ...string) (any, bool) {
	var cur any = m
	for _, k := range keys {
		next, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = next[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}
