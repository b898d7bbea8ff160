package store

import (
	_ "embed"
	"fmt"

	"github.com/klauspost/compress/s2"
)

// Stored JSON documents (sessions, reports, events, request logs, cached idempotent responses, submissions,
// redaction records) are compressed at the Redis boundary: EncodeDoc before every write of a document,
// DecodeDoc after every read. Everything above that boundary — the scrubbers, the API, the event renderers —
// sees plain JSON.
//
// Format: a compressed value is the marker byte docS2V1 followed by one S2 block (a Snappy-compatible LZ77
// block, github.com/klauspost/compress/s2) made with the preset dictionary docDict. Any other first byte means
// plain JSON (a stored document starts with '{'), so values written before compression still read. The
// dictionary belongs to the marker: changing it would make every stored value unreadable, so a new
// dictionary needs a new marker (TestDocDictPinned).
//
// Why S2 and not DEFLATE: identityd's documents are small (0.5–6 KB) and mostly field names, enums and shapes
// the dictionary already holds, so an LZ77 block with no entropy stage keeps most of the gain (a verified
// session's documents shrink about 4×) while encoding in about 1.3 µs instead of the 9–16 µs a DEFLATE
// encoder spends resetting its tables and priming them with the dictionary for every document — when
// redactions rewrote every document of a session, that difference was a third of their CPU (BenchmarkDocCodec).

// docS2V1 marks an S2 block made with docDict. It cannot start a JSON text.
const docS2V1 = 0x01

// docDict holds typical identityd documents with their ids and personal values left empty: field names, enum
// values and shapes, the most frequent kinds last (closest to the data, so their matches are the cheapest).
//
//go:embed docdict.json
var docDict []byte

// docS2Dict is docDict prepared for S2; its lookup table is built once, on first use, and only read after.
var docS2Dict = func() *s2.Dict {
	d := s2.MakeDict(docDict, []byte(`{"id":"`))
	if d == nil {
		panic("store: the document dictionary is too small for S2")
	}
	return d
}()

// EncodeDoc compresses a JSON document for storage. The result is a new slice; doc is not kept.
func EncodeDoc(doc []byte) []byte {
	out := make([]byte, 1, 1+s2.MaxEncodedLen(len(doc)))
	out[0] = docS2V1
	enc := docS2Dict.Encode(out[1:], doc)
	return out[:1+len(enc)]
}

// DecodeDoc returns the JSON of a stored document: compressed values are decoded, plain JSON (written before
// compression, or by hand) is returned as is. The result never aliases raw when it was compressed.
func DecodeDoc(raw []byte) ([]byte, error) {
	if len(raw) == 0 || raw[0] != docS2V1 {
		return raw, nil
	}
	doc, err := docS2Dict.Decode(nil, raw[1:])
	if err != nil {
		return nil, fmt.Errorf("decode document: %w", err)
	}
	return doc, nil
}

// decodeDocString decodes a value as go-redis returns it from GET or MGET.
func decodeDocString(s string) ([]byte, error) {
	if len(s) == 0 || s[0] != docS2V1 {
		return []byte(s), nil
	}
	doc, err := docS2Dict.Decode(nil, []byte(s[1:]))
	if err != nil {
		return nil, fmt.Errorf("decode document: %w", err)
	}
	return doc, nil
}
