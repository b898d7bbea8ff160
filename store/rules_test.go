package store_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

// TestRules_ClassifyEveryField walks the stored types by reflection: every JSON field of every object kind
// must be declared in the rule table, kept or personal. A field added to a type without a line in the table
// fails here (and, being undeclared, is scrubbed as personal meanwhile). Entries that name no field fail too,
// so the table cannot drift from the types.
func TestRules_ClassifyEveryField(t *testing.T) {
	t.Parallel()
	roots := map[store.Kind]reflect.Type{
		store.KindSession: reflect.TypeFor[store.Session](),
		store.KindReport:  reflect.TypeFor[store.Report](),
	}
	seen := map[store.Kind]bool{}
	var walk func(k store.Kind, typ reflect.Type)
	walk = func(k store.Kind, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[k] {
			return
		}
		seen[k] = true
		rules, ok := store.Rules[k]
		require.True(t, ok, "kind %s (%s) has no rules", k, typ)
		fields := map[string]bool{}
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			fields[name] = true
			rule, ok := rules[name]
			require.True(t, ok, "%s.%s (%s) is not in the rule table: declare it kept or personal", k, name, typ)
			if rule.Action == store.Nested {
				if root, ok := roots[rule.Of]; ok {
					walk(rule.Of, root)
				} else {
					walk(rule.Of, f.Type)
				}
			}
		}
		for name := range rules {
			require.True(t, fields[name], "the rule table names %s.%s, which %s does not have", k, name, typ)
		}
	}
	for k, typ := range roots {
		walk(k, typ)
	}
	for k := range store.Rules {
		require.True(t, seen[k], "kind %s is in the table but no stored type reaches it", k)
	}
}

// fixture builds a JSON object of kind k with every field of the table set: strings for redacted and kept
// fields, objects for nested kinds, dates for nulled ones.
func fixture(k store.Kind, depth int) map[string]any {
	obj := map[string]any{}
	for name, rule := range store.Rules[k] {
		switch rule.Action {
		case store.Nested:
			if depth < 3 {
				obj[name] = fixture(rule.Of, depth+1)
			}
		case store.Empty:
			obj[name] = map[string]any{"key": "value"}
		case store.Null:
			obj[name] = map[string]any{"day": 1.0, "month": 2.0, "year": 1990.0}
		default:
			obj[name] = "value of " + string(k) + "." + name
		}
	}
	return obj
}

// TestRules_ScrubAppliesEachAction scrubs a fixture generated from the table and checks every field against
// its action, nested kinds included, and that an undeclared field is scrubbed as personal.
func TestRules_ScrubAppliesEachAction(t *testing.T) {
	t.Parallel()
	for _, k := range []store.Kind{store.KindSession, store.KindReport} {
		in := fixture(k, 0)
		in["field_nobody_declared"] = "someone's data"
		raw, err := json.Marshal(in)
		require.NoError(t, err)
		var out map[string]any
		require.NoError(t, json.Unmarshal(store.ScrubDocForTest(t, k, raw), &out))
		require.Equal(t, store.Redacted, out["field_nobody_declared"], "an undeclared field is personal")
		compact, err := json.Marshal(in)
		require.NoError(t, err)
		require.JSONEq(t, string(store.ScrubDocForTest(t, k, raw)), string(store.ScrubRawForTest(t, k, compact)),
			"the raw walk applies the same rules")
		var check func(k store.Kind, in, out map[string]any)
		check = func(k store.Kind, in, out map[string]any) {
			for name, rule := range store.Rules[k] {
				if _, present := in[name]; !present {
					continue
				}
				where := string(k) + "." + name
				switch rule.Action {
				case store.Keep:
					require.Equal(t, in[name], out[name], where)
				case store.Redact:
					require.Equal(t, store.Redacted, out[name], where)
				case store.Null:
					require.Nil(t, out[name], where)
				case store.Empty:
					require.Equal(t, map[string]any{}, out[name], where)
				case store.Nested:
					check(rule.Of, in[name].(map[string]any), out[name].(map[string]any))
				}
			}
		}
		check(k, in, out)
	}
}

func TestRules_RedactKeepsNullsAndArrayLengths(t *testing.T) {
	t.Parallel()
	raw := []byte(`{"document":{"files":["file_a","file_b"],"first_name":null,"status":"verified"}}`)
	var out map[string]any
	require.NoError(t, json.Unmarshal(store.ScrubDocForTest(t, store.KindReport, raw), &out))
	require.Equal(t, map[string]any{"files": []any{store.Redacted, store.Redacted}, "first_name": nil,
		"status": "verified"}, out["document"])
}

func TestScrubParams(t *testing.T) {
	t.Parallel()
	in := []store.Param{{Key: "type", Value: "document"}, {Key: "metadata[k]", Value: "v"},
		{Key: "provided_details[email]", Value: "a@b.c"}, {Key: "provided_details[cnry]", Value: "x"},
		{Key: "expand[0]", Value: "verified_outputs"}, {Key: "cnry", Value: "y"}}
	require.Equal(t, []store.Param{{Key: "type", Value: "document"}, {Key: "provided_details[email]", Value: store.Redacted},
		{Key: store.Redacted, Value: store.Redacted}, {Key: "expand[0]", Value: "verified_outputs"},
		{Key: store.Redacted, Value: store.Redacted}}, store.ScrubParams(in),
		"kept parameters stay; metadata goes whole; a known personal name stays with a placeholder; an unknown name goes")
	kept, personal := store.SplitParams(in)
	require.Equal(t, []store.Param{in[0], in[4]}, kept)
	require.Equal(t, []store.Param{in[1], in[2], in[3], in[5]}, personal)
}

// FuzzScrubDoc: scrubbing any JSON object never fails on a shape it does not know, is idempotent, and leaves
// no string in a personal field of the table.
func FuzzScrubDoc(f *testing.F) {
	for _, k := range []store.Kind{store.KindSession, store.KindReport} {
		seed, _ := json.Marshal(fixture(k, 0))
		f.Add(seed)
	}
	f.Add([]byte(`{"verified_outputs":{"address":"x","dob":[1,2]},"metadata":null,"unknown":{"a":"b"}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		var probe map[string]any
		if json.Unmarshal(doc, &probe) != nil || probe == nil {
			return // not an object (JSON null decodes into a nil map)
		}
		once := store.ScrubDocForTest(t, store.KindSession, doc)
		twice := store.ScrubDocForTest(t, store.KindSession, once)
		require.JSONEq(t, string(once), string(twice), "scrubbing is idempotent")
		require.JSONEq(t, string(once), string(store.ScrubRawForTest(t, store.KindSession, doc)),
			"the raw walk applies the same rules as the decoded one")
		var out map[string]any
		require.NoError(t, json.Unmarshal(once, &out))
		var check func(k store.Kind, obj map[string]any)
		check = func(k store.Kind, obj map[string]any) {
			for name, v := range obj {
				rule, declared := store.Rules[k][name]
				switch {
				case !declared || rule.Action == store.Redact:
					if s, ok := v.(string); ok {
						require.Equal(t, store.Redacted, s, "%s.%s", k, name)
					}
				case rule.Action == store.Nested:
					if m, ok := v.(map[string]any); ok {
						check(rule.Of, m)
					}
				}
			}
		}
		check(store.KindSession, out)
	})
}
