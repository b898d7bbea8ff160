package api

import (
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/identityd/identityd/store"
)

// Form is a decoded Stripe form body or query string: ordered key/value pairs with bracket keys
// ("metadata[k]", "expand[0]", "expand[]"). Handlers read the parameters they know; any parameter left
// unread is unknown and rejected, so a typo never passes silently.
type Form struct {
	params []store.Param
	used   []bool
}

// ParseForm decodes an application/x-www-form-urlencoded string. Keys and values are percent-decoded
// (so "expand%5B%5D" is "expand[]"); '+' is a space.
func ParseForm(raw string) (*Form, error) {
	f := &Form{}
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, invalidParam(printable(k), "parameter_invalid", "Invalid URL encoding in a parameter name.")
		}
		if key == "" {
			return nil, invalidParam("", "parameter_invalid", "A parameter has an empty name.")
		}
		if !validText(key) {
			return nil, invalidParam(printable(key), "parameter_invalid", "Invalid parameter name: names must be valid UTF-8 without NUL bytes.")
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, invalidParam(key, "parameter_invalid", "Invalid URL encoding in the value of "+key+".")
		}
		if !validText(val) {
			return nil, invalidParam(key, "parameter_invalid", "Invalid value of "+key+": values must be valid UTF-8 without NUL bytes.")
		}
		if !balancedBrackets(key) {
			return nil, invalidParam(key, "parameter_invalid", "Malformed parameter name "+key+".")
		}
		f.params = append(f.params, store.Param{Key: key, Value: val})
	}
	f.used = make([]bool, len(f.params))
	return f, nil
}

// validText reports whether s is valid UTF-8 without NUL bytes: anything else would be changed on its way
// into JSON (an invalid byte becomes U+FFFD, so two different keys could become one) or cut by a C consumer.
func validText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// printable is s with every invalid byte and NUL replaced by U+FFFD, to name a rejected parameter without
// echoing the bytes that made it invalid.
func printable(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// balancedBrackets accepts name, name[a], name[a][b], name[] …: a bare head followed by bracket groups.
func balancedBrackets(key string) bool {
	i := strings.IndexByte(key, '[')
	if i < 0 {
		return !strings.ContainsRune(key, ']')
	}
	if i == 0 || strings.ContainsRune(key[:i], ']') {
		return false
	}
	rest := key[i:]
	for rest != "" {
		if rest[0] != '[' {
			return false
		}
		j := strings.IndexByte(rest, ']')
		if j < 0 || strings.ContainsRune(rest[1:j], '[') {
			return false
		}
		rest = rest[j+1:]
	}
	return true
}

// Params returns every parameter as it arrived, in order.
func (f *Form) Params() []store.Param { return f.params }

// Has reports whether any parameter is key or starts with key+"[".
func (f *Form) Has(key string) bool {
	for _, p := range f.params {
		if p.Key == key || strings.HasPrefix(p.Key, key+"[") {
			return true
		}
	}
	return false
}

// Value returns the last value of key and marks it read.
func (f *Form) Value(key string) (string, bool) {
	val, found := "", false
	for i, p := range f.params {
		if p.Key == key {
			f.used[i] = true
			val, found = p.Value, true
		}
	}
	return val, found
}

// Values reads an array: key[]=a&key[]=b or key[0]=a&key[1]=b (ordered by index). A bare key= means an
// explicitly empty array (returned as a non-nil empty slice).
func (f *Form) Values(key string) ([]string, bool, error) {
	type indexed struct {
		n int
		v string
	}
	var plain []string
	var idx []indexed
	found := false
	for i, p := range f.params {
		switch {
		case p.Key == key+"[]":
			plain = append(plain, p.Value)
		case p.Key == key:
			if p.Value != "" {
				return nil, true, invalidParam(key, "parameter_invalid", "Invalid array: "+key+" must be sent as "+key+"[] or "+key+"[0].")
			}
		case strings.HasPrefix(p.Key, key+"[") && strings.HasSuffix(p.Key, "]"):
			n, err := strconv.Atoi(p.Key[len(key)+1 : len(p.Key)-1])
			if err != nil || n < 0 || n > 10000 {
				continue // not an array element; left unread, reported as unknown
			}
			idx = append(idx, indexed{n, p.Value})
		default:
			continue
		}
		f.used[i] = true
		found = true
	}
	sort.SliceStable(idx, func(a, b int) bool { return idx[a].n < idx[b].n })
	out := make([]string, 0, len(plain)+len(idx))
	out = append(out, plain...)
	for _, x := range idx {
		out = append(out, x.v)
	}
	return out, found, nil
}

// Map reads key[k]=v pairs (one level). cleared is true when key= (empty) was sent, meaning "unset all".
func (f *Form) Map(key string) (m map[string]string, cleared, found bool, err error) {
	for i, p := range f.params {
		switch {
		case p.Key == key:
			if p.Value != "" {
				return nil, false, true, invalidParam(key, "parameter_invalid", "Invalid hash: "+key+" must be sent as "+key+"[key]=value.")
			}
			cleared = true
		case strings.HasPrefix(p.Key, key+"[") && strings.HasSuffix(p.Key, "]"):
			name := p.Key[len(key)+1 : len(p.Key)-1]
			if strings.ContainsAny(name, "[]") || name == "" {
				return nil, false, true, invalidParam(p.Key, "parameter_invalid", "Invalid key in "+key+": keys may not be empty or contain brackets.")
			}
			if m == nil {
				m = map[string]string{}
			}
			m[name] = p.Value
		default:
			continue
		}
		f.used[i] = true
		found = true
	}
	return m, cleared, found, nil
}

// Unknown returns the first parameter no handler read, or "".
func (f *Form) Unknown() string {
	for i, p := range f.params {
		if !f.used[i] {
			return p.Key
		}
	}
	return ""
}

// String reads an optional string parameter of at most 5000 characters.
func (f *Form) String(key string) (*string, error) {
	v, ok := f.Value(key)
	if !ok {
		return nil, nil
	}
	if utf8.RuneCountInString(v) > maxString {
		return nil, invalidParam(key, "parameter_invalid", "Invalid "+key+": must be at most 5000 characters.")
	}
	return &v, nil
}

// NonEmpty reads an optional string that, when sent, must not be empty.
func (f *Form) NonEmpty(key string) (*string, error) {
	v, err := f.String(key)
	if err == nil && v != nil && *v == "" {
		return nil, invalidParam(key, "parameter_invalid", "Invalid "+key+": must not be empty.")
	}
	return v, err
}

// Enum reads an optional parameter that must be one of allowed.
func (f *Form) Enum(key string, allowed ...string) (*string, error) {
	v, ok := f.Value(key)
	if !ok {
		return nil, nil
	}
	if slices.Contains(allowed, v) {
		return &v, nil
	}
	return nil, invalidParam(key, "parameter_invalid", "Invalid "+key+": must be one of "+strings.Join(allowed, ", ")+".")
}

// Int reads an optional integer parameter.
func (f *Form) Int(key string) (*int64, error) {
	v, ok := f.Value(key)
	if !ok {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, invalidParam(key, "parameter_invalid_integer", "Invalid integer: "+key+".")
	}
	return &n, nil
}

// Bool reads an optional boolean parameter: "true" or "false", or "True" or "False" as stripe-python before
// version 7 sends them (Python's own spelling of a bool; Debian's python3-stripe 5.0.0 is one of those).
func (f *Form) Bool(key string) (*bool, error) {
	v, ok := f.Value(key)
	if !ok {
		return nil, nil
	}
	switch v {
	case "true", "True":
		b := true
		return &b, nil
	case "false", "False":
		b := false
		return &b, nil
	}
	return nil, invalidParam(key, "parameter_invalid", "Invalid boolean: "+key+" must be true or false.")
}

// Limits count characters (runes), as Stripe does, not bytes.
const (
	maxString        = 5000
	maxMetadataKeys  = 50
	maxMetadataKey   = 40
	maxMetadataValue = 500
)

// Metadata reads metadata[k]=v with Stripe's limits. In an update, an empty value unsets a key.
func (f *Form) Metadata() (m map[string]string, cleared bool, err error) {
	m, cleared, _, err = f.Map("metadata")
	if err != nil {
		return nil, false, err
	}
	if len(m) > maxMetadataKeys {
		return nil, false, invalidParam("metadata", "parameter_invalid", "Invalid metadata: at most 50 keys.")
	}
	for k, v := range m {
		if utf8.RuneCountInString(k) > maxMetadataKey {
			return nil, false, invalidParam("metadata", "parameter_invalid", "Invalid metadata: keys must be at most 40 characters.")
		}
		if utf8.RuneCountInString(v) > maxMetadataValue {
			return nil, false, invalidParam("metadata["+k+"]", "parameter_invalid", "Invalid metadata value: at most 500 characters.")
		}
	}
	return m, cleared, nil
}

// Created reads created=<int> or created[gt|gte|lt|lte]=<int> into a range.
func (f *Form) Created(key string) (store.CreatedRange, error) {
	var r store.CreatedRange
	exact, err := f.Int(key)
	if err != nil {
		return r, err
	}
	if exact != nil {
		r.GTE, r.LTE = exact, exact
	}
	for _, op := range []struct {
		name string
		dst  **int64
	}{{"gt", &r.GT}, {"gte", &r.GTE}, {"lt", &r.LT}, {"lte", &r.LTE}} {
		v, err := f.Int(key + "[" + op.name + "]")
		if err != nil {
			return r, err
		}
		if v != nil {
			if exact != nil {
				return r, invalidParam(key, "parameter_invalid", "Invalid "+key+": send an integer or a range, not both.")
			}
			*op.dst = v
		}
	}
	return r, nil
}

// ObjectID reads an optional parameter holding an object id; one not shaped like an id identityd issues is
// rejected, since ids become parts of Redis keys.
func (f *Form) ObjectID(key string) (*string, error) {
	v, err := f.NonEmpty(key)
	if err != nil || v == nil {
		return v, err
	}
	if !validObjectID(*v) {
		return nil, invalidParam(key, "parameter_invalid", "Invalid "+key+": not an object id.")
	}
	return v, nil
}

// CreateMetadata reads metadata for a create: as Stripe does, an empty value on a new object sets nothing.
func (f *Form) CreateMetadata() (map[string]string, error) {
	m, _, err := f.Metadata()
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m, err
}

// NonEmptyFilters reads optional, non-empty string filters into their destinations, in the order given.
func (f *Form) NonEmptyFilters(filters ...StringFilter) error {
	for _, x := range filters {
		v, err := f.NonEmpty(x.Name)
		if err != nil {
			return err
		}
		if v != nil {
			*x.Dst = *v
		}
	}
	return nil
}

// StringFilter names a string parameter and where NonEmptyFilters stores it.
type StringFilter struct {
	Name string
	Dst  *string
}
