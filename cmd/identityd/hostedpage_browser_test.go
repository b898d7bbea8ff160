package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// The hosted page in a real browser: Debian's chromium, headless, driven by chromedp. Screenshots of every page
// go to the test's artifact directory; keep them with
//
//	out=$(mktemp -d) && go test -run TestHostedPage_Browser -artifacts -outputdir "$out" ./cmd/identityd/

// chromiumPath finds the browser. Without one the tests skip, except in CI (CI=true), where .ci/run installs it
// and a missing browser is a failure.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed: .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium); the hosted page's browser tests need it")
	return ""
}

// newBrowser starts one headless Chromium for t and stops it, and every goroutine chromedp started, when t ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(360, 800))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser process to exit
	})
	require.NoError(t, chromedp.Do(browser))
	return browser
}

// tab is one browser tab with its own cookies, a 360 px wide viewport, and a record of what it loaded.
type tab struct {
	ctx context.Context
	t   *testing.T
	mu  sync.Mutex
	// requests are the URLs the tab asked for; documents the status of each page it loaded.
	requests  []requested
	documents map[string]int
}

type requested struct {
	url, from string // from: the page that asked
	document  bool
}

func newTab(t *testing.T, browser context.Context) *tab {
	t.Helper()
	tb := &tab{t: t, documents: map[string]int{}}
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext(), chromedp.WithListener(tb.listen))
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel() })
	tb.ctx = ctx
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(360, 800)))
	return tb
}

// listen runs in the tab's event loop: it only records.
func (tb *tab) listen(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		tb.requests = append(tb.requests, requested{url: e.Request.URL, from: e.DocumentURL,
			document: e.Type == network.ResourceTypeDocument})
	case *network.EventResponseReceived:
		if e.Type == network.ResourceTypeDocument {
			tb.documents[e.Response.URL] = int(e.Response.Status)
		}
	}
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	require.NoError(tb.t, chromedp.Do(tb.ctx, actions...))
}

// open loads url and returns the status it answered with.
func (tb *tab) open(u string) int {
	tb.t.Helper()
	tb.do(chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS("h1")))
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.documents[u]
}

func (tb *tab) text() string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Text(chromedp.CSS("body")))
	require.NoError(tb.t, err)
	return s
}

func (tb *tab) location() string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Location())
	require.NoError(tb.t, err)
	return s
}

// shot saves a screenshot of the whole page as <name>.png in the test's artifact directory.
func (tb *tab) shot(name string) { tb.save(name, chromedp.FullScreenshot(100)) }

// shotViewport saves what the 360×800 viewport shows now.
func (tb *tab) shotViewport(name string) { tb.save(name, chromedp.CaptureScreenshot()) }

func (tb *tab) save(name string, capture chromedp.Action[[]byte]) {
	tb.t.Helper()
	png, err := chromedp.Run(tb.ctx, capture)
	require.NoError(tb.t, err)
	require.NoError(tb.t, os.WriteFile(filepath.Join(tb.t.ArtifactDir(), name+".png"), png, 0o644))
}

// requireOnlyHosts fails when identityd's pages asked another host for anything but a top-level navigation
// to one of navigations (the merchant's return_url). What the merchant's own page loads is its business.
func (tb *tab) requireOnlyHosts(host string, navigations ...string) {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	require.NotEmpty(tb.t, tb.requests)
	for _, r := range tb.requests {
		u, err := url.Parse(r.url)
		require.NoError(tb.t, err)
		from, err := url.Parse(r.from)
		require.NoError(tb.t, err)
		if u.Host == host || (!r.document && from.Host != host) {
			continue
		}
		allowed := false
		for _, n := range navigations {
			allowed = allowed || (r.document && strings.HasPrefix(r.url, n))
		}
		require.True(tb.t, allowed, "a request to another host: %s", r.url)
	}
}

// merchant is the integration's own site: the page the user comes back to.
func newMerchant(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>Shop</title><h1 id="shop">Back at the shop</h1>`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestHostedPage_Browser(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	ctx := context.Background()

	t.Run("VerifyLandsOnReturnURLAndSendsTheSignedWebhook", func(t *testing.T) {
		t.Parallel()
		d := startDaemon(t, storetest.New(t), "serve", "--webhook-backoff", "200ms,200ms,200ms")
		sc := d.client(testKeyA)
		rcv := whNewReceiver(t, nil)
		rcv.setSecret(whCreateEndpoint(t, sc, rcv.URL, "identity.verification_session.verified").Secret)
		shop := newMerchant(t)
		returnURL := shop.URL + "/done?order=7"
		vs, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
			Type: stripe.String("document"), ReturnURL: stripe.String(returnURL),
			Options: &stripe.IdentityVerificationSessionCreateOptionsParams{Document: &stripe.IdentityVerificationSessionCreateOptionsDocumentParams{
				RequireMatchingSelfie: new(true), RequireIDNumber: new(true)}},
			ProvidedDetails: &stripe.IdentityVerificationSessionCreateProvidedDetailsParams{Email: stripe.String("jenny.rosen@example.com")},
		})
		require.NoError(t, err)
		require.NotContains(t, vs.URL, strings.TrimPrefix(vs.ID, "vs_"))

		tb := newTab(t, browser)
		require.Equal(t, http.StatusOK, tb.open(vs.URL))
		page := tb.text()
		require.Contains(t, page, "TEST MODE")
		require.Contains(t, page, "jenny.rosen@example.com")
		require.Contains(t, page, "Matching selfie")
		width, err := chromedp.Run(tb.ctx, chromedp.Evaluate[int]("document.documentElement.scrollWidth"))
		require.NoError(t, err)
		require.LessOrEqual(t, width, 360, "readable at 360 px: nothing scrolls sideways")
		tb.shotViewport("form-top")
		tb.shot("form")

		tb.do(chromedp.Click(chromedp.ID("consent"), chromedp.NodeVisible),
			chromedp.Clear(chromedp.ID("f-verified_outputs-first_name")),
			chromedp.SendKeys(chromedp.ID("f-verified_outputs-first_name"), "Ada"))
		_, err = chromedp.Run(tb.ctx, chromedp.Evaluate[bool](`(document.getElementById("result-h").scrollIntoView(), true)`))
		require.NoError(t, err)
		tb.shotViewport("form-result")
		tb.do(chromedp.Click(chromedp.CSS(`button[value="verified"]`), chromedp.NodeVisible),
			chromedp.WaitVisible(chromedp.ID("shop")))
		require.Equal(t, returnURL, tb.location())
		tb.requireOnlyHosts(d.main.APIAddr, shop.URL)

		eventually(t, whWait, "the signed .verified webhook", func() bool {
			return len(rcv.acked()["identity.verification_session.verified"]) == 1
		})
		ev := rcv.acked()["identity.verification_session.verified"][0].event
		require.Equal(t, vs.ID, ev.Data.Object["id"])
		got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, vs.ID, &stripe.IdentityVerificationSessionRetrieveParams{
			Expand: []*string{stripe.String("verified_outputs")}})
		require.NoError(t, err)
		require.Equal(t, stripe.IdentityVerificationSessionStatusVerified, got.Status)
		require.Equal(t, "Ada", got.VerifiedOutputs.FirstName, "the value typed in the page")
		require.Equal(t, "Rosen", got.VerifiedOutputs.LastName, "the prefilled test value")

		again := newTab(t, browser)
		require.Equal(t, http.StatusGone, again.open(vs.URL))
		require.Contains(t, again.text(), "already submitted")
		again.shot("used")
	})

	t.Run("FailuresEndInRequiresInputWithTheirCode", func(t *testing.T) {
		t.Parallel()
		d := startDaemon(t, storetest.New(t), "serve")
		sc := d.client(testKeyA)
		for _, c := range []struct {
			code    string
			consent bool
		}{{"selfie_face_mismatch", true}, {"consent_declined", false}} {
			vs, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
				Type: stripe.String("document"),
				Options: &stripe.IdentityVerificationSessionCreateOptionsParams{Document: &stripe.IdentityVerificationSessionCreateOptionsDocumentParams{
					RequireMatchingSelfie: new(true)}},
			})
			require.NoError(t, err)
			tb := newTab(t, browser)
			require.Equal(t, http.StatusOK, tb.open(vs.URL))
			if c.consent {
				tb.do(chromedp.Click(chromedp.ID("consent"), chromedp.NodeVisible))
			}
			tb.do(chromedp.Click(chromedp.CSS(`button[value="`+c.code+`"]`), chromedp.NodeVisible))
			// The form page has an h1 too: wait for the navigation to the completion page itself.
			eventually(t, whWait, "the completion page", func() bool { return strings.HasSuffix(tb.location(), "/complete") })
			tb.do(chromedp.WaitVisible(chromedp.CSS("h1")))
			require.Contains(t, tb.text(), "your information was submitted")
			if c.code == "selfie_face_mismatch" {
				tb.shot("complete")
			}
			tb.requireOnlyHosts(d.main.APIAddr)
			eventually(t, whWait, c.code, func() bool {
				got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, vs.ID, nil)
				require.NoError(t, err)
				return got.Status == stripe.IdentityVerificationSessionStatusRequiresInput && got.LastError != nil &&
					string(got.LastError.Code) == c.code
			})
		}
	})

	t.Run("EveryControlTakesKeyboardFocus", func(t *testing.T) {
		t.Parallel()
		d := startDaemon(t, storetest.New(t), "serve")
		vs, err := d.client(testKeyA).V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
			Type: stripe.String("document"),
			Options: &stripe.IdentityVerificationSessionCreateOptionsParams{Document: &stripe.IdentityVerificationSessionCreateOptionsDocumentParams{
				RequireMatchingSelfie: new(true), RequireIDNumber: new(true)}},
		})
		require.NoError(t, err)
		tb := newTab(t, browser)
		require.Equal(t, http.StatusOK, tb.open(vs.URL))
		controls, err := chromedp.Run(tb.ctx, chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll('input:not([type=hidden]), select, button')).map(e => e.id || e.value)`))
		require.NoError(t, err)
		require.Greater(t, len(controls), 20)
		focused := map[string]bool{}
		for range controls {
			tb.do(chromedp.KeyEvent(kb.Tab))
			el, err := chromedp.Run(tb.ctx, chromedp.Evaluate[[]string](
				`[document.activeElement.id || document.activeElement.value, getComputedStyle(document.activeElement).outlineStyle]`))
			require.NoError(t, err)
			require.Equal(t, "solid", el[1], "%s shows where the focus is", el[0])
			focused[el[0]] = true
		}
		for _, c := range controls {
			require.True(t, focused[c], "%s is reached with the Tab key", c)
		}
	})

	t.Run("ClosedLinksSayWhy", func(t *testing.T) {
		t.Parallel()
		clock := storetest.NewFakeClock(time.Now())
		d := startDaemonAt(t, storetest.New(t), clock, "serve")
		sc, live := d.client(testKeyA), d.client(liveKeyA)
		create := func(c *stripe.Client) *stripe.IdentityVerificationSession {
			vs, err := c.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
				Type: stripe.String("document")})
			require.NoError(t, err)
			return vs
		}
		canceled, redacted, expired, liveVS := create(sc), create(sc), create(sc), create(live)
		_, err := sc.V1IdentityVerificationSessions.Cancel(ctx, canceled.ID, nil)
		require.NoError(t, err)
		_, err = sc.V1IdentityVerificationSessions.Redact(ctx, redacted.ID, nil)
		require.NoError(t, err)
		clock.Advance(store.VerifyLinkLifetime)
		for _, c := range []struct {
			name, url string
			status    int
			want      string
		}{
			{"canceled", canceled.URL, http.StatusGone, "was canceled"},
			{"redacted", redacted.URL, http.StatusGone, "was deleted"},
			{"expired", expired.URL, http.StatusGone, "has expired"},
			{"live", liveVS.URL, http.StatusOK, "Live verification is not offered here"},
			{"unknown", "http://" + d.main.APIAddr + "/verify/" + store.RandomString(store.VerifyTokenLen), http.StatusNotFound, "not valid"},
		} {
			tb := newTab(t, browser)
			require.Equal(t, c.status, tb.open(c.url), c.name)
			require.Contains(t, tb.text(), c.want, c.name)
			tb.shot(c.name)
			tb.requireOnlyHosts(d.main.APIAddr)
		}
	})
}
