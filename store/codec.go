package store

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Stored JSON documents (sessions, reports, events, request logs, cached idempotent responses, submissions,
// redaction records) are compressed at the Redis boundary: EncodeDoc before every write of a document,
// DecodeDoc after every read. Everything above that boundary — the scrubbers, the API, the event renderers —
// sees plain JSON.
//
// Format: a compressed value is the marker byte docFlateV1 followed by a raw DEFLATE stream made with the
// preset dictionary docDict. Any other first byte means plain JSON (a stored document starts with '{'), so
// values written before compression existed still read. The dictionary belongs to the marker: changing it
// would make every stored value unreadable, so a new dictionary needs a new marker (TestDocDictPinned).

// docFlateV1 marks a DEFLATE stream made with docDict. It cannot start a JSON text.
const docFlateV1 = 0x01

// Documents up to docSmall bytes are compressed at level 5: their cost is mostly priming the encoder with the
// dictionary, and the higher level buys about 12% smaller values for it. Larger ones (request logs of list
// calls hold a whole page) use level 2, which is several times faster per byte at a few percent larger output.
// Either is a DEFLATE stream over the same dictionary, so the reader does not care which (BenchmarkDocCodec).
//
// The redaction cascade and completion rewrite every document tied to a session at once, on the path whose
// throughput matters most, so they write at level 1: about 40% less CPU per document than level 5 for values ~12% larger
// (a scrubbed document has lost most of what made it differ from the dictionary anyway).
const (
	docSmall      = 2048
	docLevelSmall = 5
	docLevelLarge = 2
	docLevelFast  = 1
)

// docDict holds typical identityd documents with their ids and personal values left empty: field names, enum
// values and shapes, the most frequent kinds last (closest to the data, so their matches are the cheapest).
//
//go:embed docdict.json
var docDict []byte

var (
	docWritersSmall = sync.Pool{New: func() any { return newDocWriter(docLevelSmall) }}
	docWritersLarge = sync.Pool{New: func() any { return newDocWriter(docLevelLarge) }}
	docWritersFast  = sync.Pool{New: func() any { return newDocWriter(docLevelFast) }}
	docReaders      = sync.Pool{New: func() any {
		return &docReader{r: flate.NewReaderDict(bytes.NewReader(nil), docDict), buf: make([]byte, 0, 4096)}
	}}
)

type docWriter struct {
	w   *flate.Writer
	buf bytes.Buffer
}

func newDocWriter(level int) *docWriter {
	w, err := flate.NewWriterDict(io.Discard, level, docDict)
	if err != nil {
		panic(err) // only for an invalid level
	}
	return &docWriter{w: w}
}

type docReader struct {
	r    io.ReadCloser
	bsrc bytes.Reader
	ssrc strings.Reader
	buf  []byte
}

// EncodeDoc compresses a JSON document for storage. The result is a new slice; doc is not kept.
func EncodeDoc(doc []byte) []byte {
	pool := &docWritersSmall
	if len(doc) > docSmall {
		pool = &docWritersLarge
	}
	return encodeDocWith(pool, doc)
}

// encodeDocFast is EncodeDoc at the fastest level, for the redaction cascade's and completion's writes.
func encodeDocFast(doc []byte) []byte { return encodeDocWith(&docWritersFast, doc) }

func encodeDocWith(pool *sync.Pool, doc []byte) []byte {
	dw := pool.Get().(*docWriter)
	defer pool.Put(dw)
	dw.buf.Reset()
	dw.buf.WriteByte(docFlateV1)
	dw.w.Reset(&dw.buf)
	// Writes to a bytes.Buffer cannot fail.
	_, _ = dw.w.Write(doc)
	_ = dw.w.Close()
	return bytes.Clone(dw.buf.Bytes())
}

// DecodeDoc returns the JSON of a stored document: compressed values are inflated, plain JSON (written before
// compression, or by hand) is returned as is. A decoded result never aliases a pooled buffer.
func DecodeDoc(raw []byte) ([]byte, error) {
	if len(raw) == 0 || raw[0] != docFlateV1 {
		return raw, nil
	}
	dr := docReaders.Get().(*docReader)
	defer docReaders.Put(dr)
	dr.bsrc.Reset(raw[1:])
	return dr.inflate(&dr.bsrc)
}

// decodeDocString decodes a value as go-redis returns it from GET or MGET, without copying it first.
func decodeDocString(s string) ([]byte, error) {
	if len(s) == 0 || s[0] != docFlateV1 {
		return []byte(s), nil
	}
	dr := docReaders.Get().(*docReader)
	defer docReaders.Put(dr)
	dr.ssrc.Reset(s[1:])
	return dr.inflate(&dr.ssrc)
}

// inflate reads one DEFLATE stream from src into a new slice of exactly its length.
func (dr *docReader) inflate(src flate.Reader) ([]byte, error) {
	if err := dr.r.(flate.Resetter).Reset(src, docDict); err != nil {
		return nil, fmt.Errorf("decode document: %w", err)
	}
	buf := dr.buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := dr.r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("decode document: %w", err)
		}
	}
	if cap(buf) <= 1<<16 {
		dr.buf = buf // keep a grown buffer for the next document, unless one huge document grew it
	}
	return bytes.Clone(buf), nil
}
