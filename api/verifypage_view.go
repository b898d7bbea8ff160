package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/identityd/identityd/store"
)

//go:embed templates/verify.html templates/verify.css templates/icon.svg
var pageFiles embed.FS

var pageTemplate = template.Must(template.ParseFS(pageFiles, "templates/verify.html"))

// pageAsset is an embedded file served under a name that carries its content hash, so it can be cached for
// good and a new build never meets a stale copy.
type pageAsset struct {
	contentType string
	body        []byte
}

var pageAssets = map[string]pageAsset{}
var pageCSS, pageIcon = loadAsset("templates/verify.css", "verify", ".css", "text/css; charset=utf-8"),
	loadAsset("templates/icon.svg", "icon", ".svg", "image/svg+xml")

func loadAsset(file, name, ext, contentType string) string {
	body, err := pageFiles.ReadFile(file)
	if err != nil {
		panic(err) // embedded at build time
	}
	sum := sha256.Sum256(body)
	base := name + "." + hex.EncodeToString(sum[:6]) + ext
	pageAssets[base] = pageAsset{contentType: contentType, body: body}
	return "/verify-assets/" + base
}

func serveAsset(w http.ResponseWriter, r *http.Request) pageResult {
	a, ok := pageAssets[r.PathValue("name")]
	if !ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		return pageResult{status: http.StatusNotFound}
	}
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.body)
	return pageResult{status: http.StatusOK}
}

// pageView is everything the template shows; exactly one of Notice, Form and Done is set.
type pageView struct {
	Title     string
	CSS, Icon string
	Testmode  bool
	Notice    *noticeView
	Form      *formView
	Done      *doneView
}

type noticeView struct {
	Heading string
	Body    []string
}

type doneView struct{ Status, LastError string }

type formView struct {
	CSRF       string
	Error      string
	ErrorField string
	Asks       []fact
	Expires    string
	Selfie     bool
	IDNumber   bool
	Consent    bool
	Groups     []fieldGroup
	Failures   []failureView
}

type fact struct{ Name, Value string }

type fieldGroup struct {
	Legend string
	Inline bool
	Fields []fieldView
}

type fieldView struct {
	ID, Name, Label, Type, Value, InputMode, Size string
	Options                                       []option
	Invalid                                       bool
}

type option struct{ Value, Label string }

type failureView struct {
	Code, Label string
	NoConsent   bool
}

// renderPage executes the template into a buffer first, so a failure never sends half a page.
func (s *Server) renderPage(w http.ResponseWriter, status int, v *pageView) int {
	v.CSS, v.Icon = pageCSS, pageIcon
	var buf bytes.Buffer
	if err := pageTemplate.ExecuteTemplate(&buf, "page", v); err != nil {
		s.cfg.Logger.Error("verify page render failed", "err", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("The page could not be shown.\n"))
		return http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
	return status
}

func (s *Server) renderNotice(w http.ResponseWriter, n notice, state linkState) pageResult {
	// The banner only where the session is known to be a test-mode one.
	testmode := state != linkLive && state != linkUnknown
	v := &pageView{Title: n.heading, Testmode: testmode, Notice: &noticeView{Heading: n.heading, Body: n.body}}
	return pageResult{status: s.renderPage(w, n.status, v), state: state}
}

// renderForm shows the test-mode form for an open link. After a rejected post, f holds what was sent (shown
// again as typed) and apiErr why it was rejected.
func (s *Server) renderForm(w http.ResponseWriter, r *http.Request, token string, link store.VerifyLink, sess *store.Session, f *Form, apiErr *Error) int {
	ctx := r.Context()
	secret, err := s.page.get(ctx, s.cfg.Store)
	if err != nil {
		return s.pageError(w, r, err, link).status
	}
	returnURL, err := s.cfg.Store.ReturnURL(ctx, link.Scope, link.SessionID)
	if err != nil {
		return s.pageError(w, r, err, link).status
	}
	if returnURL != nil { // the form's post is redirected there
		w.Header().Set("Content-Security-Policy", pageCSP(originOf(*returnURL)))
	}
	status := http.StatusOK
	fv := buildForm(sess, s.cfg.Store.Now())
	if f != nil {
		fv.fill(f)
	}
	if apiErr != nil {
		status = http.StatusBadRequest
		fv.Error, fv.ErrorField = apiErr.Message, fv.markInvalid(apiErr.Param)
	}
	fv.CSRF = formToken(secret, token, pageCookieValue(w, r, s.secureCookies(r)))
	return s.renderPage(w, status, &pageView{Title: "Verify your identity", Testmode: true, Form: fv})
}

// Test values a tester can submit unchanged (Stripe's own examples use Jenny Rosen).
const (
	testFirstName = "Jenny"
	testLastName  = "Rosen"
	testIDNumber  = "000000000"
	testDocNumber = "D1234567"
)

var documentTypes = []option{{"driving_license", "Driving licence"}, {"passport", "Passport"}, {"id_card", "ID card"}}
var idNumberTypes = []option{{"us_ssn", "US Social Security number"}, {"br_cpf", "Brazilian CPF"}, {"sg_nric", "Singapore NRIC"}}

// buildForm lays out the form for sess with its test values. Field names are the test helper's parameters.
func buildForm(sess *store.Session, now time.Time) *formView {
	doc := &store.DocumentOptions{}
	if sess.Options != nil && sess.Options.Document != nil {
		doc = sess.Options.Document
	}
	isDoc := sess.Type == "document"
	fv := &formView{Selfie: isDoc && isTrue(doc.RequireMatchingSelfie),
		IDNumber: sess.Type == "id_number" || (isDoc && isTrue(doc.RequireIDNumber)),
		Expires:  time.Unix(sess.Created, 0).Add(store.VerifyLinkLifetime).UTC().Format("on 2 Jan 2006 at 15:04 UTC")}
	allowed := documentTypes
	if isDoc && len(doc.AllowedTypes) > 0 {
		allowed = nil
		for _, t := range documentTypes {
			for _, a := range doc.AllowedTypes {
				if a == t.Value {
					allowed = append(allowed, t)
				}
			}
		}
	}
	if isDoc {
		names := make([]string, len(allowed))
		for i, o := range allowed {
			names[i] = o.Label
		}
		fv.Asks = append(fv.Asks, fact{"Check", "Identity document (document)"}, fact{"Documents accepted", strings.Join(names, ", ")})
		fv.Asks = append(fv.Asks, fact{"Matching selfie", yesNo(fv.Selfie)}, fact{"ID number", yesNo(fv.IDNumber)})
		if isTrue(doc.RequireLiveCapture) {
			fv.Asks = append(fv.Asks, fact{"Live capture", "asked (not simulated in test mode)"})
		}
	} else {
		fv.Asks = append(fv.Asks, fact{"Check", "ID number (id_number)"})
	}
	var email, phone string
	if pd := sess.ProvidedDetails; pd != nil {
		if pd.Email != nil {
			email = *pd.Email
			fv.Asks = append(fv.Asks, fact{"Email on file", email})
		}
		if pd.Phone != nil {
			phone = *pd.Phone
			fv.Asks = append(fv.Asks, fact{"Phone on file", phone})
		}
	}

	dob := dateFields("verified_outputs[dob]", 1, 1, 1990)
	fv.Groups = append(fv.Groups, fieldGroup{Legend: "Person", Fields: []fieldView{
		text("verified_outputs[first_name]", "First name", testFirstName),
		text("verified_outputs[last_name]", "Last name", testLastName)}},
		fieldGroup{Legend: "Date of birth", Inline: true, Fields: dob})
	if isDoc {
		fv.Groups = append(fv.Groups, fieldGroup{Legend: "Address", Fields: []fieldView{
			text("verified_outputs[address][line1]", "Address line 1", "354 Oyster Point Blvd"),
			text("verified_outputs[address][line2]", "Address line 2", ""),
			text("verified_outputs[address][city]", "City", "South San Francisco"),
			text("verified_outputs[address][state]", "State or region", "CA"),
			text("verified_outputs[address][postal_code]", "Postal code", "94080"),
			text("verified_outputs[address][country]", "Country (2 letters)", "US")}})
		docType := selectField("document[type]", "Document type", allowed)
		fv.Groups = append(fv.Groups, fieldGroup{Legend: "Document", Fields: []fieldView{docType,
			text("document[number]", "Document number", testDocNumber),
			text("document[issuing_country]", "Issuing country (2 letters)", "US")}},
			fieldGroup{Legend: "Document expiry date", Inline: true,
				Fields: dateFields("document[expiration_date]", 31, 12, int64(now.UTC().Year()+5))})
	}
	if fv.IDNumber {
		fv.Groups = append(fv.Groups, fieldGroup{Legend: "ID number", Fields: []fieldView{
			text("verified_outputs[id_number]", "ID number", testIDNumber),
			selectField("verified_outputs[id_number_type]", "ID number type", idNumberTypes)}})
	}
	if email != "" || phone != "" {
		var contact []fieldView
		if email != "" {
			f := text("verified_outputs[email]", "Email", email)
			f.Type = "email"
			contact = append(contact, f)
		}
		if phone != "" {
			f := text("verified_outputs[phone]", "Phone", phone)
			f.Type, f.InputMode = "tel", "tel"
			contact = append(contact, f)
		}
		fv.Groups = append(fv.Groups, fieldGroup{Legend: "Contact", Fields: contact})
	}
	for _, fl := range pageFailures {
		if fl.when(sess) {
			fv.Failures = append(fv.Failures, failureView{Code: fl.code, Label: fl.label, NoConsent: fl.code == "consent_declined"})
		}
	}
	return fv
}

func isTrue(b *bool) bool { return b != nil && *b }

func yesNo(b bool) string {
	if b {
		return "asked"
	}
	return "not asked"
}

// fieldID turns a parameter name into an HTML id: verified_outputs[dob][day] → f-verified_outputs-dob-day.
func fieldID(name string) string {
	return "f-" + strings.NewReplacer("][", "-", "[", "-", "]", "").Replace(name)
}

func text(name, label, value string) fieldView {
	return fieldView{ID: fieldID(name), Name: name, Label: label, Type: "text", Value: value}
}

func selectField(name, label string, opts []option) fieldView {
	f := fieldView{ID: fieldID(name), Name: name, Label: label, Options: opts}
	if len(opts) > 0 {
		f.Value = opts[0].Value
	}
	return f
}

func dateFields(prefix string, day, month, year int64) []fieldView {
	out := make([]fieldView, 3)
	for i, p := range []struct {
		part, label, size string
		v                 int64
	}{{"day", "Day", "2", day}, {"month", "Month", "2", month}, {"year", "Year", "4", year}} {
		out[i] = text(prefix+"["+p.part+"]", p.label, strconv.FormatInt(p.v, 10))
		out[i].InputMode, out[i].Size = "numeric", p.size
	}
	return out
}

// fill shows a rejected post's values again, as typed.
func (fv *formView) fill(f *Form) {
	sent := map[string]string{}
	for _, p := range f.Params() {
		sent[p.Key] = p.Value
	}
	_, fv.Consent = sent["consent"]
	for gi := range fv.Groups {
		for fi := range fv.Groups[gi].Fields {
			fld := &fv.Groups[gi].Fields[fi]
			fld.Value = sent[fld.Name]
		}
	}
}

// markInvalid flags the field a rejection names and returns its id ("" when it names none of the fields).
func (fv *formView) markInvalid(param string) string {
	if param == "" {
		return ""
	}
	for gi := range fv.Groups {
		for fi := range fv.Groups[gi].Fields {
			fld := &fv.Groups[gi].Fields[fi]
			if fld.Name == param || strings.HasPrefix(fld.Name, param+"[") {
				fld.Invalid = true
				return fld.ID
			}
		}
	}
	if param == "consent" {
		return "consent"
	}
	return ""
}

// pageFailure is a failure outcome the form offers: a Stripe last_error code with its reason, shown when the
// session asks for what the code is about.
type pageFailure struct {
	code, label, reason string
	when                func(*store.Session) bool
}

func always(*store.Session) bool       { return true }
func isDocument(s *store.Session) bool { return s.Type == "document" }
func asksSelfie(s *store.Session) bool {
	return isDocument(s) && s.Options != nil && s.Options.Document != nil && isTrue(s.Options.Document.RequireMatchingSelfie)
}
func asksIDNumber(s *store.Session) bool {
	return s.Type == "id_number" ||
		(isDocument(s) && s.Options != nil && s.Options.Document != nil && isTrue(s.Options.Document.RequireIDNumber))
}

var pageFailures = []pageFailure{
	{"consent_declined", "Decline consent", "The user declined to be verified.", always},
	{"document_expired", "Document expired", "The provided identity document has expired.", isDocument},
	{"document_unverified_other", "Document not verified", "The provided identity document could not be verified.", isDocument},
	{"selfie_face_mismatch", "Selfie does not match", "The captured face image did not match the document's face.", asksSelfie},
	{"id_number_mismatch", "ID number does not match", "The information provided could not be matched to the ID number.", asksIDNumber},
}

var errConsentNeeded = &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "parameter_missing",
	Message: "Tick the consent box to continue, or choose Decline consent.", Param: "consent"}

var errNoResult = &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "parameter_invalid",
	Message: "Choose Verify or one of the failures.", Param: "result"}

// readPageSubmission turns the page's form into the test helper's parameters and reads them with the helper's
// own readSubmission: the button pressed becomes outcome and last_error, and a field left empty is left out.
// The page's own fields (csrf, consent, result) are read first; anything else the helper does not know is
// refused as it would be there.
func readPageSubmission(f *Form, sess *store.Session) (*store.Submission, error) {
	if f.Has("outcome") || f.Has("last_error") { // the button pressed says what to submit, nothing else
		return nil, errNoResult
	}
	_, consent := f.Value("consent")
	result, _ := f.Value("result")
	var failure *pageFailure
	if result != store.OutcomeVerified {
		for i := range pageFailures {
			if pageFailures[i].code == result && pageFailures[i].when(sess) {
				failure = &pageFailures[i]
			}
		}
		if failure == nil {
			return nil, errNoResult
		}
	}
	if !consent && (failure == nil || failure.code != "consent_declined") {
		return nil, errConsentNeeded
	}
	f.dropEmpty()
	if failure == nil {
		f.add("outcome", store.OutcomeVerified)
	} else {
		f.add("outcome", store.OutcomeRequiresInput)
		f.add("last_error[code]", failure.code)
		f.add("last_error[reason]", failure.reason)
	}
	sub, err := readSubmission(f)
	if err != nil {
		return nil, err
	}
	if unknown := f.Unknown(); unknown != "" {
		return nil, unknownParam(unknown)
	}
	return sub, nil
}

// add appends a parameter, as if it had been sent.
func (f *Form) add(key, value string) {
	f.params = append(f.params, store.Param{Key: key, Value: value})
	f.used = append(f.used, false)
}

// dropEmpty removes unread parameters sent empty: an HTML form sends every field, and an empty one means
// "not given".
func (f *Form) dropEmpty() {
	params, used := f.params[:0], f.used[:0]
	for i, p := range f.params {
		if p.Value == "" && !f.used[i] {
			continue
		}
		params, used = append(params, p), append(used, f.used[i])
	}
	f.params, f.used = params, used
}
