package store

import (
	"bytes"
	"unicode/utf8"
)

// Lexing helpers of the scrub scanner (scrubscan.go): skipping tokens and checking that a document is canonical.

// skipString returns the index after the string token at src[i] (valid JSON). Tokens are short: a byte loop
// beats searching for the quote.
func skipString(src []byte, i int) int {
	for i++; i < len(src); i++ {
		switch src[i] {
		case '"':
			return i + 1
		case '\\':
			i++ // the escaped byte (a \uXXXX's hex digits need no care)
		}
	}
	return len(src)
}

// skipValue returns the index after the value at src[i] (valid JSON).
func skipValue(src []byte, i int) int {
	switch src[i] {
	case '"':
		return skipString(src, i)
	case '{', '[':
		depth := 0
		for i < len(src) {
			switch src[i] {
			case '"':
				i = skipString(src, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(src) && src[i] != ',' && src[i] != '}' && src[i] != ']' {
			i++
		}
		return i
	}
}

// canonical reports whether src is one JSON value exactly as encoding/json writes it (see the file comment).
func canonical(src []byte) bool {
	i, ok := canonValue(src, 0, 0)
	return ok && i == len(src)
}

func canonValue(src []byte, i, depth int) (int, bool) {
	if i >= len(src) || depth > 200 {
		return i, false
	}
	switch c := src[i]; c {
	case '{', '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i++
		if i < len(src) && src[i] == closer {
			return i + 1, true
		}
		for {
			var ok bool
			if c == '{' {
				if i >= len(src) || src[i] != '"' {
					return i, false
				}
				if i, ok = canonString(src, i); !ok || i >= len(src) || src[i] != ':' {
					return i, false
				}
				i++
			}
			if i, ok = canonValue(src, i, depth+1); !ok || i >= len(src) {
				return i, false
			}
			switch src[i] {
			case ',':
				i++
			case closer:
				return i + 1, true
			default:
				return i, false
			}
		}
	case '"':
		return canonString(src, i)
	case 't':
		return i + 4, bytes.HasPrefix(src[i:], []byte("true"))
	case 'f':
		return i + 5, bytes.HasPrefix(src[i:], []byte("false"))
	case 'n':
		return i + 4, bytes.HasPrefix(src[i:], []byte("null"))
	default:
		return canonInt(src, i)
	}
}

// canonInt accepts an integer of at most 15 digits (exact in a float64, written back the same), not -0.
func canonInt(src []byte, i int) (int, bool) {
	neg := i < len(src) && src[i] == '-'
	if neg {
		i++
	}
	start := i
	for i < len(src) && src[i] >= '0' && src[i] <= '9' {
		i++
	}
	n := i - start
	if n == 0 || n > 15 || (src[start] == '0' && (n > 1 || neg)) {
		return i, false
	}
	return i, true
}

// canonString accepts a string token escaped exactly as encoding/json escapes (HTML-safe, U+2028/U+2029
// escaped, valid UTF-8).
func canonString(src []byte, i int) (int, bool) {
	for i++; i < len(src); {
		for i < len(src) && plainByte[src[i]] {
			i++
		}
		if i >= len(src) {
			break
		}
		c := src[i]
		switch {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(src) {
				return i, false
			}
			switch src[i+1] {
			case '"', '\\', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(src) {
					return i, false
				}
				v, ok := lowerHex(src[i+2 : i+6])
				if !ok || !(v < 0x20 && v != '\b' && v != '\f' && v != '\n' && v != '\r' && v != '\t' ||
					v == '<' || v == '>' || v == '&' || v == 0x2028 || v == 0x2029) {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			return i, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && size == 1 || r == 0x2028 || r == 0x2029 {
				return i, false
			}
			i += size
		}
	}
	return i, false
}

// plainByte marks the bytes encoding/json writes as themselves in a string: printable ASCII but for the quote,
// the backslash and the HTML-unsafe <, > and &.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

func lowerHex(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | int(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
