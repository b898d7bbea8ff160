package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/identityd/identityd/store"
)

// BenchmarkVerifyPage_Render serves a session's hosted page, the form with everything a session can ask for,
// through the whole handler: the token's lookup, the session's and return_url's reads, the form token and the
// template. It reports the median and the 99th percentile of one render.
//
//	go test -run '^$' -bench VerifyPage_Render -benchmem ./api/
func BenchmarkVerifyPage_Render(b *testing.B) {
	pb := setupPage(b)
	yes := true
	sess, _, err := pb.st.CreateSession(context.Background(), store.Scope{Account: "acct_alpha"}, store.SessionCreate{
		Type: "document", ReturnURL: new("https://shop.example/done?order=7"),
		Options: &store.Options{Document: &store.DocumentOptions{AllowedTypes: []string{"passport", "id_card"},
			RequireIDNumber: &yes, RequireMatchingSelfie: &yes}},
		ProvidedDetails: &store.ProvidedDetails{Email: new("jenny.rosen@example.com"), Phone: new("+15555550123")},
	}, store.Origin{})
	if err != nil {
		b.Fatal(err)
	}
	u, err := url.Parse(*sess.URL)
	if err != nil {
		b.Fatal(err)
	}
	handler := pb.srv.Config.Handler
	cookie := &http.Cookie{Name: "identityd_page", Value: store.RandomString(22)}
	durations := make([]time.Duration, 0, 1<<16)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, u.Path, nil)
		req.AddCookie(cookie)
		rec := httptest.NewRecorder()
		start := time.Now()
		handler.ServeHTTP(rec, req)
		durations = append(durations, time.Since(start))
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		b.SetBytes(int64(rec.Body.Len()))
	}
	slices.Sort(durations)
	ms := func(q float64) float64 {
		return float64(durations[int(q*float64(len(durations)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}
