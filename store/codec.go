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

// docLevel is the DEFLATE level: 5 compresses typical documents about 4.5× with a dictionary at a few tens of
// microseconds (BenchmarkDocCodec).
const docLevel = 5

// docDict holds typical identityd documents with their ids and personal values left empty: field names, enum
// values and shapes, the most frequent kinds last (closest to the data, so their matches are the cheapest).
//
//go:embed docdict.json
var docDict []byte

var (
	docWriters = sync.Pool{New: func() any {
		w, err := flate.NewWriterDict(io.Discard, docLevel, docDict)
		if err != nil {
			panic(err) // only for an invalid level
		}
		return &docWriter{w: w}
	}}
	docReaders = sync.Pool{New: func() any {
		return &docReader{r: flate.NewReaderDict(bytes.NewReader(nil), docDict), buf: make([]byte, 0, 4096)}
	}}
)

type docWriter struct {
	w   *flate.Writer
	buf bytes.Buffer
}

type docReader struct {
	r    io.ReadCloser
	bsrc bytes.Reader
	ssrc strings.Reader
	buf  []byte
}

// EncodeDoc compresses a JSON document for storage. The result is a new slice; doc is not kept.
func EncodeDoc(doc []byte) []byte {
	dw := docWriters.Get().(*docWriter)
	defer docWriters.Put(dw)
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
