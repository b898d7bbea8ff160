package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Session statuses (Stripe's enum).
const (
	StatusRequiresInput = "requires_input"
	StatusProcessing    = "processing"
	StatusVerified      = "verified"
	StatusCanceled      = "canceled"
)

// Redaction statuses.
const (
	RedactionProcessing = "processing"
	RedactionRedacted   = "redacted"
)

// Session is a VerificationSession as stored. It holds everything, verified outputs included; the API decides
// what a response shows.
type Session struct {
	ID                     string            `json:"id"`
	Object                 string            `json:"object"`
	ClientReferenceID      *string           `json:"client_reference_id"`
	ClientSecret           *string           `json:"client_secret"`
	Created                int64             `json:"created"`
	LastError              *LastError        `json:"last_error"`
	LastVerificationReport *string           `json:"last_verification_report"`
	Livemode               bool              `json:"livemode"`
	Metadata               map[string]string `json:"metadata"`
	Options                *Options          `json:"options"`
	ProvidedDetails        *ProvidedDetails  `json:"provided_details"`
	Redaction              *Redaction        `json:"redaction"`
	RelatedCustomer        *string           `json:"related_customer"`
	RelatedCustomerAccount *string           `json:"related_customer_account"`
	RelatedPerson          *RelatedPerson    `json:"related_person,omitempty"`
	Status                 string            `json:"status"`
	Type                   string            `json:"type"`
	URL                    *string           `json:"url"`
	VerifiedOutputs        *VerifiedOutputs  `json:"verified_outputs"`
	// Rev is the session's current version in its personal-data record (personal.go). Stored, never rendered.
	Rev int64 `json:"rev,omitempty"`
}

// LastError explains why the last submission failed.
type LastError struct {
	Code   *string `json:"code"`
	Reason *string `json:"reason"`
}

// Options are the session's verification options (only `document` is settable, as on Stripe).
type Options struct {
	Document *DocumentOptions `json:"document,omitempty"`
}

// DocumentOptions configures the document check.
type DocumentOptions struct {
	AllowedTypes          []string `json:"allowed_types,omitempty"`
	RequireIDNumber       *bool    `json:"require_id_number,omitempty"`
	RequireLiveCapture    *bool    `json:"require_live_capture,omitempty"`
	RequireMatchingSelfie *bool    `json:"require_matching_selfie,omitempty"`
}

// ProvidedDetails are the email and phone the merchant gave at creation.
type ProvidedDetails struct {
	Email *string `json:"email,omitempty"`
	Phone *string `json:"phone,omitempty"`
}

// Redaction is the session's redaction state; nil until redaction is requested.
type Redaction struct {
	Status string `json:"status"`
}

// RelatedPerson links the session to a Connect person.
type RelatedPerson struct {
	Account string `json:"account"`
	Person  string `json:"person"`
}

// Address is a postal address; every field is personal data.
type Address struct {
	City       *string `json:"city"`
	Country    *string `json:"country"`
	Line1      *string `json:"line1"`
	Line2      *string `json:"line2"`
	PostalCode *string `json:"postal_code"`
	State      *string `json:"state"`
}

// Date is a calendar date with optional parts (dob, expiration and issue dates).
type Date struct {
	Day   *int64 `json:"day"`
	Month *int64 `json:"month"`
	Year  *int64 `json:"year"`
}

// VerifiedOutputs is the person's data once verified.
type VerifiedOutputs struct {
	Address              *Address `json:"address"`
	Dob                  *Date    `json:"dob"`
	Email                *string  `json:"email"`
	FirstName            *string  `json:"first_name"`
	IDNumber             *string  `json:"id_number"`
	IDNumberType         *string  `json:"id_number_type"`
	LastName             *string  `json:"last_name"`
	Phone                *string  `json:"phone"`
	Sex                  *string  `json:"sex"`
	UnparsedPlaceOfBirth *string  `json:"unparsed_place_of_birth"`
	UnparsedSex          *string  `json:"unparsed_sex"`
}

// SessionCreate holds the validated parameters of a create call.
type SessionCreate struct {
	Type              string
	ClientReferenceID *string
	Metadata          map[string]string
	Options           *Options
	ProvidedDetails   *ProvidedDetails
	RelatedCustomer   *string
	// RelatedCustomerAccount is the id of an Account that represents the customer.
	RelatedCustomerAccount *string
	RelatedPerson          *RelatedPerson
	// ReturnURL is where the hosted page sends the user after a submission; it is kept beside the session
	// while the link lives (verifytoken.go), not in the session's document.
	ReturnURL *string
}

// SessionUpdate holds the validated parameters of an update call. A metadata value of "" unsets that key.
type SessionUpdate struct {
	Type            *string
	Metadata        map[string]string
	ClearMetadata   bool // `metadata=` unsets every key
	Options         *Options
	UnsetOptions    bool // `options=` or `options[document]=`
	ProvidedDetails *ProvidedDetails
}

// Origin names the API request behind a change, for the event's `request` field and the audit record.
type Origin struct {
	RequestID      string
	IdempotencyKey string
	// Personal is the request's personal part; a committed change records it in the session's personal-data
	// record under the request id, so request logs and replays refer to it instead of copying it.
	Personal *RequestPersonal
}

// personal is the request's personal part as recorded: Personal, with the Idempotency-Key the event's
// `request` names (an event renders it from the record).
func (o Origin) personal() *RequestPersonal {
	if o.IdempotencyKey == "" || (o.Personal != nil && o.Personal.IdempotencyKey != nil) {
		return o.Personal
	}
	p := &RequestPersonal{}
	if o.Personal != nil {
		*p = *o.Personal
	}
	key := o.IdempotencyKey
	p.IdempotencyKey = &key
	return p
}

// SessionFilter selects sessions in a list. Empty fields match everything.
type SessionFilter struct {
	ClientReferenceID      string
	Status                 string
	RelatedCustomer        string
	RelatedCustomerAccount string
}

// Redacting reports whether redaction was requested (processing or done).
func (s *Session) Redacting() bool { return s.Redaction != nil }

// CreateSession stores a new session in requires_input and records its `.created` event.
func (s *Store) CreateSession(ctx context.Context, sc Scope, p SessionCreate, o Origin) (*Session, []*Event, error) {
	if err := s.registerCreator(ctx, sc); err != nil {
		return nil, nil, err
	}
	now := s.clock.Now().Unix()
	id := NewID("vs")
	secret := id + "_secret_" + RandomString(24)
	url, err := s.issueVerifyLink(ctx, sc, id, p.ReturnURL)
	if err != nil {
		return nil, nil, err
	}
	meta := p.Metadata
	if meta == nil {
		meta = map[string]string{}
	}
	sess := &Session{
		ID: id, Object: "identity.verification_session", ClientReferenceID: p.ClientReferenceID,
		ClientSecret: &secret, Created: now, Livemode: sc.Livemode, Metadata: meta, Options: p.Options,
		ProvidedDetails: p.ProvidedDetails, RelatedCustomer: p.RelatedCustomer,
		RelatedCustomerAccount: p.RelatedCustomerAccount, RelatedPerson: p.RelatedPerson,
		Status: StatusRequiresInput, Type: p.Type, URL: &url,
	}
	if sess.Options == nil {
		sess.Options = &Options{}
	}
	stx := newSessionTx(s, sc, sess, &personalDoc{}, o)
	stx.oldStatus = "" // no status index holds it yet
	stx.emit(EventSessionCreated)
	member := indexMember(sess.Created, id)
	_, err = s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.ZAdd(ctx, s.sessionIndexKey(sc), redis.Z{Member: member})
		if p.ClientReferenceID != nil {
			pipe.ZAdd(ctx, s.sessionRefIndexKey(sc, *p.ClientReferenceID), redis.Z{Member: member})
		}
		if p.RelatedCustomer != nil {
			pipe.ZAdd(ctx, s.sessionCustomerIndexKey(sc, *p.RelatedCustomer), redis.Z{Member: member})
		}
		if p.RelatedCustomerAccount != nil {
			pipe.ZAdd(ctx, s.sessionCustomerAccountIndexKey(sc, *p.RelatedCustomerAccount), redis.Z{Member: member})
		}
		return stx.commit(ctx, pipe)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create session: %w", err)
	}
	return sess, stx.events, nil
}

// GetSession loads one session.
func (s *Store) GetSession(ctx context.Context, sc Scope, id string) (*Session, error) {
	if !safeID(id) {
		return nil, ErrNotFound
	}
	body, err := s.rdb.Get(ctx, s.sessionKey(sc, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	return decodeSession(id, string(body))
}

// decodeSession decodes a session as stored.
func decodeSession(id, stored string) (*Session, error) {
	raw, err := decodeDocString(stored)
	if err != nil {
		return nil, fmt.Errorf("decode session %s: %w", id, err)
	}
	var sess Session
	if err := json.Unmarshal(raw, &sess); err != nil {
		return nil, fmt.Errorf("decode session %s: %w", id, err)
	}
	return &sess, nil
}

// GetSessions loads sessions by id with one MGET; missing ones are nil.
func (s *Store) GetSessions(ctx context.Context, sc Scope, ids []string) ([]*Session, error) {
	return mget[Session](ctx, s, ids, func(id string) string { return s.sessionKey(sc, id) })
}

// mget loads documents by id with one MGET and decodes them into T; missing ones are nil.
func mget[T any](ctx context.Context, s *Store, ids []string, key func(string) string) ([]*T, error) {
	docs, err := s.mgetDocs(ctx, ids, key)
	if err != nil {
		return nil, err
	}
	out := make([]*T, len(docs))
	for i, doc := range docs {
		if doc == nil {
			continue
		}
		var obj T
		if err := json.Unmarshal(doc, &obj); err != nil {
			return nil, fmt.Errorf("decode %s: %w", ids[i], err)
		}
		out[i] = &obj
	}
	return out, nil
}

// mgetDocs loads stored documents by id with one MGET, as JSON (DecodeDoc); missing ones are nil. It is the one
// reader of several documents at once.
func (s *Store) mgetDocs(ctx context.Context, ids []string, key func(string) string) ([][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = key(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("mget: %w", err)
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		if str, ok := v.(string); ok {
			if out[i], err = decodeDocString(str); err != nil {
				return nil, fmt.Errorf("decode %s: %w", ids[i], err)
			}
		}
	}
	return out, nil
}

// ListSessions returns one page of sessions, newest first, and whether more exist in the direction of travel.
func (s *Store) ListSessions(ctx context.Context, sc Scope, f SessionFilter, p Page) ([]*Session, bool, error) {
	cursor, key, err := s.listStart(ctx, sc, f, p)
	if err != nil {
		return nil, false, err
	}
	match := func(x *Session) bool {
		return (f.ClientReferenceID == "" || (x.ClientReferenceID != nil && *x.ClientReferenceID == f.ClientReferenceID)) &&
			(f.RelatedCustomer == "" || (x.RelatedCustomer != nil && *x.RelatedCustomer == f.RelatedCustomer)) &&
			(f.RelatedCustomerAccount == "" ||
				(x.RelatedCustomerAccount != nil && *x.RelatedCustomerAccount == f.RelatedCustomerAccount)) &&
			(f.Status == "" || x.Status == f.Status)
	}
	return listFiltered(ctx, s, key, p, cursor, func(ctx context.Context, ids []string) ([]*Session, error) {
		return s.GetSessions(ctx, sc, ids)
	}, match)
}

// listStart resolves a session list's cursor to its index member and picks the index to read: the most
// selective one; the remaining filters are checked on the loaded objects.
func (s *Store) listStart(ctx context.Context, sc Scope, f SessionFilter, p Page) (cursor, key string, err error) {
	cursor, err = s.cursorMember(p, func(id string) (int64, error) {
		sess, err := s.GetSession(ctx, sc, id)
		if err != nil {
			return 0, err
		}
		return sess.Created, nil
	})
	if err != nil {
		return "", "", err
	}
	key = s.sessionIndexKey(sc)
	switch {
	case f.ClientReferenceID != "":
		key = s.sessionRefIndexKey(sc, f.ClientReferenceID)
	case f.RelatedCustomer != "":
		key = s.sessionCustomerIndexKey(sc, f.RelatedCustomer)
	case f.RelatedCustomerAccount != "":
		key = s.sessionCustomerAccountIndexKey(sc, f.RelatedCustomerAccount)
	case f.Status != "":
		key = s.sessionStatusIndexKey(sc, f.Status)
	}
	return cursor, key, nil
}

// cursorMember resolves the page's cursor id to its index member; an unknown cursor is ErrNotFound.
func (s *Store) cursorMember(p Page, created func(id string) (int64, error)) (string, error) {
	id := p.StartingAfter
	if id == "" {
		id = p.EndingBefore
	}
	if id == "" {
		return "", nil
	}
	c, err := created(id)
	if err != nil {
		return "", err
	}
	return indexMember(c, id), nil
}

// UpdateSession changes a session in requires_input (never once redaction was requested).
func (s *Store) UpdateSession(ctx context.Context, sc Scope, id string, p SessionUpdate, o Origin) (*Session, []*Event, error) {
	return s.mutate(ctx, sc, id, o, func(stx *sessionTx) error {
		sess := stx.sess
		if sess.Redacting() || sess.Status != StatusRequiresInput {
			return ErrInvalidTransition
		}
		if p.Type != nil {
			sess.Type = *p.Type
		}
		if p.ClearMetadata {
			sess.Metadata = map[string]string{}
		}
		for k, v := range p.Metadata {
			if v == "" {
				delete(sess.Metadata, k)
			} else {
				sess.Metadata[k] = v
			}
		}
		if len(sess.Metadata) > MaxMetadataKeys { // the merge, not only the request, must stay in the limit
			return ErrTooManyMetadataKeys
		}
		if p.UnsetOptions {
			sess.Options = &Options{}
		}
		if p.Options != nil {
			sess.Options = p.Options
		}
		if p.ProvidedDetails != nil {
			if sess.ProvidedDetails == nil {
				sess.ProvidedDetails = &ProvidedDetails{}
			}
			if p.ProvidedDetails.Email != nil {
				sess.ProvidedDetails.Email = p.ProvidedDetails.Email
			}
			if p.ProvidedDetails.Phone != nil {
				sess.ProvidedDetails.Phone = p.ProvidedDetails.Phone
			}
		}
		return nil
	})
}

// CancelSession moves a session from requires_input to canceled; it is irreversible.
func (s *Store) CancelSession(ctx context.Context, sc Scope, id string, o Origin) (*Session, []*Event, error) {
	return s.mutate(ctx, sc, id, o, func(stx *sessionTx) error {
		if stx.sess.Redacting() || stx.sess.Status != StatusRequiresInput {
			return ErrInvalidTransition
		}
		stx.cancel()
		return nil
	})
}
