package store

import "context"

// SetLogFlushLimit sets how many shared request-log batches of one scope may run at once. Call it before the
// store's first request log.
func SetLogFlushLimit(s *Store, n int) { s.logs = s.newLogGroup(n) }

// SetBeforeLogBatch installs a hook called with the size of each shared request-log batch before it runs.
func SetBeforeLogBatch(s *Store, f func(n int)) { s.beforeLogBatch.Store(&f) }

// WaitingLogs counts the request logs of sc waiting for a shared batch.
func WaitingLogs(s *Store, sc Scope) int { return s.logs.Waiting(sc) }

// LogScopes counts the scopes with request logs waiting or being written (each has an entry while it does).
func LogScopes(s *Store) int { return s.logs.Active() }

// RangeSessionDocs reads count entries of sc's session index, newest first, with their documents (rangeDocs).
func RangeSessionDocs(ctx context.Context, s *Store, sc Scope, count int64) ([]string, [][]byte, error) {
	return s.rangeDocs(ctx, s.sessionIndexKey(sc), s.sessionKey(sc, ""), Page{}, "", 0, count)
}

// ScrubDocForTest applies the rules of kind k to an encoded object.
func ScrubDocForTest(t interface{ Fatal(args ...any) }, k Kind, doc []byte) []byte {
	out, err := scrubDoc(k, doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ScrubRawForTest is scrubRaw, the walk over compact JSON the redaction uses.
func ScrubRawForTest(t interface{ Fatal(args ...any) }, k Kind, doc []byte) []byte {
	out, err := scrubRaw(k, doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
