package store

import (
	"bytes"
	"strings"
	"testing"
)

// The cascade's fast level writes the same format: every reader decodes it, and it still compresses.
func TestEncodeDocFastRoundTrip(t *testing.T) {
	doc := []byte(`{"id":"evt_1","object":"event","data":{"object":{"id":"vs_1","metadata":{},"provided_details":{"email":"[redacted]"}}},"type":"identity.verification_session.redacted"}`)
	for _, d := range [][]byte{doc, []byte(`{}`), []byte(strings.Repeat(string(doc), 50))} {
		enc := encodeDocFast(d)
		if enc[0] != docFlateV1 {
			t.Fatalf("no marker: %x", enc[:1])
		}
		got, err := DecodeDoc(enc)
		if err != nil || !bytes.Equal(got, d) {
			t.Fatalf("round trip of %d bytes: %v", len(d), err)
		}
		if got, err := decodeDocString(string(enc)); err != nil || !bytes.Equal(got, d) {
			t.Fatalf("string round trip of %d bytes: %v", len(d), err)
		}
	}
	if big := []byte(strings.Repeat(string(doc), 50)); len(encodeDocFast(big))*5 > len(big) {
		t.Fatalf("a repetitive document should compress at least 5×")
	}
}
