package api

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
)

// p builds the expected parameter list of a table row.
func p(kv ...string) []store.Param {
	var out []store.Param
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, store.Param{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

// requireAPIError checks that err is a Stripe-shaped 400 with the given code and param.
func requireAPIError(t *testing.T, err error, code, param string) {
	t.Helper()
	require.Error(t, err)
	var e *Error
	require.ErrorAs(t, err, &e, "want *api.Error, got %T: %v", err, err)
	require.Equal(t, 400, e.Status)
	require.Equal(t, "invalid_request_error", e.Type)
	require.Equal(t, code, e.Code)
	require.Equal(t, param, e.Param)
	require.NotEmpty(t, e.Message)
}

func TestParseForm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
		want []store.Param
	}{
		{"Empty", "", p()},
		{"OnlySeparators", "&&&", p()},
		{"Plain", "type=document&client_reference_id=u1", p("type", "document", "client_reference_id", "u1")},
		{"OrderKept", "b=2&a=1&b=3", p("b", "2", "a", "1", "b", "3")},
		{"NoEquals", "flag", p("flag", "")},
		{"EmptyValue", "metadata=", p("metadata", "")},
		{"EqualsInValue", "a=b=c", p("a", "b=c")},
		{"PlusIsSpace", "client_reference_id=a+b+c", p("client_reference_id", "a b c")},
		{"EncodedPlusStaysPlus", "provided_details[phone]=%2B15555550100", p("provided_details[phone]", "+15555550100")},
		{"BracketKeys", "metadata[order]=42&options[document][require_matching_selfie]=true",
			p("metadata[order]", "42", "options[document][require_matching_selfie]", "true")},
		{"EmptyBracketArray", "expand[]=a&expand[]=b", p("expand[]", "a", "expand[]", "b")},
		{"IndexedArray", "expand[0]=a&expand[1]=b", p("expand[0]", "a", "expand[1]", "b")},
		{"PercentEncodedBrackets", "expand%5B0%5D=verified_outputs&expand%5b%5d=x", p("expand[0]", "verified_outputs", "expand[]", "x")},
		{"PercentEncodedValue", "metadata[note]=caf%C3%A9%20%26%20bar", p("metadata[note]", "café & bar")},
		{"EmptyParts", "&a=1&&b=2&", p("a", "1", "b", "2")},
		{"CreatedRange", "created[gte]=10&created[lt]=20", p("created[gte]", "10", "created[lt]", "20")},
		{"UnicodeKey", "metadata[%C3%A9t%C3%A9]=1", p("metadata[été]", "1")},
		{"BracketsInValueAreFine", "client_reference_id=a]b[c", p("client_reference_id", "a]b[c")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := ParseForm(tt.raw)
			require.NoError(t, err)
			require.Equal(t, tt.want, f.Params())
			require.Equal(t, len(tt.want) > 0, f.Unknown() != "", "nothing is read yet, so every param is unknown")
		})
	}
}

func TestParseForm_Malformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		raw   string
		param string
	}{
		{"CloseWithoutOpen", "a]=1", "a]"},
		{"OpenWithoutHead", "[a=1", "[a"},
		{"CloseInHead", "a][b]=1", "a][b]"},
		{"Unclosed", "a[b=1", "a[b"},
		{"ExtraClose", "a[]]=1", "a[]]"},
		{"TrailingText", "a[b]c=1", "a[b]c"},
		{"NestedOpen", "a[[b]]=1", "a[[b]]"},
		{"OnlyBrackets", "[]=1", "[]"},
		{"EncodedUnclosed", "metadata%5Bk=1", "metadata[k"},
		{"EmptyName", "=1", ""},
		{"EmptyNameAmongOthers", "a=1&=2", ""},
		{"BadPercentInKey", "ty%zzpe=document", "ty%zzpe"},
		{"TruncatedPercentInKey", "type%2=document", "type%2"},
		{"BadPercentInValue", "type=doc%zzument", "type"},
		{"TruncatedPercentInValue", "type=document%", "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := ParseForm(tt.raw)
			require.Nil(t, f)
			requireAPIError(t, err, "parameter_invalid", tt.param)
		})
	}
}

func TestForm_Values(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     string
		want    []string
		found   bool
		unknown string
	}{
		{"Absent", "type=document", []string{}, false, "type"},
		{"EmptyBrackets", "expand[]=a&expand[]=b", []string{"a", "b"}, true, ""},
		{"Indexed", "expand[0]=a&expand[1]=b", []string{"a", "b"}, true, ""},
		{"IndexedOutOfOrder", "expand[2]=c&expand[0]=a&expand[1]=b", []string{"a", "b", "c"}, true, ""},
		{"PercentEncoded", "expand%5B0%5D=a&expand%5B1%5D=b", []string{"a", "b"}, true, ""},
		{"BareEmptyIsEmptyArray", "expand=", []string{}, true, ""},
		{"EmptyElement", "expand[0]=", []string{""}, true, ""},
		{"NonIndexLeftUnknown", "expand[0]=a&expand[x]=b", []string{"a"}, true, "expand[x]"},
		{"NegativeIndexLeftUnknown", "expand[-1]=a", []string{}, false, "expand[-1]"},
		{"HugeIndexLeftUnknown", "expand[10001]=a", []string{}, false, "expand[10001]"},
		{"NestedLeftUnknown", "expand[0][x]=a", []string{}, false, "expand[0][x]"},
		{"OtherKeyUntouched", "expanded[0]=a", []string{}, false, "expanded[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := ParseForm(tt.raw)
			require.NoError(t, err)
			got, found, err := f.Values("expand")
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.found, found)
			require.Equal(t, tt.unknown, f.Unknown())
		})
	}
	t.Run("BareNonEmptyIsRejected", func(t *testing.T) {
		t.Parallel()
		f, err := ParseForm("expand=verified_outputs")
		require.NoError(t, err)
		_, _, err = f.Values("expand")
		requireAPIError(t, err, "parameter_invalid", "expand")
	})
}

func TestForm_Metadata(t *testing.T) {
	t.Parallel()
	t.Run("Map", func(t *testing.T) {
		t.Parallel()
		f, err := ParseForm("metadata[a]=1&metadata[b]=&metadata[a]=2&metadata%5Bc%5D=x+y")
		require.NoError(t, err)
		m, cleared, err := f.Metadata()
		require.NoError(t, err)
		require.False(t, cleared)
		require.Equal(t, map[string]string{"a": "2", "b": "", "c": "x y"}, m)
		require.Empty(t, f.Unknown())
	})
	t.Run("Cleared", func(t *testing.T) {
		t.Parallel()
		f, err := ParseForm("metadata=")
		require.NoError(t, err)
		m, cleared, err := f.Metadata()
		require.NoError(t, err)
		require.True(t, cleared)
		require.Nil(t, m)
	})
	t.Run("Absent", func(t *testing.T) {
		t.Parallel()
		f, err := ParseForm("type=document")
		require.NoError(t, err)
		m, cleared, err := f.Metadata()
		require.NoError(t, err)
		require.False(t, cleared)
		require.Nil(t, m)
		require.Equal(t, "type", f.Unknown())
	})
	t.Run("AtLimits", func(t *testing.T) {
		t.Parallel()
		var b strings.Builder
		for i := range 50 {
			b.WriteString("&metadata[" + strings.Repeat("k", 38) + strconv.Itoa(i%10) + strconv.Itoa(i/10) + "]=" + strings.Repeat("v", 500))
		}
		f, err := ParseForm(b.String())
		require.NoError(t, err)
		m, _, err := f.Metadata()
		require.NoError(t, err)
		require.Len(t, m, 50)
	})
	for _, tt := range []struct {
		name, raw, param string
	}{
		{"TooManyKeys", manyKeys(51), "metadata"},
		{"KeyTooLong", "metadata[" + strings.Repeat("k", 41) + "]=v", "metadata"},
		{"ValueTooLong", "metadata[k]=" + strings.Repeat("v", 501), "metadata[k]"},
		{"NonEmptyBare", "metadata=x", "metadata"},
		{"EmptyKey", "metadata[]=v", "metadata[]"},
		{"NestedKey", "metadata[a][b]=v", "metadata[a][b]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := ParseForm(tt.raw)
			require.NoError(t, err)
			_, _, err = f.Metadata()
			requireAPIError(t, err, "parameter_invalid", tt.param)
		})
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("&metadata[key" + strconv.Itoa(i) + "]=v")
	}
	return b.String()
}

func TestForm_Created(t *testing.T) {
	t.Parallel()
	i := func(n int64) *int64 { return &n }
	tests := []struct {
		name string
		raw  string
		want store.CreatedRange
	}{
		{"Absent", "", store.CreatedRange{}},
		{"Exact", "created=1700000000", store.CreatedRange{GTE: i(1700000000), LTE: i(1700000000)}},
		{"Gt", "created[gt]=5", store.CreatedRange{GT: i(5)}},
		{"Gte", "created[gte]=5", store.CreatedRange{GTE: i(5)}},
		{"Lt", "created[lt]=5", store.CreatedRange{LT: i(5)}},
		{"Lte", "created[lte]=5", store.CreatedRange{LTE: i(5)}},
		{"All", "created[gt]=1&created[gte]=2&created[lt]=9&created[lte]=8",
			store.CreatedRange{GT: i(1), GTE: i(2), LT: i(9), LTE: i(8)}},
		{"PercentEncoded", "created%5Bgte%5D=7", store.CreatedRange{GTE: i(7)}},
		{"Negative", "created[gt]=-3", store.CreatedRange{GT: i(-3)}},
		{"MaxInt", "created[lte]=9223372036854775807", store.CreatedRange{LTE: i(math.MaxInt64)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := ParseForm(tt.raw)
			require.NoError(t, err)
			got, err := f.Created("created")
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Empty(t, f.Unknown())
		})
	}
	for _, tt := range []struct {
		name, raw, code, param string
	}{
		{"NotInteger", "created=yesterday", "parameter_invalid_integer", "created"},
		{"Float", "created=1.5", "parameter_invalid_integer", "created"},
		{"Empty", "created=", "parameter_invalid_integer", "created"},
		{"Overflow", "created=9223372036854775808", "parameter_invalid_integer", "created"},
		{"BadRangeValue", "created[gte]=x", "parameter_invalid_integer", "created[gte]"},
		{"ExactAndRange", "created=5&created[gt]=3", "parameter_invalid", "created"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := ParseForm(tt.raw)
			require.NoError(t, err)
			_, err = f.Created("created")
			requireAPIError(t, err, tt.code, tt.param)
		})
	}
	t.Run("UnknownOperatorLeftUnknown", func(t *testing.T) {
		t.Parallel()
		f, err := ParseForm("created[eq]=5")
		require.NoError(t, err)
		_, err = f.Created("created")
		require.NoError(t, err)
		require.Equal(t, "created[eq]", f.Unknown())
	})
}

func TestForm_Scalars(t *testing.T) {
	t.Parallel()
	f, err := ParseForm("s=hello&e=id_number&n=-42&b=true&c=false&empty=&long=" + strings.Repeat("x", 5000))
	require.NoError(t, err)
	s, err := f.String("s")
	require.NoError(t, err)
	require.Equal(t, "hello", *s)
	e, err := f.Enum("e", "document", "id_number")
	require.NoError(t, err)
	require.Equal(t, "id_number", *e)
	n, err := f.Int("n")
	require.NoError(t, err)
	require.Equal(t, int64(-42), *n)
	b, err := f.Bool("b")
	require.NoError(t, err)
	require.True(t, *b)
	c, err := f.Bool("c")
	require.NoError(t, err)
	require.False(t, *c)
	py, err := ParseForm("t=True&f=False") // stripe-python before 7 sends Python's spelling
	require.NoError(t, err)
	pyTrue, err := py.Bool("t")
	require.NoError(t, err)
	require.True(t, *pyTrue)
	pyFalse, err := py.Bool("f")
	require.NoError(t, err)
	require.False(t, *pyFalse)
	empty, err := f.String("empty")
	require.NoError(t, err)
	require.Empty(t, *empty)
	long, err := f.String("long")
	require.NoError(t, err)
	require.Len(t, *long, 5000)
	missing, err := f.String("missing")
	require.NoError(t, err)
	require.Nil(t, missing)
	require.Empty(t, f.Unknown())
	require.True(t, f.Has("s"))
	require.False(t, f.Has("missing"))

	for _, tt := range []struct {
		name, raw, code string
		read            func(f *Form) error
	}{
		{"StringTooLong", "x=" + strings.Repeat("a", 5001), "parameter_invalid", func(f *Form) error { _, err := f.String("x"); return err }},
		{"NonEmptyEmpty", "x=", "parameter_invalid", func(f *Form) error { _, err := f.NonEmpty("x"); return err }},
		{"EnumBad", "x=passport", "parameter_invalid", func(f *Form) error { _, err := f.Enum("x", "document", "id_number"); return err }},
		{"EnumCase", "x=Document", "parameter_invalid", func(f *Form) error { _, err := f.Enum("x", "document"); return err }},
		{"IntBad", "x=12a", "parameter_invalid_integer", func(f *Form) error { _, err := f.Int("x"); return err }},
		{"IntSpace", "x=+12", "parameter_invalid_integer", func(f *Form) error { _, err := f.Int("x"); return err }},
		{"BoolBad", "x=yes", "parameter_invalid", func(f *Form) error { _, err := f.Bool("x"); return err }},
		{"BoolUpper", "x=TRUE", "parameter_invalid", func(f *Form) error { _, err := f.Bool("x"); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := ParseForm(tt.raw)
			require.NoError(t, err)
			requireAPIError(t, tt.read(f), tt.code, "x")
		})
	}
}

// keyIsBalanced is the fuzz oracle, written independently of balancedBrackets: a key is a non-empty head
// without brackets, then zero or more groups "[" + text without brackets + "]".
func keyIsBalanced(key string) bool {
	depth, groups, headLen := 0, 0, 0
	for i := range len(key) {
		switch key[i] {
		case '[':
			if depth != 0 || (groups == 0 && headLen == 0) {
				return false
			}
			depth = 1
		case ']':
			if depth != 1 {
				return false
			}
			depth = 0
			groups++
		default:
			if depth == 0 {
				if groups > 0 {
					return false // text after a closed group
				}
				headLen++
			}
		}
	}
	return depth == 0 && headLen > 0
}

func TestParseForm_RejectsInvalidText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ raw, param string }{
		{"metadata[%FF]=one&metadata[%FE]=two", "metadata[\uFFFD]"},
		{"metadata[a]=%FF", "metadata[a]"},
		{"metadata[a%00b]=1", "metadata[a\uFFFDb]"},
		{"client_reference_id=a%00b", "client_reference_id"},
		{"type=\xff", "type"},
		{"\xffkey=1", "\uFFFDkey"},
	} {
		_, err := ParseForm(tc.raw)
		var e *Error
		require.ErrorAs(t, err, &e, tc.raw)
		require.Equal(t, "parameter_invalid", e.Code, tc.raw)
		require.Equal(t, tc.param, e.Param, tc.raw)
		require.True(t, validText(e.Message), tc.raw)
	}
	form, err := ParseForm("metadata[%C3%A9]=%E2%9C%93")
	require.NoError(t, err)
	require.Equal(t, []store.Param{{Key: "metadata[é]", Value: "✓"}}, form.Params())
}

func TestError_BoundedEcho(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 1000)
	e := unknownParam(long).bounded()
	require.Equal(t, strings.Repeat("é", maxEcho)+"…", e.Param)
	require.Equal(t, "Received unknown parameter: "+e.Param, e.Message)
	short := unknownParam("abc")
	require.Same(t, short, short.bounded())
}

func TestKeyIsBalanced(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"a", "a[b]", "a[]", "a[b][c]", "options[document][allowed_types][0]"} {
		require.True(t, keyIsBalanced(k), k)
	}
	for _, k := range []string{"", "[a]", "a]", "a[", "a[b", "a[]]", "a[[b]]", "a[b]c", "]", "[]"} {
		require.False(t, keyIsBalanced(k), k)
	}
}

// FuzzParseForm checks that no input panics the decoder or the readers the handlers use, and that every key
// it accepts is well formed. CI runs it for 15 s: go test -run='^$' -fuzz='^FuzzParseForm$' -fuzztime=15s ./api.
func FuzzParseForm(f *testing.F) {
	for _, seed := range []string{
		// What stripe-go v85 sends (indexed arrays, unencoded brackets, QueryEscape'd values).
		"type=document",
		"client_reference_id=user_123&metadata[order]=42&type=document",
		"options[document][allowed_types][0]=driving_license&options[document][allowed_types][1]=passport&options[document][require_matching_selfie]=true&type=document",
		"provided_details[email]=jenny%40example.com&provided_details[phone]=%2B15555550100&type=id_number",
		"related_customer=cus_123&related_person[account]=acct_1&related_person[person]=person_1&return_url=https%3A%2F%2Fexample.com%2Fdone&type=document",
		"expand[0]=last_verification_report&expand[1]=verified_outputs.dob",
		"expand[0]=data.verified_outputs&limit=3&starting_after=vs_123",
		"created[gte]=1700000000&created[lt]=1800000000&limit=100&status=requires_input",
		"created=1700000000&client_reference_id=abc",
		"ending_before=vs_ABC&limit=10",
		"metadata[order]=&metadata[new]=x",
		"metadata=",
		"options[document]=",
		"options[document][allowed_types]=",
		"outcome=requires_input&last_error[code]=document_expired&last_error[reason]=blurry",
		"verified_outputs[first_name]=Jenny&verified_outputs[dob][day]=1&verified_outputs[dob][month]=2&verified_outputs[dob][year]=1990",
		"types[0]=identity.verification_session.created&types[1]=identity.verification_session.canceled",
		// Other clients and odd shapes.
		"expand[]=a&expand[]=b",
		"expand%5B0%5D=a&expand%5B%5D=b",
		"a+b=c+d&%2B=%2B",
		"a]=1", "[a=1", "a[b=1", "a[]]=1", "a[b]c=1", "=", "&&", "%", "%zz=1", "a=%", "a=%e2%82",
		"metadata[%5B]=1", "metadata[%5D]=1", "a[%00]=\x00",
		"0][]", // found by this fuzzer: a ']' in the head was accepted
		"metadata[%FF]=one&metadata[%FE]=two", "a=%C3", "a%00=1", "a=\xff", "\xc3\xa9=%C3%A9",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		form, err := ParseForm(raw)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != 400 || e.Type != "invalid_request_error" || e.Code == "" {
				t.Fatalf("ParseForm(%q) returned a non-Stripe error %#v", raw, err)
			}
			b := e.bounded()
			if !validText(b.Param) || !validText(b.Message) {
				t.Fatalf("ParseForm(%q): the error echoes invalid text: %#v", raw, b)
			}
			if utf8.RuneCountInString(b.Param) > maxEcho+1 {
				t.Fatalf("ParseForm(%q): the error names a parameter of %d characters", raw, utf8.RuneCountInString(b.Param))
			}
			return
		}
		for _, p := range form.Params() {
			if !keyIsBalanced(p.Key) {
				t.Fatalf("ParseForm(%q) accepted unbalanced key %q", raw, p.Key)
			}
			if !validText(p.Key) || !validText(p.Value) {
				t.Fatalf("ParseForm(%q) accepted invalid text %q=%q", raw, p.Key, p.Value)
			}
		}
		// The readers handlers use must not panic either, whatever arrived.
		_, _, _ = form.Values("expand")
		_, _, _ = form.Values("options[document][allowed_types]")
		_, _, _ = form.Metadata()
		_, _ = form.Created("created")
		_, _ = form.Int("limit")
		_, _ = form.Bool("options[document][require_matching_selfie]")
		_, _ = form.Enum("type", "document", "id_number")
		_, _ = form.NonEmpty("starting_after")
		for _, p := range form.Params() {
			_, _, _, _ = form.Map(p.Key)
			_, _, _ = form.Values(p.Key)
			_ = form.Has(p.Key)
		}
		_ = form.Unknown()
	})
}
