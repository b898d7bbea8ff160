package store

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// sessionTx is one optimistic transaction on a session: the callback mutates sess, may emit events and queue
// extra writes, and everything commits in one MULTI/EXEC or not at all.
type sessionTx struct {
	store *Store
	// tx is the WATCH connection: reads inside the callback go through it, never through a second pooled
	// connection (twenty handlers each holding one and waiting for another would drain the pool).
	tx        *redis.Tx
	scope     Scope
	sess      *Session
	origin    Origin
	oldStatus string
	events    []*Event
	ops       []func(ctx context.Context, pipe redis.Pipeliner)
	unchanged bool
	// batch is the batched transaction this one is part of (nil for a single-session mutate).
	batch *batchTx
	// watched holds the values of mutate's extra watch keys (string, or nil where missing), read in the same
	// round trip as the session, so callbacks need not read them again.
	watched []any
	// base is the JSON of the session's latest version (nil before its first one); versions are the patches
	// this transaction adds to the personal-data record, in order, after the stored ones.
	base     []byte
	versions [][]byte
	// personal is the session's personal-data record as read with the session; personalChanged says it must
	// be written back even without a new version (a redaction scrubbed it).
	personal        *personalDoc
	personalChanged bool
}

// newSessionTx starts a transaction on a stored session and its personal-data record.
func newSessionTx(s *Store, sc Scope, sess *Session, personal *personalDoc, o Origin) *sessionTx {
	stx := &sessionTx{store: s, scope: sc, sess: sess, origin: o, oldStatus: sess.Status, personal: personal}
	if sess.Rev > 0 {
		stx.base = versionJSON(sess)
	}
	return stx
}

// snapshot makes the session's current state a version, unless it is the latest one already, and returns
// its number.
func (stx *sessionTx) snapshot() int64 {
	cur := versionJSON(stx.sess)
	patch := cur
	if stx.base != nil {
		patch, _ = diffTop(stx.base, cur) // both are json.Marshal's output of a Session
		if patch == nil {
			return stx.sess.Rev
		}
	}
	stx.base = cur
	stx.versions = append(stx.versions, patch)
	stx.sess.Rev++
	return stx.sess.Rev
}

// emit records an event of typ whose data.object is the session as it is now: a new version when it changed.
func (stx *sessionTx) emit(typ string) {
	rev := stx.snapshot()
	ev := newEvent(stx.store.clock.Now().Unix(), stx.scope, typ, sessionSnapshot(stx.sess), stx.origin)
	ev.ref = SessionRef{ID: stx.sess.ID, Rev: rev}
	stx.events = append(stx.events, ev)
}

// later queues a write that commits with the transaction.
func (stx *sessionTx) later(op func(ctx context.Context, pipe redis.Pipeliner)) {
	stx.ops = append(stx.ops, op)
}

// cancel moves the session to canceled, drops its credentials and emits `.canceled`.
func (stx *sessionTx) cancel() {
	stx.sess.Status = StatusCanceled
	stx.sess.ClientSecret = nil
	stx.sess.URL = nil
	stx.emit(EventSessionCanceled)
}

// sessionSnapshot renders the session as an event's data.object: the default API shape, without the
// verified outputs that need an explicit expand, and without client_secret — a single-use credential that
// must not sit in event bodies (retrieve the session for a fresh one).
func sessionSnapshot(sess *Session) json.RawMessage {
	// The outer fields shadow the embedded session's: verified_outputs (nil, omitted), client_secret (null) and
	// the version counter (omitted).
	body, _ := json.Marshal(struct {
		*Session
		ClientSecret    *string   `json:"client_secret"`
		VerifiedOutputs *struct{} `json:"verified_outputs,omitempty"`
		Rev             *struct{} `json:"rev,omitempty"`
	}{Session: sess}) // a Session always marshals
	return body
}

func (stx *sessionTx) writeEvents(ctx context.Context, pipe redis.Pipeliner) error {
	for _, ev := range stx.events {
		if err := stx.store.writeEvent(ctx, pipe, stx.scope, ev, stx.sess.ID); err != nil {
			return err
		}
	}
	return nil
}

// commit queues the transaction's writes: the session body, its new versions and the request's personal part
// in its personal-data record, its status index when the status changed, the extra writes and the events.
// Create, mutate and the batched paths (batch.go) share it.
func (stx *sessionTx) commit(ctx context.Context, pipe redis.Pipeliner) error {
	s, sc, id := stx.store, stx.scope, stx.sess.ID
	stx.snapshot()
	// After snapshot, base is the session's JSON without its version counter; the stored session is that with
	// the counter as its last member (where json.Marshal puts it).
	body := make([]byte, 0, len(stx.base)+24)
	body = append(body, stx.base[:len(stx.base)-1]...)
	body = append(body, `,"rev":`...)
	body = strconv.AppendInt(body, stx.sess.Rev, 10)
	body = append(body, '}')
	pipe.Set(ctx, s.sessionKey(sc, id), EncodeDoc(body), 0)
	doc := stx.personal
	for _, v := range stx.versions {
		doc.Versions = append(doc.Versions, v)
	}
	if p := stx.origin.personal(); stx.origin.RequestID != "" && !p.empty() {
		if doc.Requests == nil {
			doc.Requests = map[string]*RequestPersonal{}
		}
		doc.Requests[stx.origin.RequestID] = p
		stx.personalChanged = true
	}
	if len(stx.versions) > 0 || stx.personalChanged {
		pipe.Set(ctx, s.personalKey(sc, id), doc.encode(), 0)
	}
	if stx.sess.Status != stx.oldStatus {
		member := indexMember(stx.sess.Created, id)
		if stx.oldStatus != "" {
			pipe.ZRem(ctx, s.sessionStatusIndexKey(sc, stx.oldStatus), member)
		}
		pipe.ZAdd(ctx, s.sessionStatusIndexKey(sc, stx.sess.Status), redis.Z{Member: member})
	}
	for _, op := range stx.ops {
		op(ctx, pipe)
	}
	return stx.writeEvents(ctx, pipe)
}

// mutate runs fn on the current session inside WATCH/MULTI and commits the result atomically: two concurrent
// calls can never both win, and each committed transition writes its events exactly once.
func (s *Store) mutate(ctx context.Context, sc Scope, id string, o Origin, fn func(*sessionTx) error, watch ...string) (*Session, []*Event, error) {
	if !safeID(id) {
		return nil, nil, ErrNotFound
	}
	key := s.sessionKey(sc, id)
	var out *Session
	var events []*Event
	err := s.watchLoad(ctx, append([]string{key, s.personalKey(sc, id)}, watch...), func(tx *watchedTx, vals []any) error {
		body, ok := vals[0].(string)
		if !ok {
			return ErrNotFound
		}
		sess, err := decodeSession(id, body)
		if err != nil {
			return err
		}
		personal, err := decodePersonal(id, vals[1])
		if err != nil {
			return err
		}
		stx := newSessionTx(s, sc, sess, personal, o)
		stx.tx, stx.watched = tx.Tx, vals[2:]
		if err := fn(stx); err != nil {
			return err
		}
		if stx.unchanged {
			out, events = stx.sess, nil
			return nil
		}
		if err := tx.commit(ctx, func(pipe redis.Pipeliner) error { return stx.commit(ctx, pipe) }); err != nil {
			return err
		}
		out, events = stx.sess, stx.events
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return out, events, nil
}
