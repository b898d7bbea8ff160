package store_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

// TestEachMember walks compact objects member by member, values raw, and refuses what it cannot walk.
func TestEachMember(t *testing.T) {
	walk := func(raw string) ([]string, bool) {
		var out []string
		ok := store.EachMember([]byte(raw), func(k string, v []byte) bool {
			out = append(out, k+"="+string(v))
			return true
		})
		return out, ok
	}
	for _, raw := range []string{
		`{}`,
		`{"a":1}`,
		`{"a":"x\"y","b":"\\","c":"\\\"","d":"}{][,:"}`,
		`{"n":null,"t":true,"f":false,"x":-1.5e3,"s":"é🎉\u2028"}`,
		`{"o":{"a":[1,{"b":"]"}],"c":{}},"l":[],"e":""}`,
	} {
		got, ok := walk(raw)
		require.True(t, ok, raw)
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(raw), &m))
		require.Len(t, got, len(m), raw)
		for _, kv := range got {
			k, v, _ := cut(kv)
			require.Equal(t, string(m[k]), v, raw)
		}
	}
	for _, raw := range []string{``, `{`, `[]`, `{"a":1,}`, `{"a" :1}`, `{ "a":1}`, `{"a":1 }`, `{"a":"x}`,
		`{"a":"x\"}`, `{"a\"b":1}`, `{"a":{"b":1}`, `{"a":1]`, `{"a":}`, `{"a":1}}`, `{"a":[1,2}`} {
		_, ok := walk(raw)
		require.False(t, ok, raw)
	}
	n := 0
	require.True(t, store.EachMember([]byte(`{"a":1,"b":2,"c":3}`), func(string, []byte) bool { n++; return n < 2 }))
	require.Equal(t, 2, n, "stops when fn says so")
}

func cut(kv string) (string, string, bool) {
	for i := range kv {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}
