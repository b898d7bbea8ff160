package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/api"
	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// lockedBuffer is a log sink several request goroutines write to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pageBundle is setupAPI's server with its log captured, and a browser-like client: it keeps cookies and does
// not follow redirects, so a test sees the 303 itself.
type pageBundle struct {
	*apiBundle
	logs    *lockedBuffer
	browser *http.Client
}

func setupPage(t testing.TB) *pageBundle {
	t.Helper()
	r := storetest.New(t)
	clock := storetest.NewFakeClock(time.Unix(1_700_000_000, 0))
	st := r.Store(clock)
	var keys []api.APIKey
	for _, spec := range []string{keyA + "=acct_alpha", liveKeyA + "=acct_alpha"} {
		k, err := api.ParseAPIKey(spec)
		require.NoError(t, err)
		keys = append(keys, k)
	}
	ring, err := api.NewKeyring(keys)
	require.NoError(t, err)
	logs := &lockedBuffer{}
	q := &fakeQueue{}
	metrics := events.NewMetrics(nil)
	srv := httptest.NewServer(api.NewServer(api.Config{Store: st, Keys: ring, Queue: q,
		Emitter: &events.Emitter{Metrics: metrics}, Metrics: metrics,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}))
	t.Cleanup(srv.Close)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &pageBundle{apiBundle: &apiBundle{srv: srv, st: st, redis: r, queue: q, clock: clock}, logs: logs, browser: browser}
}

// newSession creates a session with key and form and returns its id and the path of its link.
func (b *pageBundle) newSession(t *testing.T, key, form string) (id, link string) {
	t.Helper()
	res := b.do(t, request{method: http.MethodPost, path: "/v1/identity/verification_sessions", key: key, body: form})
	require.Equal(t, http.StatusOK, res.status, res.raw)
	u, err := url.Parse(res.str("url"))
	require.NoError(t, err)
	require.Regexp(t, `^/verify/[0-9A-Za-z]{32}$`, u.Path)
	require.NotContains(t, u.Path, strings.TrimPrefix(res.str("id"), "vs_"))
	return res.str("id"), u.Path
}

type pageResponse struct {
	status int
	header http.Header
	body   string
}

func (b *pageBundle) open(t *testing.T, path string) *pageResponse {
	t.Helper()
	res, err := b.browser.Get(b.srv.URL + path)
	require.NoError(t, err)
	return readPage(t, res)
}

func (b *pageBundle) send(t *testing.T, path string, form url.Values) *pageResponse {
	t.Helper()
	res, err := b.browser.PostForm(b.srv.URL+path, form)
	require.NoError(t, err)
	return readPage(t, res)
}

func readPage(t *testing.T, res *http.Response) *pageResponse {
	t.Helper()
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return &pageResponse{status: res.StatusCode, header: res.Header, body: string(body)}
}

// requirePageHeaders checks what every page answer carries, and that it is HTML, never JSON.
func requirePageHeaders(t *testing.T, p *pageResponse) {
	t.Helper()
	require.Equal(t, "text/html; charset=utf-8", p.header.Get("Content-Type"))
	require.Equal(t, "no-store", p.header.Get("Cache-Control"))
	csp := p.header.Get("Content-Security-Policy")
	require.Contains(t, csp, "default-src 'self'")
	require.Contains(t, csp, "frame-ancestors 'none'")
	require.Equal(t, "no-referrer", p.header.Get("Referrer-Policy"))
	require.True(t, strings.HasPrefix(p.body, "<!doctype html>"), p.body)
}

var (
	inputTag  = regexp.MustCompile(`<input [^>]*>`)
	selectTag = regexp.MustCompile(`(?s)<select [^>]*>.*?</select>`)
	attr      = regexp.MustCompile(`([a-z-]+)="([^"]*)"`)
)

func attrs(tag string) map[string]string {
	out := map[string]string{}
	for _, m := range attr.FindAllStringSubmatch(tag, -1) {
		out[m[1]] = html.UnescapeString(m[2])
	}
	return out
}

// formValues is what a browser would send for the rendered form as it stands (text fields, selects, the
// hidden token), without the consent box and the buttons.
func formValues(t *testing.T, page string) url.Values {
	t.Helper()
	v := url.Values{}
	for _, tag := range inputTag.FindAllString(page, -1) {
		a := attrs(tag)
		if a["type"] != "checkbox" {
			v.Set(a["name"], a["value"])
		}
	}
	for _, sel := range selectTag.FindAllString(page, -1) {
		a := attrs(sel[:strings.IndexByte(sel, '>')+1])
		m := regexp.MustCompile(`<option value="([^"]*)" selected>`).FindStringSubmatch(sel)
		require.NotNil(t, m, sel)
		v.Set(a["name"], m[1])
	}
	require.NotEmpty(t, v.Get("csrf"))
	return v
}

// submitPage opens link, takes the form as rendered, applies edit and presses the button for result.
func (b *pageBundle) submitPage(t *testing.T, link, result string, edit func(url.Values)) *pageResponse {
	t.Helper()
	page := b.open(t, link)
	require.Equal(t, http.StatusOK, page.status, page.body)
	v := formValues(t, page.body)
	v.Set("consent", "yes")
	v.Set("result", result)
	if edit != nil {
		edit(v)
	}
	return b.send(t, link, v)
}

func (b *pageBundle) session(t *testing.T, id string) map[string]any {
	t.Helper()
	res := b.get(t, "/v1/identity/verification_sessions/"+id+"?expand[]=verified_outputs&expand[]=verified_outputs.dob&expand[]=verified_outputs.id_number&expand[]=last_verification_report")
	require.Equal(t, http.StatusOK, res.status, res.raw)
	return res.body
}

// finish runs what the verify task runs, at once.
func (b *pageBundle) finish(t *testing.T, id string) {
	t.Helper()
	_, _, _, err := b.st.CompleteVerification(context.Background(), store.Scope{Account: "acct_alpha"}, id, "")
	require.NoError(t, err)
}

const everythingAsked = "type=document&options[document][require_matching_selfie]=true&options[document][require_id_number]=true" +
	"&options[document][allowed_types][0]=passport&options[document][allowed_types][1]=id_card" +
	"&provided_details[email]=jenny.rosen%40example.com&provided_details[phone]=%2B15555550123"

func TestVerifyPage_Form(t *testing.T) {
	t.Parallel()

	t.Run("ShowsWhatTheSessionAsksFor", func(t *testing.T) {
		t.Parallel()
		b := setupPage(t)
		_, link := b.newSession(t, keyA, everythingAsked)
		p := b.open(t, link)
		require.Equal(t, http.StatusOK, p.status)
		requirePageHeaders(t, p)
		require.Contains(t, p.body, "TEST MODE")
		text := html.UnescapeString(p.body)
		for _, want := range []string{"Identity document (document)", "Passport, ID card", "jenny.rosen@example.com",
			`<dd>+15555550123</dd>`, `value="+15555550123"`, `value="consent_declined"`, `value="document_expired"`, `value="document_unverified_other"`,
			`value="selfie_face_mismatch"`, `value="id_number_mismatch"`, `name="verified_outputs[id_number]"`} {
			require.Contains(t, text, want)
		}
		require.NotContains(t, p.body, `<option value="driving_license"`, "only the allowed document types")

		_, plain := b.newSession(t, keyA, "type=document")
		p = b.open(t, plain)
		require.NotContains(t, p.body, `value="selfie_face_mismatch"`, "no selfie asked")
		require.NotContains(t, p.body, `value="id_number_mismatch"`, "no id number asked")

		_, idn := b.newSession(t, keyA, "type=id_number")
		p = b.open(t, idn)
		require.Contains(t, p.body, "ID number (id_number)")
		require.Contains(t, p.body, `value="id_number_mismatch"`)
		require.NotContains(t, p.body, `value="document_expired"`)
		require.NotContains(t, p.body, `name="document[number]"`)
	})

	t.Run("EveryControlIsLabelledAndNothingComesFromElsewhere", func(t *testing.T) {
		t.Parallel()
		b := setupPage(t)
		_, link := b.newSession(t, keyA, everythingAsked+"&return_url=https%3A%2F%2Fshop.example%2Fdone")
		p := b.open(t, link)
		require.Contains(t, p.header.Get("Content-Security-Policy"), "form-action 'self' https://shop.example",
			"the form's redirect to return_url is allowed, and only that")
		controls := 0
		for _, tag := range append(inputTag.FindAllString(p.body, -1), selectTag.FindAllString(p.body, -1)...) {
			a := attrs(tag[:strings.IndexByte(tag, '>')+1])
			if a["type"] == "hidden" {
				continue
			}
			controls++
			require.NotEmpty(t, a["id"], tag)
			require.Contains(t, p.body, `<label for="`+a["id"]+`">`, "no label for %s", tag)
		}
		require.Greater(t, controls, 15)
		require.NotContains(t, p.body, "<script")
		require.NotContains(t, p.body, " style=")
		require.NotContains(t, p.body, "tabindex=\"1", "keyboard order is the document's")
		for _, m := range regexp.MustCompile(`(?:src|href|action)="([^"]*)"`).FindAllStringSubmatch(p.body, -1) {
			require.Regexp(t, `^(/[^/]|#)`, m[1], "a reference to another host")
		}
	})

	t.Run("PageWeightIsUnder30KB", func(t *testing.T) {
		t.Parallel()
		b := setupPage(t)
		_, link := b.newSession(t, keyA, everythingAsked)
		p := b.open(t, link)
		weight := len(p.body)
		for _, m := range regexp.MustCompile(`href="(/verify-assets/[^"]+)"`).FindAllStringSubmatch(p.body, -1) {
			asset := b.open(t, m[1])
			require.Equal(t, http.StatusOK, asset.status, m[1])
			require.Contains(t, asset.header.Get("Cache-Control"), "immutable")
			weight += len(asset.body)
		}
		t.Logf("page weight: %d bytes (HTML %d)", weight, len(p.body))
		require.LessOrEqual(t, weight, 30*1024)
	})
}

func TestVerifyPage_Submit(t *testing.T) {
	t.Parallel()

	t.Run("VerifyRedirectsToReturnURLAndUsesTheLink", func(t *testing.T) {
		t.Parallel()
		b := setupPage(t)
		id, link := b.newSession(t, keyA, everythingAsked+"&return_url=https%3A%2F%2Fshop.example%2Fdone%3Forder%3D7")
		res := b.submitPage(t, link, "verified", func(v url.Values) { v.Set("verified_outputs[first_name]", "Ada") })
		require.Equal(t, http.StatusSeeOther, res.status, res.body)
		require.Equal(t, "https://shop.example/done?order=7", res.header.Get("Location"))
		require.Equal(t, "processing", b.session(t, id)["status"])
		verify, _ := b.queue.calls()
		require.Len(t, verify, 1)
		require.True(t, strings.HasPrefix(verify[0], id+"|vsub_"))
		evs := b.get(t, "/v1/events?type=identity.verification_session.processing")
		require.Len(t, evs.body["data"], 1)

		b.finish(t, id)
		sess := b.session(t, id)
		require.Equal(t, "verified", sess["status"])
		vo := sess["verified_outputs"].(map[string]any)
		require.Equal(t, "Ada", vo["first_name"], "the edited value")
		require.Equal(t, "Rosen", vo["last_name"], "the prefilled value")
		require.Equal(t, "000000000", vo["id_number"])

		again := b.open(t, link)
		require.Equal(t, http.StatusGone, again.status)
		requirePageHeaders(t, again)
		require.Contains(t, again.body, "already submitted")
	})

	t.Run("WithoutReturnURLEndsOnTheCompletionPage", func(t *testing.T) {
		t.Parallel()
		b := setupPage(t)
		_, link := b.newSession(t, keyA, "type=id_number")
		res := b.submitPage(t, link, "verified", nil)
		require.Equal(t, http.StatusSeeOther, res.status, res.body)
		require.Equal(t, link+"/complete", res.header.Get("Location"))
		done := b.open(t, link+"/complete")
		require.Equal(t, http.StatusOK, done.status)
		requirePageHeaders(t, done)
		require.Contains(t, done.body, "your information was submitted")
		require.Contains(t, done.body, "processing")
	})

	t.Run("FailuresEndInRequiresInputWithTheirCode", func(t *testing.T) {
		t.Parallel()
		b := setupPage(t)
		for _, c := range []struct{ create, code string }{
			{everythingAsked, "consent_declined"}, {everythingAsked, "document_expired"},
			{everythingAsked, "document_unverified_other"}, {everythingAsked, "selfie_face_mismatch"},
			{everythingAsked, "id_number_mismatch"}, {"type=id_number", "id_number_mismatch"},
		} {
			id, link := b.newSession(t, keyA, c.create)
			edit := func(url.Values) {}
			if c.code == "consent_declined" {
				edit = func(v url.Values) { v.Del("consent") }
			}
			res := b.submitPage(t, link, c.code, edit)
			require.Equal(t, http.StatusSeeOther, res.status, "%s: %s", c.code, res.body)
			b.finish(t, id)
			sess := b.session(t, id)
			require.Equal(t, "requires_input", sess["status"], c.code)
			lastErr := sess["last_error"].(map[string]any)
			require.Equal(t, c.code, lastErr["code"])
			require.NotEmpty(t, lastErr["reason"])
			report := sess["last_verification_report"].(map[string]any)
			check := "document"
			if strings.HasPrefix(c.create, "type=id_number") {
				check = "id_number"
			}
			require.Equal(t, "unverified", report[check].(map[string]any)["status"], c.code)
			require.Equal(t, http.StatusGone, b.open(t, link).status, "a failed submission used the link too")
		}
	})

	t.Run("RejectedFormsChangeNothing", func(t *testing.T) {
		t.Parallel()
		b := setupPage(t)
		id, link := b.newSession(t, keyA, "type=document")
		_, other := b.newSession(t, keyA, "type=document")
		b.open(t, other)
		otherToken := formValues(t, b.open(t, other).body).Get("csrf")
		before := b.snapshot(t)
		for _, c := range []struct {
			name   string
			status int
			edit   func(url.Values)
			want   string
		}{
			{"NoFormToken", http.StatusForbidden, func(v url.Values) { v.Del("csrf") }, "could not be accepted"},
			{"WrongFormToken", http.StatusForbidden, func(v url.Values) { v.Set("csrf", corrupt(v.Get("csrf"))) }, "could not be accepted"},
			{"AnotherLinksFormToken", http.StatusForbidden, func(v url.Values) { v.Set("csrf", otherToken) }, "could not be accepted"},
			{"NoConsent", http.StatusBadRequest, func(v url.Values) { v.Del("consent") }, "Tick the consent box"},
			{"BadEmail", http.StatusBadRequest, func(v url.Values) { v.Set("verified_outputs[email]", "not-an-email") }, "Invalid email address"},
			{"DayOutOfRange", http.StatusBadRequest, func(v url.Values) { v.Set("verified_outputs[dob][day]", "32") }, `aria-invalid="true"`},
			{"FailureNotOffered", http.StatusBadRequest, func(v url.Values) { v.Set("result", "selfie_face_mismatch") }, "Choose Verify"},
			{"OutcomeSmuggledIn", http.StatusBadRequest, func(v url.Values) { v.Set("outcome", "requires_input") }, "Choose Verify"},
			{"UnknownField", http.StatusBadRequest, func(v url.Values) { v.Set("metadata[x]", "y") }, "unknown parameter"},
		} {
			res := b.submitPage(t, link, "verified", c.edit)
			require.Equal(t, c.status, res.status, "%s: %s", c.name, res.body)
			requirePageHeaders(t, res)
			require.Contains(t, res.body, c.want, c.name)
		}
		requireUnchanged(t, before, b.snapshot(t), "rejected page posts")
		require.Equal(t, "requires_input", b.session(t, id)["status"])
		verify, _ := b.queue.calls()
		require.Empty(t, verify)

		t.Run("NoCookie", func(t *testing.T) {
			v := formValues(t, b.open(t, link).body)
			v.Set("consent", "yes")
			v.Set("result", "verified")
			res, err := http.PostForm(b.srv.URL+link, v) // another browser: the form's token without its cookie
			require.NoError(t, err)
			require.Equal(t, http.StatusForbidden, readPage(t, res).status)
			requireUnchanged(t, before, b.snapshot(t), "a post without the page's cookie")
		})
	})

	t.Run("ThePageSubmitsWhatTheTestHelperSubmits", func(t *testing.T) {
		t.Parallel()
		b := setupPage(t)
		for _, result := range []string{"verified", "document_expired"} {
			viaPage, link := b.newSession(t, keyA, everythingAsked)
			viaHelper, _ := b.newSession(t, keyA, everythingAsked)
			page := b.open(t, link)
			form := formValues(t, page.body)
			res := b.submitPage(t, link, result, nil)
			require.Equal(t, http.StatusSeeOther, res.status, res.body)

			form.Del("csrf")
			for k, vals := range form { // the page leaves empty fields out
				if vals[0] == "" {
					form.Del(k)
				}
			}
			if result == "verified" {
				form.Set("outcome", "verified")
			} else {
				form.Set("outcome", "requires_input")
				form.Set("last_error[code]", result)
				form.Set("last_error[reason]", "The provided identity document has expired.")
			}
			helper := b.post(t, "/v1/test_helpers/identity/verification_sessions/"+viaHelper+"/submit", form.Encode())
			require.Equal(t, http.StatusOK, helper.status, helper.raw)
			b.finish(t, viaPage)
			b.finish(t, viaHelper)
			require.Equal(t, sessionShape(t, b.session(t, viaHelper)), sessionShape(t, b.session(t, viaPage)), result)
		}
	})
}

// corrupt changes the first character of s.
func corrupt(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

// sessionShape drops what differs between two sessions by construction (ids, times, links, random file ids).
func sessionShape(t *testing.T, sess map[string]any) string {
	t.Helper()
	report := sess["last_verification_report"].(map[string]any)
	for _, k := range []string{"id", "created", "verification_session"} {
		delete(report, k)
	}
	delete(report["selfie"].(map[string]any), "selfie")
	for _, k := range []string{"id", "created", "url", "client_secret"} {
		delete(sess, k)
	}
	out, err := json.Marshal(sess)
	require.NoError(t, err)
	return string(out)
}

func TestVerifyPage_ClosedLinks(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	type link struct{ id, path string }
	newLink := func(key string) link {
		id, path := b.newSession(t, key, "type=document&return_url=https%3A%2F%2Fshop.example%2Fdone")
		return link{id, path}
	}
	canceled, redacted, expired, live := newLink(keyA), newLink(keyA), newLink(keyA), newLink(liveKeyA)
	require.Equal(t, http.StatusOK, b.post(t, "/v1/identity/verification_sessions/"+canceled.id+"/cancel", "").status)
	require.Equal(t, http.StatusOK, b.post(t, "/v1/identity/verification_sessions/"+redacted.id+"/redact", "").status)
	open := b.open(t, expired.path) // a form rendered before the link expired
	require.Equal(t, http.StatusOK, open.status)
	staleForm := formValues(t, open.body)
	b.clock.Advance(store.VerifyLinkLifetime)
	fresh := newLink(keyA) // made after the clock moved: open

	before := b.snapshot(t)
	for _, c := range []struct {
		name, path string
		status     int
		want       string
	}{
		{"Canceled", canceled.path, http.StatusGone, "was canceled"},
		{"Redacted", redacted.path, http.StatusGone, "was deleted"},
		{"Expired", expired.path, http.StatusGone, "has expired"},
		{"Live", live.path, http.StatusOK, "Live verification is not offered here"},
		{"Unknown", "/verify/" + store.RandomString(store.VerifyTokenLen), http.StatusNotFound, "not valid"},
		{"Malformed", "/verify/vs_" + strings.TrimPrefix(canceled.id, "vs_"), http.StatusNotFound, "not valid"},
		{"Elsewhere", canceled.path + "/extra/parts", http.StatusNotFound, "not valid"},
	} {
		p := b.open(t, c.path)
		require.Equal(t, c.status, p.status, "%s: %s", c.name, p.body)
		requirePageHeaders(t, p)
		require.Contains(t, p.body, c.want, c.name)
		require.NotContains(t, p.body, "<form", c.name)
		if c.status == http.StatusGone {
			require.Contains(t, p.body, "TEST MODE", c.name)
		} else {
			require.NotContains(t, p.body, "TEST MODE", "%s: the mode is not a test one, or not known", c.name)
		}

		form := url.Values{"consent": {"yes"}, "result": {"verified"}, "csrf": {staleForm.Get("csrf")}}
		res := b.send(t, c.path, form)
		if c.name == "Live" {
			require.Equal(t, http.StatusForbidden, res.status, "a live link's post")
		} else if c.name != "Elsewhere" {
			require.Equal(t, c.status, res.status, "%s post", c.name)
		}
		require.Contains(t, res.body, c.want, c.name)
	}
	requireUnchanged(t, before, b.snapshot(t), "posts to closed links")
	require.Equal(t, http.StatusOK, b.open(t, fresh.path).status, "a link made later is open")
}

func TestVerifyPage_LogsHoldNoTokenNorFormValues(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	_, link := b.newSession(t, keyA, everythingAsked+"&return_url=https%3A%2F%2Fshop.example%2Fcanary-return")
	b.open(t, link+"/complete")
	b.submitPage(t, link, "verified", func(v url.Values) { v.Set("verified_outputs[email]", "bad") })
	res := b.submitPage(t, link, "verified", func(v url.Values) { v.Set("verified_outputs[last_name]", "Canarysurname") })
	require.Equal(t, http.StatusSeeOther, res.status)
	b.open(t, link)
	logs := b.logs.String()
	require.Contains(t, logs, `route="POST /verify/{token}"`)
	token := strings.TrimPrefix(link, "/verify/")
	for _, secret := range []string{token, "Canarysurname", "Rosen", "canary-return", "jenny.rosen"} {
		require.NotContains(t, logs, secret)
	}
}
