package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
)

// maxBody caps request bodies: a larger one is refused with 413.
const maxBody = 1 << 20

// Queue is how the API hands work to the worker pool. Implementations carry ids only.
type Queue interface {
	// EnqueueVerify schedules the verification of a submission after the verification delay.
	EnqueueVerify(ctx context.Context, sc store.Scope, sessionID, submissionID string) error
	// EnqueueRedact schedules the scrub of a session whose redaction was requested. It is idempotent: a
	// second call for the same session while the first task exists enqueues nothing.
	EnqueueRedact(ctx context.Context, sc store.Scope, sessionID string) error
	// EnqueueBulkRedaction starts the walk of a bulk redaction job. It is idempotent per job.
	EnqueueBulkRedaction(ctx context.Context, sc store.Scope, id string) error
	// EnqueueWebhookRedelivery starts the walk of a webhook redelivery job. It is idempotent per job.
	EnqueueWebhookRedelivery(ctx context.Context, sc store.Scope, id string) error
}

// Config wires a Server.
type Config struct {
	Store   *store.Store
	Keys    *Keyring
	Queue   Queue
	Emitter *events.Emitter
	Metrics *events.Metrics
	Logger  *slog.Logger
	// RateLimit is the per-key requests per second (0 = off).
	RateLimit float64
	// WebhookAddresses refuses an endpoint URL whose host is an address deliveries may not connect to.
	WebhookAddresses events.AddressPolicy
}

// Server serves the public API.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	limiter *rateLimiter
	page    pageKeys
}

// NewServer builds the API handler.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = events.NewMetrics(nil)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	if cfg.RateLimit > 0 {
		s.limiter = newRateLimiter(cfg.RateLimit, cfg.Store.Now)
	}
	s.routes()
	return s
}

func (s *Server) routes() {
	s.handle("POST /v1/identity/verification_sessions", "session", s.createSession)
	s.handle("GET /v1/identity/verification_sessions", "session", s.listSessions)
	s.handle("GET /v1/identity/verification_sessions/{id}", "session", s.retrieveSession)
	s.handle("POST /v1/identity/verification_sessions/{id}", "session", s.updateSession)
	s.handle("POST /v1/identity/verification_sessions/{id}/cancel", "session", s.cancelSession)
	s.handle("POST /v1/identity/verification_sessions/{id}/redact", "session", s.redactSession)
	s.handle("GET /v1/identity/verification_sessions/{id}/redaction", "redaction record", s.redactionRecord)
	s.handle("POST /v1/test_helpers/identity/verification_sessions/{id}/submit", "session", s.submitSession)
	s.handle("GET /v1/identity/verification_reports", "verification report", s.listReports)
	s.handle("GET /v1/identity/verification_reports/{id}", "verification report", s.retrieveReport)
	s.handle("GET /v1/events", "event", s.listEvents)
	s.handle("GET /v1/events/{id}", "event", s.retrieveEvent)
	s.handle("POST /v1/events/{id}/retry", "event", s.retryEvent)
	s.handle("GET /v1/request_logs", "request log", s.listRequestLogs)
	s.handle("POST /v1/webhook_endpoints", "webhook endpoint", s.createWebhookEndpoint)
	s.handle("GET /v1/webhook_endpoints", "webhook endpoint", s.listWebhookEndpoints)
	s.handle("GET /v1/webhook_endpoints/{id}", "webhook endpoint", s.retrieveWebhookEndpoint)
	s.handle("POST /v1/webhook_endpoints/{id}", "webhook endpoint", s.updateWebhookEndpoint)
	s.handle("DELETE /v1/webhook_endpoints/{id}", "webhook endpoint", s.deleteWebhookEndpoint)
	s.handle("GET /v1/webhook_endpoints/{id}/attempts", "webhook endpoint", s.listWebhookAttempts)
	s.handle("POST /v1/webhook_endpoints/{id}/redeliver", "webhook endpoint", s.redeliverWebhookEndpoint)
	s.handle("GET /v1/webhook_redeliveries/{id}", "webhook redelivery", s.retrieveWebhookRedelivery)
	s.handle("POST /v1/webhook_endpoints/{id}/roll_secret", "webhook endpoint", s.rollWebhookEndpointSecret)
	// Bulk redaction (identityd extension).
	s.handle("POST /v1/identity/bulk_redactions", "bulk redaction", s.createBulkRedaction)
	s.handle("GET /v1/identity/bulk_redactions", "bulk redaction", s.listBulkRedactions)
	s.handle("GET /v1/identity/bulk_redactions/{id}", "bulk redaction", s.retrieveBulkRedaction)
	// The hosted verification page behind a session's url (no API key; verifypage.go).
	s.verifyPageRoutes()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c := &call{srv: s, w: w, r: r, requestID: store.NewID("req")}
		w.Header().Set("Request-Id", c.requestID)
		writeJSON(w, http.StatusNotFound, map[string]any{"error": &Error{Type: "invalid_request_error",
			Code: "resource_missing", Message: "Unrecognized request URL (" + r.Method + " " + r.URL.Path + ")."}})
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// call is one API request as a handler sees it.
type call struct {
	srv       *Server
	w         http.ResponseWriter
	r         *http.Request
	ctx       context.Context
	scope     store.Scope
	form      *Form
	requestID string
	idemKey   string
	// version is the API version the response is rendered with (the Stripe-Version header, or the default).
	version string
	// objects are the objects the response shows; named are those the request created (its log is listed
	// under them and under the path's id).
	objects []string
	named   []string
	status  int
	// err is the error the response carries, if any; ref is the reference document the response is stored as
	// (stored.go); plainBody says the response holds no personal data and is stored as sent.
	err       *Error
	ref       *storedBody
	plainBody bool
	// personalIn is the session whose personal-data record holds this request's personal part (a committed
	// change records it there, under the request id); fingerprint hashes the parameters of an idempotent call.
	personalIn  string
	fingerprint string
	// storedBody, when set by the handler, is the copy of a successful response kept in Redis (request log,
	// idempotency cache) instead of the one sent: a webhook endpoint's secret is sent once and stored nowhere
	// but in the endpoint's record.
	storedBody []byte
}

// stored returns the copy of a response to keep in Redis.
func (c *call) stored(body []byte, status int) []byte {
	if c.storedBody != nil && status < 400 {
		return c.storedBody
	}
	return body
}

// origin names this request for events and audit records, with the request's personal part for the
// session's personal-data record.
func (c *call) origin() store.Origin {
	p := &store.RequestPersonal{Fingerprint: c.fingerprint}
	_, p.Params = store.SplitParams(c.form.Params())
	if c.idemKey != "" {
		key := c.idemKey
		p.IdempotencyKey = &key
	}
	return store.Origin{RequestID: c.requestID, IdempotencyKey: c.idemKey, Personal: p}
}

// name records an object the request created: its log is listed under it.
func (c *call) name(id string) { c.named = append(c.named, id) }

// touch records the ids of objects this request read or changed (for request logs and redaction).
func (c *call) touch(ids ...string) {
	for _, id := range ids {
		if id != "" {
			c.objects = append(c.objects, id)
		}
	}
}

// published hands committed events to the emitter; a fan-out failure is logged, never returned.
func (c *call) published(evs []*store.Event) { c.srv.publish(c.ctx, c.scope, evs, c.requestID) }

// publish hands committed events to the emitter; a fan-out failure is logged, never returned.
func (s *Server) publish(ctx context.Context, sc store.Scope, evs []*store.Event, requestID string) {
	if err := s.cfg.Emitter.Published(ctx, sc, evs); err != nil {
		s.cfg.Logger.Warn("event fan-out failed", "request_id", requestID, "err", err)
	}
}

type handlerFunc func(c *call) (any, error)

// plainKinds are the objects that hold no personal data of a verification: their responses are stored in
// request logs and idempotent replays as they were sent.
var plainKinds = map[string]bool{"webhook endpoint": true, "bulk redaction": true, "redaction record": true,
	"webhook redelivery": true}

// handle registers pattern with the common edge: request id, auth, body cap, form decoding, idempotency,
// unknown-parameter check, error mapping, request log, metrics and an access log line.
func (s *Server) handle(pattern, kind string, h handlerFunc) {
	method, _, _ := strings.Cut(pattern, " ")
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		c := &call{srv: s, w: w, r: r, ctx: r.Context(), requestID: store.NewID("req"), status: http.StatusOK}
		w.Header().Set("Request-Id", c.requestID)
		body, status, logged := s.serve(c, method, kind, h)
		writeRaw(w, status, body)
		d := time.Since(start)
		s.cfg.Metrics.HTTPRequests.WithLabelValues(pattern, statusText(status)).Inc()
		s.cfg.Metrics.HTTPDuration.WithLabelValues(pattern).Observe(d.Seconds())
		s.cfg.Logger.Info("request", "request_id", c.requestID, "method", r.Method, "route", pattern,
			"status", status, "duration_ms", float64(d.Microseconds())/1000, "account", c.scope.Account, "logged", logged)
	})
}

// validObjectID accepts the shape of every id identityd issues: a lowercase prefix, "_", then 1–64 base62
// characters (vs_…, vr_…, evt_…, we_…, br_…).
func validObjectID(id string) bool {
	prefix, rest, ok := strings.Cut(id, "_")
	if !ok || prefix == "" || len(prefix) > 8 || rest == "" || len(rest) > 64 {
		return false
	}
	for _, c := range prefix {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	for _, c := range rest {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func statusText(code int) string {
	b := []byte{byte('0' + code/100), byte('0' + code/10%10), byte('0' + code%10)} //nolint:gosec // G115: an HTTP status has three digits, each below 10
	return string(b)
}

// serve runs one request and returns the response body and status, and whether a request log was stored.
func (s *Server) serve(c *call, method, kind string, h handlerFunc) ([]byte, int, bool) {
	sc, ok := s.cfg.Keys.Authenticate(c.r)
	if !ok {
		return errorBody(errUnauthorized), errUnauthorized.Status, false
	}
	c.scope = sc
	c.plainBody = plainKinds[kind]
	if s.limiter != nil && !s.limiter.allow(sc.Account+"|"+authSecret(c.r)) {
		return errorBody(errRateLimit), errRateLimit.Status, false
	}
	version, vErr := s.requestVersion(c.r)
	if vErr != nil {
		return errorBody(vErr), vErr.Status, false
	}
	c.version = version
	c.w.Header().Set(versionHeader, version)
	if id := c.r.PathValue("id"); id != "" && !validObjectID(id) {
		// Ids become parts of Redis keys: anything but <prefix>_<base62> is a missing object, never a key.
		e := resourceMissing(kind, "id")
		return errorBody(e), e.Status, false
	}
	raw, apiErr := readParams(c.r, method)
	if apiErr != nil {
		return errorBody(apiErr), apiErr.Status, false
	}
	form, err := ParseForm(raw)
	if err != nil {
		e := toAPIError(err, kind)
		return errorBody(e), e.Status, false
	}
	c.form = form
	if method == http.MethodPost {
		if key := strings.TrimSpace(c.r.Header.Get("Idempotency-Key")); key != "" {
			if len(key) > 255 { // rejected, and never echoed: a header does not grow with what a client sent
				e := invalidParam("Idempotency-Key", "parameter_invalid", "Idempotency-Key must be at most 255 characters.")
				return errorBody(e), e.Status, false
			}
			c.w.Header().Set("Idempotency-Key", key)
			c.idemKey = key
			return s.serveIdempotent(c, kind, h)
		}
	}
	body, status := s.run(c, kind, h)
	return body, status, s.saveLog(c, status, c.storedDoc(status, body))
}

// run calls the handler and renders its result or error.
func (s *Server) run(c *call, kind string, h handlerFunc) (body []byte, status int) {
	defer func() {
		if p := recover(); p != nil {
			s.cfg.Logger.Error("handler panic", "request_id", c.requestID, "panic", p)
			body, status = errorBody(errInternal), errInternal.Status
		}
	}()
	out, err := h(c)
	if err == nil {
		if unknown := c.form.Unknown(); unknown != "" {
			// Handlers validate before they change anything, so an unknown parameter reaching here means the
			// handler forgot to read it: fail closed.
			err = unknownParam(unknown)
		}
	}
	if err != nil {
		e := toAPIError(err, kind)
		if e.Status >= 500 {
			s.cfg.Logger.Error("handler failed", "request_id", c.requestID, "err", err)
		}
		c.err = e
		return errorBody(e), e.Status
	}
	if c.ref == nil {
		c.ref = refFor(out)
	}
	if v, ok := out.(*sessionView); ok && c.r.Method == http.MethodPost {
		c.personalIn = v.Session.ID // the change it answers recorded the request's personal part
	}
	if r, ok := out.(rendered); ok {
		return r, c.status
	}
	body, mErr := json.Marshal(out)
	if mErr != nil {
		return errorBody(errInternal), errInternal.Status
	}
	return body, c.status
}

// checkUnknown rejects leftover parameters; handlers call it after reading their parameters and before
// changing anything, so a rejected request changes nothing.
func (c *call) checkUnknown() error {
	if unknown := c.form.Unknown(); unknown != "" {
		return unknownParam(unknown)
	}
	return nil
}

func (s *Server) serveIdempotent(c *call, kind string, h handlerFunc) ([]byte, int, bool) {
	fp := fingerprint(c.r.Method, c.r.URL.Path, c.form.Params())
	kept := fingerprint(c.r.Method, c.r.URL.Path, store.ScrubParams(c.form.Params()))
	c.fingerprint = fp
	entry, started, err := s.cfg.Store.BeginIdempotent(c.ctx, c.scope, c.idemKey, fp, kept)
	if err != nil {
		e := toAPIError(err, kind)
		return errorBody(e), e.Status, false
	}
	if !started {
		switch {
		case !entry.Matches(fp, kept):
			return errorBody(errIdempotencyMismatch), errIdempotencyMismatch.Status, false
		case entry.State != store.IdemDone:
			return errorBody(errIdempotencyInUse), errIdempotencyInUse.Status, false
		}
		body, err := c.renderStored(c.ctx, entry.Body)
		if err != nil {
			s.cfg.Logger.Error("idempotent replay failed", "request_id", c.requestID, "err", err)
			return errorBody(errInternal), errInternal.Status, false
		}
		c.w.Header().Set("Idempotent-Replayed", "true")
		if entry.Status >= 500 { // the same key replays the same failure: tell stripe-go not to retry it
			c.w.Header().Set("Stripe-Should-Retry", "false")
		}
		c.objects, c.named = entry.Objects, entry.Named
		return s.replayBody(c, body), entry.Status, s.saveLog(c, entry.Status, entry.Body)
	}
	body, status := s.run(c, kind, h)
	doc := c.storedDoc(status, body)
	// Stripe saves results once the endpoint started executing, 500s included; a rejected request (4xx) is
	// not saved, so it can be corrected and retried with the same key.
	if status >= 400 && status < 500 {
		err = s.cfg.Store.AbandonIdempotent(context.WithoutCancel(c.ctx), c.scope, c.idemKey)
	} else {
		full := fp
		if _, personal := store.SplitParams(c.form.Params()); len(personal) > 0 {
			// A hash over personal values stays only where a redaction reaches it: the session's record
			// (Session below). Otherwise a retry is matched on the kept parameters alone.
			full = ""
		}
		err = s.cfg.Store.FinishIdempotent(context.WithoutCancel(c.ctx), c.scope, c.idemKey,
			&store.IdemEntry{Fingerprint: full, KeptFingerprint: kept, Status: status, Body: doc,
				Objects: store.SessionIDs(dedupe(c.objects)), Named: c.named, Session: c.personalIn, Request: c.requestID})
	}
	if err != nil {
		s.cfg.Logger.Error("idempotency bookkeeping failed", "request_id", c.requestID, "err", err)
	}
	return body, status, s.saveLog(c, status, doc)
}

// saveLog stores the request log with the response's stored document; it reports whether that worked (a
// failure is logged, not returned).
func (s *Server) saveLog(c *call, status int, doc []byte) bool {
	var rejected *Error
	if status >= 400 {
		rejected = c.err
		if rejected == nil {
			rejected = &Error{}
		}
	}
	inRecord := c.personalIn != "" && rejected == nil
	var idem *string
	if c.idemKey != "" {
		placeholder := Redacted // the value, when kept, is in the session's record
		idem = &placeholder
	}
	objects := c.named
	if id := c.r.PathValue("id"); id != "" {
		objects = append(slices.Clip(objects), id)
	}
	l := &store.RequestLog{ID: c.requestID, Created: s.cfg.Store.Now().Unix(), Livemode: c.scope.Livemode,
		Method: c.r.Method, Path: c.r.URL.Path, Status: status, IdempotencyKey: idem,
		Params: storedParams(c.form.Params(), inRecord, rejected), Response: doc, Objects: dedupe(objects)}
	if inRecord {
		l.Session = c.personalIn
	}
	if err := s.cfg.Store.SaveRequestLog(context.WithoutCancel(c.ctx), c.scope, l); err != nil {
		s.cfg.Logger.Error("request log not saved", "request_id", c.requestID, "err", err)
		return false
	}
	return true
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// fingerprint identifies a request's endpoint and parameters, order-independent.
func fingerprint(method, path string, params []store.Param) string {
	pairs := make([]string, len(params))
	for i, p := range params {
		pairs[i] = p.Key + "=" + p.Value
	}
	sort.Strings(pairs)
	h := sha256.New()
	h.Write([]byte(method + " " + path + "\n" + strings.Join(pairs, "\n")))
	return hex.EncodeToString(h.Sum(nil))
}

// readParams returns the raw form: the query string for GET and DELETE, the body for POST.
func readParams(r *http.Request, method string) (string, *Error) {
	if method != http.MethodPost {
		return r.URL.RawQuery, nil
	}
	ct := r.Header.Get("Content-Type")
	if ct != "" && !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return "", invalidParam("", "parameter_invalid", "Request bodies must be application/x-www-form-urlencoded.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return "", errTooLarge
		}
		return "", invalidParam("", "parameter_invalid", "Could not read the request body.")
	}
	return string(body), nil
}

func authSecret(r *http.Request) string {
	if rest, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(rest)
	}
	user, _, _ := r.BasicAuth()
	return user
}

func errorBody(e *Error) []byte {
	body, _ := json.Marshal(map[string]any{"error": e.bounded()})
	return body
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	writeRaw(w, status, body)
}
