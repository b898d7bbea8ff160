package store_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// codecSession is a typical stored session, as the API writes it.
const codecSession = `{"id":"vs_28e5aRNLUDtHnEE15WdL8qiZ","object":"identity.verification_session","client_reference_id":"order-77","client_secret":"vs_28e5aRNLUDtHnEE15WdL8qiZ_secret_HI5zM4MVnyiT1flPeKxX0ooA","created":1795648706,"last_error":null,"last_verification_report":"vr_28e5aRNoeWSAlqGKx0iUz87U","livemode":false,"metadata":{"order":"3297"},"options":{},"provided_details":{"email":"ada@example.org","phone":"+15550003297"},"redaction":null,"related_customer":null,"status":"verified","type":"document","url":"http://127.0.0.1:8080/verify/vs_28e5aRNLUDtHnEE15WdL8qiZ","verified_outputs":{"address":null,"dob":{"day":22,"month":10,"year":2007},"email":"ada@example.org","first_name":"Ada","id_number":null,"id_number_type":null,"last_name":"Lovelace","phone":null,"sex":null,"unparsed_place_of_birth":null,"unparsed_sex":null}}`

func TestDocCodecRoundTrip(t *testing.T) {
	big := `{"metadata":{"k":"` + strings.Repeat("Zürich ✓ ", 20000) + `"}}` // larger than any pooled buffer
	for name, doc := range map[string]string{
		"session": codecSession, "empty object": `{}`, "big": big, "empty": ``,
		"binary": "{\x00\xff\x01\"}",
	} {
		t.Run(name, func(t *testing.T) {
			enc := store.EncodeDoc([]byte(doc))
			require.Equal(t, byte(0x01), enc[0], "compressed values carry the marker")
			got, err := store.DecodeDoc(enc)
			require.NoError(t, err)
			require.Equal(t, doc, string(got))
			require.Equal(t, enc, store.EncodeDoc([]byte(doc)), "encoding is deterministic")
		})
	}
	enc := store.EncodeDoc([]byte(codecSession))
	require.Less(t, len(enc)*3, len(codecSession), "a typical session compresses at least 3×: %d → %d bytes", len(codecSession), len(enc))
}

// Values written before compression existed are plain JSON and read unchanged.
func TestDocCodecReadsPlainJSON(t *testing.T) {
	got, err := store.DecodeDoc([]byte(codecSession))
	require.NoError(t, err)
	require.Equal(t, codecSession, string(got))
}

func TestDocCodecRejectsCorruptValues(t *testing.T) {
	enc := store.EncodeDoc([]byte(codecSession))
	for name, v := range map[string][]byte{
		"truncated": enc[:len(enc)/2],
		"garbage":   {0x01, 0xff, 0xff, 0xff, 0xff},
	} {
		_, err := store.DecodeDoc(v)
		require.Error(t, err, name)
	}
}

// TestDocDictPinned decodes a value written by the first version of the codec: stored documents must stay
// readable, so the dictionary behind marker 0x01 must never change (a new dictionary takes a new marker).
func TestDocDictPinned(t *testing.T) {
	stored, err := hex.DecodeString("017e59910870696e51941500313a9501423f0421d811000c756c6c7d")
	require.NoError(t, err)
	got, err := store.DecodeDoc(stored)
	require.NoError(t, err)
	require.Equal(t, `{"id":"vs_pin","object":"identity.verification_session","client_reference_id":null,"status":"requires_input","redaction":null}`, string(got))
}

// The documents the store writes are compressed, old plain-JSON ones still load, and a redaction rewrites them
// compressed.
func TestStoredDocumentsAreCompressed(t *testing.T) {
	ctx := context.Background()
	b := setup(t)
	email := "codec-" + store.RandomString(8) + "@example.org"
	sess := b.create(t, store.SessionCreate{ProvidedDetails: &store.ProvidedDetails{Email: &email}})

	raw, err := b.redis.Client.Get(ctx, b.key("vs:"+sess.ID)).Bytes()
	require.NoError(t, err)
	require.Equal(t, byte(0x01), raw[0])
	require.NotContains(t, string(raw), email, "the value is compressed, not plain")

	// Store it back as plain JSON, as a version before compression did.
	plain, err := store.DecodeDoc(raw)
	require.NoError(t, err)
	require.True(t, json.Valid(plain))
	require.NoError(t, b.redis.Client.Set(ctx, b.key("vs:"+sess.ID), plain, 0).Err())
	got, err := b.st.GetSession(ctx, b.sc, sess.ID)
	require.NoError(t, err)
	require.Equal(t, sess, got)

	events, err := b.redis.Client.ZRange(ctx, b.key("vs:"+sess.ID+":events"), 0, -1).Result()
	require.NoError(t, err)
	require.NotEmpty(t, events)
	for _, id := range events {
		raw, err := b.redis.Client.Get(ctx, b.key("evt:"+id)).Bytes()
		require.NoError(t, err)
		require.Equal(t, byte(0x01), raw[0], "event %s", id)
	}
}

// ScanAll, which the canary tests use to look for personal values in every key, sees through compression: a
// canary inside a compressed document is found even where it is not visible in the raw bytes. (S2 keeps a
// novel string as a literal, but a repeated one becomes a back-reference: the canary repeats its random part,
// so its raw bytes are split.)
func TestScanAllFindsCanaryInCompressedValue(t *testing.T) {
	ctx := context.Background()
	b := setup(t)
	part := store.RandomString(8)
	canary := part + part + part
	doc := strings.Replace(codecSession, "Lovelace", canary, 1)
	key := b.key("vr:vr_canary")
	require.NoError(t, b.redis.Client.Set(ctx, key, store.EncodeDoc([]byte(doc)), 0).Err())
	raw, err := b.redis.Client.Get(ctx, key).Bytes()
	require.NoError(t, err)
	require.False(t, bytes.Contains(raw, []byte(canary)), "the canary is hidden in the raw value")

	all, err := storetest.ScanAll(ctx, b.redis.Client)
	require.NoError(t, err)
	require.Contains(t, all[key], canary)

	// A session stored through the store is found the same way.
	email := canary + "@example.org"
	sess := b.create(t, store.SessionCreate{ProvidedDetails: &store.ProvidedDetails{Email: &email}})
	all, err = storetest.ScanAll(ctx, b.redis.Client)
	require.NoError(t, err)
	require.Contains(t, all[b.key("vs:"+sess.ID)], email)
}

// A document that carries the marker but does not decode fails the scan instead of passing unseen. It runs on
// its own miniredis: on a shared real Redis the corrupt value would fail every other test's scan meanwhile.
func TestScanAllFailsOnUndecodableDocument(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	defer rdb.Close()
	require.NoError(t, rdb.Set(ctx, "vr:vr_ok", store.EncodeDoc([]byte(codecSession)), 0).Err())
	_, err := storetest.ScanAll(ctx, rdb)
	require.NoError(t, err)
	require.NoError(t, rdb.Set(ctx, "vr:vr_corrupt", []byte{0x01, 0xff, 0xff, 0xff}, 0).Err())
	_, err = storetest.ScanAll(ctx, rdb)
	require.ErrorContains(t, err, "vr:vr_corrupt")
}

// BenchmarkDocCodec measures encoding and decoding of typical documents and reports the compression ratio.
func BenchmarkDocCodec(b *testing.B) {
	docs := map[string]string{
		"session":     codecSession,
		"event":       `{"id":"evt_28e5aRX4vsWWCJViL0vtEWbq","object":"event","api_version":"2026-03-25.dahlia","created":1795648706,"data":{"object":{"id":"vs_28e5aRWrYm5VKwd8Q2E0MdtA","object":"identity.verification_session","client_reference_id":"order-77","created":1795648706,"last_error":null,"last_verification_report":"vr_28e5aRX4vDP1AdQRaf9dXbdn","livemode":false,"metadata":{"order":"3598"},"options":{},"provided_details":{"email":"ada@example.org","phone":"+15550003598"},"redaction":null,"related_customer":null,"status":"verified","type":"document","url":"http://127.0.0.1:8080/verify/vs_28e5aRWrYm5VKwd8Q2E0MdtA","client_secret":null}},"livemode":false,"pending_webhooks":0,"request":{"id":null,"idempotency_key":null},"type":"identity.verification_session.verified"}`,
		"report":      `{"id":"vr_28e5aQXxsjJD6nyW0pmCQY3z","object":"identity.verification_report","client_reference_id":"order-77","created":1795648705,"document":{"address":null,"dob":{"day":6,"month":2,"year":1993},"error":null,"expiration_date":null,"files":["file_eduTaS2BPasn"],"first_name":"Ada","issued_date":null,"issuing_country":null,"last_name":"Lovelace","number":"D00001153","sex":null,"status":"verified","type":null,"unparsed_place_of_birth":null,"unparsed_sex":null},"livemode":false,"options":{},"type":"document","verification_session":"vs_28e5aQXjU0bkI9cGeZOWqC1C"}`,
		"request_log": `{"id":"req_28e5aRuuJF8u11yFqaBIUOUm","object":"request_log","created":1795648706,"livemode":false,"method":"POST","path":"/v1/test_helpers/identity/verification_sessions/vs_28e5aRusFR2qe5mcS1ZyUOLP/submit","status":200,"idempotency_key":null,"params":[],"response":{"id":"vs_28e5aRusFR2qe5mcS1ZyUOLP","object":"identity.verification_session","client_reference_id":"order-77","client_secret":"vs_28e5aRusFR2qe5mcS1ZyUOLP_secret_Jt9nlwNKu9akR8IECfP16MOw","created":1795648706,"last_error":null,"last_verification_report":null,"livemode":false,"metadata":{"order":"4443"},"options":{},"provided_details":{"email":"ada@example.org","phone":"+15550004443"},"redaction":null,"related_customer":null,"status":"processing","type":"document","url":"http://127.0.0.1:8080/verify/vs_28e5aRusFR2qe5mcS1ZyUOLP","verified_outputs":null},"objects":["vs_28e5aRusFR2qe5mcS1ZyUOLP"]}`,
	}
	// A request log of a list call holds a page of sessions.
	page := make([]string, 10)
	for i := range page {
		page[i] = strings.ReplaceAll(codecSession, "28e5aRNLUDtHnEE15WdL8qiZ", store.RandomString(24))
	}
	docs["list_log"] = `{"id":"req_28e5aRWb64SCaJ3H3JBA0i87","object":"request_log","created":1795648706,"livemode":false,"method":"GET","path":"/v1/identity/verification_sessions","status":200,"idempotency_key":null,"params":[],"response":{"object":"list","url":"/v1/identity/verification_sessions","has_more":true,"data":[` +
		strings.Join(page, ",") + `]},"objects":[]}`
	for _, name := range []string{"session", "event", "report", "request_log", "list_log"} {
		doc := []byte(docs[name])
		enc := store.EncodeDoc(doc)
		b.Run(name+"/encode", func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				store.EncodeDoc(doc)
			}
			b.ReportMetric(float64(len(doc))/float64(len(enc)), "ratio")
			b.ReportMetric(float64(len(enc)), "stored-B")
		})
		b.Run(name+"/decode", func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := store.DecodeDoc(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
