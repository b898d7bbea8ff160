package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/identityd/identityd/store"
)

// The hosted verification page: what a session's `url` opens. It is served on the public listener without an
// API key; the link's token is its only credential. In test mode it stands in for Stripe's hosted flow and its
// form goes through the test helper's submission (readSubmission, Server.submit); in live mode it explains
// that this server does not verify real people.

// maxPageBody caps a page form post; the form has a few dozen short fields.
const maxPageBody = 64 << 10

// pageCookie holds the browser's half of the form token (a signed double submit): the form carries
// HMAC(secret, link token, cookie value), so a form posted from another site, which cannot send this
// SameSite=Strict cookie, is refused.
const pageCookie = "identityd_page"

// Routes of the page, as they appear in metrics and log lines: the token is never logged.
const (
	routeVerifyPage     = "GET /verify/{token}"
	routeVerifySubmit   = "POST /verify/{token}"
	routeVerifyComplete = "GET /verify/{token}/complete"
	routeVerifyAsset    = "GET /verify-assets/{name}"
	routeVerifyOther    = "/verify/"
)

// linkState is what a link can show.
type linkState int

const (
	linkNone     linkState = iota // not a link's page (an asset)
	linkOpen                      // the form
	linkUnknown                   // never issued, no longer kept, or malformed
	linkLive                      // a live-mode session: nothing to do here
	linkRedacted                  // the session's redaction was requested
	linkCanceled                  // the session was canceled
	linkUsed                      // a submission was made: the link works once
	linkExpired                   // past VerifyLinkLifetime
)

// String names the state (tests and log lines).
func (l linkState) String() string {
	return [...]string{"none", "open", "unknown", "live", "redacted", "canceled", "used", "expired"}[l]
}

// notice is the page shown for a state other than open: its status and its plain words.
type notice struct {
	status  int
	heading string
	body    []string
}

var linkNotices = map[linkState]notice{
	linkUnknown: {http.StatusNotFound, "This verification link is not valid",
		[]string{"Check that you opened the whole link, or ask the site that sent you here for a new one."}},
	linkLive: {http.StatusOK, "Live verification is not offered here",
		[]string{"This session was created with a live-mode key. This server (identityd) only simulates the hosted verification flow for test-mode sessions; it does not verify real people or documents.",
			"Nothing was changed. Use a test-mode key (sk_test_…) to try the flow."}},
	linkRedacted: {http.StatusGone, "This verification was deleted",
		[]string{"The site that sent you here deleted (redacted) this verification and its data. The link no longer works."}},
	linkCanceled: {http.StatusGone, "This verification was canceled",
		[]string{"The site that sent you here canceled this verification. The link no longer works; ask the site for a new one if you still need to verify."}},
	linkUsed: {http.StatusGone, "This verification was already submitted",
		[]string{"A verification link works once, and this one has been used. If the site asks you to try again, it will give you a new link."}},
	linkExpired: {http.StatusGone, "This verification link has expired",
		[]string{"Verification links expire 48 hours after they are made. Ask the site that sent you here for a new one."}},
}

var errPageCSRF = notice{http.StatusForbidden, "This form could not be accepted",
	[]string{"It was not sent from this verification page in this browser, or the browser's cookies were cleared. Nothing was changed: open the link again and send the form once more."}}

// pageKeys caches the page's form-signing secret, read from the store once.
type pageKeys struct {
	mu     sync.Mutex
	secret []byte
}

func (k *pageKeys) get(ctx context.Context, st *store.Store) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.secret == nil {
		secret, err := st.VerifyPageSecret(ctx)
		if err != nil {
			return nil, err
		}
		k.secret = secret
	}
	return k.secret, nil
}

func (s *Server) verifyPageRoutes() {
	s.pageHandle(routeVerifyPage, s.verifyPage)
	s.pageHandle(routeVerifySubmit, s.verifySubmit)
	s.pageHandle(routeVerifyComplete, s.verifyComplete)
	s.pageHandle(routeVerifyAsset, serveAsset)
	s.pageHandle(routeVerifyOther, func(w http.ResponseWriter, _ *http.Request) pageResult {
		return s.renderNotice(w, linkNotices[linkUnknown], linkUnknown)
	})
}

// pageResult is what a page handler tells the edge to log: never the token, never a form value.
type pageResult struct {
	status  int
	state   linkState
	session string
	account string
}

// pageHandle registers a page route with the page's security headers, metrics and one log line.
func (s *Server) pageHandle(pattern string, h func(http.ResponseWriter, *http.Request) pageResult) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		pageHeaders(w.Header())
		res := h(w, r)
		d := time.Since(start)
		s.cfg.Metrics.HTTPRequests.WithLabelValues(pattern, statusText(res.status)).Inc()
		s.cfg.Metrics.HTTPDuration.WithLabelValues(pattern).Observe(d.Seconds())
		s.cfg.Logger.Info("verify page", "route", pattern, "status", res.status, "link", res.state.String(),
			"session", res.session, "account", res.account, "duration_ms", float64(d.Microseconds())/1000)
	})
}

// pageHeaders are set on every page answer, errors included.
func pageHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", pageCSP(""))
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
}

// pageCSP allows only this server's own resources; a form may post here and, when the session has a
// return_url, be redirected to that origin (Chromium checks form-action on the redirect, too).
func pageCSP(returnOrigin string) string {
	csp := "default-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
	if returnOrigin != "" {
		csp += " " + returnOrigin
	}
	return csp
}

// originOf returns scheme://host[:port] of an http(s) URL, or "" when it cannot be a CSP source.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		strings.Trim(u.Host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") != "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// resolveLink finds the session behind a token and decides what its page shows.
func (s *Server) resolveLink(ctx context.Context, token string) (store.VerifyLink, *store.Session, linkState, error) {
	link, err := s.cfg.Store.ResolveVerifyToken(ctx, token)
	if errors.Is(err, store.ErrNotFound) {
		return link, nil, linkUnknown, nil
	}
	if err != nil {
		return link, nil, linkUnknown, err
	}
	sess, err := s.cfg.Store.GetSession(ctx, link.Scope, link.SessionID)
	if errors.Is(err, store.ErrNotFound) { // a create whose transaction failed after the token was written
		return link, nil, linkUnknown, nil
	}
	if err != nil {
		return link, nil, linkUnknown, err
	}
	return link, sess, s.linkState(sess), nil
}

// linkState is the state of an existing session's link. A link is used once the session left requires_input
// through a submission: it is processing or verified, or back in requires_input with a report.
func (s *Server) linkState(sess *store.Session) linkState {
	switch {
	case sess.Livemode:
		return linkLive
	case sess.Redacting():
		return linkRedacted
	case sess.Status == store.StatusCanceled:
		return linkCanceled
	case sess.Status != store.StatusRequiresInput || sess.LastVerificationReport != nil:
		return linkUsed
	case s.cfg.Store.LinkExpired(sess):
		return linkExpired
	}
	return linkOpen
}

func resultOf(link store.VerifyLink, state linkState, status int) pageResult {
	return pageResult{status: status, state: state, session: link.SessionID, account: link.Scope.Account}
}

// verifyPage renders the link: the form when it is open, a plain explanation otherwise.
func (s *Server) verifyPage(w http.ResponseWriter, r *http.Request) pageResult {
	token := r.PathValue("token")
	link, sess, state, err := s.resolveLink(r.Context(), token)
	if err != nil {
		return s.pageError(w, r, err, link)
	}
	if state != linkOpen {
		return resultOf(link, state, s.renderNotice(w, linkNotices[state], state).status)
	}
	return resultOf(link, state, s.renderForm(w, r, token, link, sess, nil, nil))
}

// verifySubmit takes the form: CSRF check, then the test helper's validation and transition, then 303 to the
// session's return_url or to the completion page. Whatever is refused changes nothing.
func (s *Server) verifySubmit(w http.ResponseWriter, r *http.Request) pageResult {
	token := r.PathValue("token")
	ctx := r.Context()
	link, sess, state, err := s.resolveLink(ctx, token)
	if err != nil {
		return s.pageError(w, r, err, link)
	}
	if state != linkOpen {
		n := linkNotices[state]
		if state == linkLive {
			n.status = http.StatusForbidden
		}
		return resultOf(link, state, s.renderNotice(w, n, state).status)
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPageBody))
	if err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return resultOf(link, state, s.renderForm(w, r, token, link, sess, nil,
			&Error{Status: http.StatusBadRequest, Message: "The form could not be read. Please send it again."}))
	}
	f, err := ParseForm(string(raw))
	if err != nil {
		return resultOf(link, state, s.renderForm(w, r, token, link, sess, nil, toAPIError(err, "verification session")))
	}
	ok, err := s.checkFormToken(ctx, r, token, f)
	if err != nil {
		return s.pageError(w, r, err, link)
	}
	if !ok {
		return resultOf(link, state, s.renderNotice(w, errPageCSRF, state).status)
	}
	sub, err := readPageSubmission(f, sess)
	if err != nil {
		return resultOf(link, state, s.renderForm(w, r, token, link, sess, f, toAPIError(err, "verification session")))
	}
	if _, err := s.submit(ctx, link.Scope, link.SessionID, sub, store.Origin{}, ""); err != nil {
		if errors.Is(err, store.ErrConflict) || toAPIError(err, "").Code == "status_transition_invalid" {
			// Someone else submitted, canceled or redacted meanwhile: show what the link is now.
			return s.verifyPage(w, r)
		}
		return s.pageError(w, r, err, link)
	}
	target := "/verify/" + token + "/complete"
	if ru, err := s.cfg.Store.ReturnURL(ctx, link.Scope, link.SessionID); err != nil {
		s.cfg.Logger.Warn("return url not read; showing the completion page", "session", link.SessionID, "err", err)
	} else if ru != nil {
		target = *ru
	}
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
	return resultOf(link, linkUsed, http.StatusSeeOther)
}

// verifyComplete is where a submission without return_url lands: a completion page while the submission is
// the link's last use, the link's page otherwise.
func (s *Server) verifyComplete(w http.ResponseWriter, r *http.Request) pageResult {
	link, sess, state, err := s.resolveLink(r.Context(), r.PathValue("token"))
	if err != nil {
		return s.pageError(w, r, err, link)
	}
	if state != linkUsed {
		return s.verifyPage(w, r)
	}
	// The outcome chosen is the submission's until the verify task runs: the page shows the session as it is.
	done := &doneView{Status: sess.Status}
	if sess.LastError != nil && sess.LastError.Code != nil {
		done.LastError = *sess.LastError.Code
	}
	status := s.renderPage(w, http.StatusOK, &pageView{Title: "Submitted", Testmode: true, Done: done})
	return resultOf(link, state, status)
}

// pageError answers a failure of the store with a plain page; the detail goes to the log, never to the page.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, err error, link store.VerifyLink) pageResult {
	s.cfg.Logger.Error("verify page failed", "route", r.Method+" /verify/…", "session", link.SessionID, "err", err)
	n := notice{http.StatusInternalServerError, "Something went wrong",
		[]string{"The verification could not be loaded. Nothing was changed; please try again in a moment."}}
	if errors.Is(err, store.ErrConflict) {
		n.status = http.StatusServiceUnavailable
	}
	return resultOf(link, linkUnknown, s.renderNotice(w, n, linkUnknown).status)
}

// formToken is the form's CSRF token for one link in one browser: HMAC(secret, token, cookie value).
func formToken(secret []byte, token, cookie string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("identityd verify form\x00" + token + "\x00" + cookie))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// pageCookieValue returns the browser's cookie value, setting a fresh one when it has none.
func pageCookieValue(w http.ResponseWriter, r *http.Request, secure bool) string {
	if c, err := r.Cookie(pageCookie); err == nil && len(c.Value) == 22 {
		return c.Value
	}
	v := store.RandomString(22)
	//nolint:gosec // G124: Secure follows the page's scheme; a plain-HTTP development listener needs the cookie too
	http.SetCookie(w, &http.Cookie{Name: pageCookie, Value: v, Path: "/verify/", HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(store.VerifyLinkLifetime / time.Second)})
	return v
}

// checkFormToken reads the csrf field and checks it against the browser's cookie and the link.
func (s *Server) checkFormToken(ctx context.Context, r *http.Request, token string, f *Form) (bool, error) {
	got, _ := f.Value("csrf")
	c, err := r.Cookie(pageCookie)
	if errors.Is(err, http.ErrNoCookie) || got == "" {
		return false, nil // no cookie or no token: a refused form, not a failure
	}
	if err != nil {
		return false, err
	}
	secret, err := s.page.get(ctx, s.cfg.Store)
	if err != nil {
		return false, err
	}
	return hmac.Equal([]byte(got), []byte(formToken(secret, token, c.Value))), nil
}

func (s *Server) secureCookies(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(s.cfg.Store.PublicURL, "https://")
}
