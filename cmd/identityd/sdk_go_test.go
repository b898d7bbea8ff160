package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v85"
	"github.com/stripe/stripe-go/v85/webhook"
)

// sdkPoll calls fn until cond holds, for at most 30 s.
func sdkPoll[T any](ctx context.Context, what string, fn func() (T, error), cond func(T) bool) (T, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := fn()
		if err != nil || cond(v) {
			return v, err
		}
		if time.Now().After(deadline) {
			return v, fmt.Errorf("timed out waiting for %s", what)
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sdkHooks is a merchant's webhook endpoint on loopback: it keeps every request's raw body and signature.
type sdkHooks struct {
	*httptest.Server
	mu  sync.Mutex
	got []sdkHook
}

type sdkHook struct{ body, signature string }

func newSDKHooks() *sdkHooks {
	h := &sdkHooks{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.got = append(h.got, sdkHook{string(body), r.Header.Get("Stripe-Signature")})
		h.mu.Unlock()
	}))
	return h
}

func (h *sdkHooks) find(eventType string) (sdkHook, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, d := range h.got {
		var ev struct {
			Type string `json:"type"`
		}
		if json.Unmarshal([]byte(d.body), &ev) == nil && ev.Type == eventType {
			return d, true
		}
	}
	return sdkHook{}, false
}

// goScenario is the scenario through stripe-go v85; every body it reports is the answer as sent.
func goScenario(ctx context.Context, base, key string) ([]byte, error) {
	httpClient := &http.Client{Timeout: 30 * time.Second}
	defer httpClient.CloseIdleConnections() // no keep-alive goroutine outlives the test
	backends := stripe.NewBackendsWithConfig(&stripe.BackendConfig{URL: stripe.String(base),
		MaxNetworkRetries: stripe.Int64(0), HTTPClient: httpClient, LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull}})
	sc := stripe.NewClient(key, stripe.WithBackends(backends))
	sessions := sc.V1IdentityVerificationSessions
	hooks := newSDKHooks()
	defer hooks.Close()
	r := &sdkReport{}
	tag := "go-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	const session, report = "identity.verification_session", "identity.verification_report"
	const sessionList, reportList = "GET /v1/identity/verification_sessions", "GET /v1/identity/verification_reports"

	var secret string
	r.run("webhook_endpoint_create", "webhook_endpoint", func() ([]byte, error) {
		ep, err := sc.V1WebhookEndpoints.Create(ctx, &stripe.WebhookEndpointCreateParams{URL: stripe.String(hooks.URL + "/hooks"),
			EnabledEvents: stripe.StringSlice([]string{"identity.verification_session.verified", "identity.verification_session.redacted"})})
		if err != nil {
			return nil, err
		}
		secret = ep.Secret
		return rawOf(ep.LastResponse), expectf(len(secret) > 6 && secret[:6] == "whsec_", "secret is not whsec_…")
	})

	id, created := "vs_missing", int64(0)
	r.run("session_create", session, func() ([]byte, error) {
		vs, err := sessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
			Type: stripe.String("document"), ClientReferenceID: stripe.String(tag + "-main"),
			Metadata: map[string]string{"sdk": "go", "order": "1234"},
			Options: &stripe.IdentityVerificationSessionCreateOptionsParams{Document: &stripe.IdentityVerificationSessionCreateOptionsDocumentParams{
				AllowedTypes: stripe.StringSlice([]string{"passport", "id_card"}), RequireMatchingSelfie: new(true)}},
			ProvidedDetails: &stripe.IdentityVerificationSessionCreateProvidedDetailsParams{Email: stripe.String("ada@example.com")},
			ReturnURL:       stripe.String("https://example.com/return"),
		})
		if err != nil {
			return nil, err
		}
		id, created = vs.ID, vs.Created
		return rawOf(vs.LastResponse), errors.Join(
			expectf(vs.Status == stripe.IdentityVerificationSessionStatusRequiresInput, "status is %s", vs.Status),
			expectf(vs.Metadata["order"] == "1234" && vs.ClientReferenceID == tag+"-main", "metadata or reference lost"),
			expectf(vs.Options != nil && vs.Options.Document != nil && vs.Options.Document.RequireMatchingSelfie, "options not echoed"),
			expectf(vs.Options != nil && vs.Options.Document != nil && len(vs.Options.Document.AllowedTypes) == 2 &&
				vs.Options.Document.AllowedTypes[0] == "passport", "allowed_types not echoed"),
			expectf(strings.HasPrefix(vs.LastResponse.RequestID, "req_"), "no Request-Id: %q", vs.LastResponse.RequestID))
	})

	r.run("session_retrieve", session, func() ([]byte, error) {
		vs, err := sessions.Retrieve(ctx, id, nil)
		if err != nil {
			return nil, err
		}
		return rawOf(vs.LastResponse), expectf(vs.ID == id && vs.Metadata["sdk"] == "go", "retrieve differs from create")
	})

	var paged []string
	r.run("session_create_page_of_25", session, func() ([]byte, error) {
		var last *stripe.IdentityVerificationSession
		for range 25 {
			vs, err := sessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
				Type: stripe.String("id_number"), ClientReferenceID: stripe.String(tag + "-page")})
			if err != nil {
				return nil, err
			}
			last, paged = vs, append(paged, vs.ID)
		}
		return rawOf(last.LastResponse), nil
	})
	newestFirst := slices.Clone(paged)
	slices.Reverse(newestFirst)

	r.run("session_list_first_page", sessionList, func() ([]byte, error) {
		p := &stripe.IdentityVerificationSessionListParams{ClientReferenceID: stripe.String(tag + "-page")}
		p.Limit, p.Single = stripe.Int64(10), true
		list := sessions.List(ctx, p)
		if err := list.Err(); err != nil {
			return nil, err
		}
		data := list.Data()
		return rawOf(list.LastResponse()), expectf(len(data) == 10 && list.Meta().HasMore && len(paged) == 25 &&
			data[0].ID == paged[24], "want the 10 newest sessions and has_more")
	})

	r.run("session_list_auto_pagination", "", func() ([]byte, error) {
		p := &stripe.IdentityVerificationSessionListParams{ClientReferenceID: stripe.String(tag + "-page")}
		p.Limit = stripe.Int64(10)
		var seen []string
		for vs, err := range sessions.List(ctx, p).All(ctx) {
			if err != nil {
				return nil, err
			}
			seen = append(seen, vs.ID)
		}
		// The pages are the SDK's own; the first page's shape is checked above.
		return nil, expectf(slices.Equal(seen, newestFirst), "auto-pagination saw %d sessions, want the 25 newest first", len(seen))
	})

	r.run("session_update", session, func() ([]byte, error) {
		vs, err := sessions.Update(ctx, id, &stripe.IdentityVerificationSessionUpdateParams{Metadata: map[string]string{"step": "updated"}})
		if err != nil {
			return nil, err
		}
		return rawOf(vs.LastResponse), expectf(vs.Metadata["step"] == "updated" && vs.Metadata["order"] == "1234", "metadata not merged")
	})

	canceled := "vs_missing"
	if len(paged) > 3 {
		canceled = paged[3]
	}
	r.run("session_cancel", session, func() ([]byte, error) {
		vs, err := sessions.Cancel(ctx, canceled, nil)
		if err != nil {
			return nil, err
		}
		return rawOf(vs.LastResponse), expectf(vs.Status == stripe.IdentityVerificationSessionStatusCanceled, "status is %s", vs.Status)
	})

	r.run("session_list_filters", sessionList, func() ([]byte, error) {
		list := sessions.List(ctx, &stripe.IdentityVerificationSessionListParams{ClientReferenceID: stripe.String(tag + "-page"),
			Status: stripe.String("canceled"), CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: created - 1}})
		if err := list.Err(); err != nil {
			return nil, err
		}
		none := sessions.List(ctx, &stripe.IdentityVerificationSessionListParams{ClientReferenceID: stripe.String(tag + "-nobody")})
		if err := none.Err(); err != nil {
			return nil, err
		}
		data := list.Data()
		return rawOf(list.LastResponse()), errors.Join(
			expectf(len(data) == 1 && data[0].ID == canceled, "status+created filter wants the canceled one"),
			expectf(len(none.Data()) == 0 && !none.Meta().HasMore, "an unknown reference lists nothing"))
	})

	r.run("session_submit_test_helper", session, func() ([]byte, error) {
		// The test-mode helper is identityd's own endpoint: called through the SDK's raw request.
		raw, ok := backends.API.(stripe.RawRequestBackend)
		if !ok {
			return nil, errors.New("the API backend takes no raw requests")
		}
		form := url.Values{"verified_outputs[first_name]": {"Ada"}, "verified_outputs[last_name]": {"Lovelace"},
			"verified_outputs[dob][day]": {"10"}, "verified_outputs[dob][month]": {"12"}, "verified_outputs[dob][year]": {"1985"},
			"document[type]": {"passport"}, "document[number]": {"P1234567"}, "document[issuing_country]": {"GB"}}
		res, err := raw.RawRequest(http.MethodPost, "/v1/test_helpers/identity/verification_sessions/"+id+"/submit", key, form.Encode(), nil)
		if err != nil {
			return nil, err
		}
		var vs stripe.IdentityVerificationSession
		if err := json.Unmarshal(res.RawJSON, &vs); err != nil {
			return res.RawJSON, err
		}
		return res.RawJSON, expectf(vs.Status == stripe.IdentityVerificationSessionStatusProcessing, "status after submit is %s", vs.Status)
	})

	reportID := "vr_missing"
	r.run("session_verified_expanded", session, func() ([]byte, error) {
		p := &stripe.IdentityVerificationSessionRetrieveParams{}
		p.AddExpand("last_verification_report")
		p.AddExpand("verified_outputs")
		vs, err := sdkPoll(ctx, "verified", func() (*stripe.IdentityVerificationSession, error) { return sessions.Retrieve(ctx, id, p) },
			func(vs *stripe.IdentityVerificationSession) bool {
				return vs.Status != stripe.IdentityVerificationSessionStatusProcessing
			})
		if err != nil {
			return nil, err
		}
		if vs.LastVerificationReport != nil {
			reportID = vs.LastVerificationReport.ID
		}
		return rawOf(vs.LastResponse), errors.Join(
			expectf(vs.Status == stripe.IdentityVerificationSessionStatusVerified, "status is %s", vs.Status),
			expectf(vs.VerifiedOutputs != nil && vs.VerifiedOutputs.FirstName == "Ada", "verified_outputs not expanded"),
			expectf(vs.LastVerificationReport != nil && vs.LastVerificationReport.Object == report, "report not expanded"))
	})

	r.run("report_retrieve", report, func() ([]byte, error) {
		vr, err := sc.V1IdentityVerificationReports.Retrieve(ctx, reportID, nil)
		if err != nil {
			return nil, err
		}
		return rawOf(vr.LastResponse), expectf(vr.VerificationSession == id && vr.Document != nil &&
			vr.Document.Status == stripe.IdentityVerificationReportDocumentStatusVerified, "report does not match")
	})

	r.run("report_list", reportList, func() ([]byte, error) {
		list := sc.V1IdentityVerificationReports.List(ctx, &stripe.IdentityVerificationReportListParams{VerificationSession: stripe.String(id)})
		if err := list.Err(); err != nil {
			return nil, err
		}
		data := list.Data()
		return rawOf(list.LastResponse()), expectf(len(data) == 1 && data[0].ID == reportID, "want the one report")
	})

	r.run("session_redact", session, func() ([]byte, error) {
		vs, err := sessions.Redact(ctx, id, nil)
		if err != nil {
			return nil, err
		}
		return rawOf(vs.LastResponse), expectf(vs.Redaction != nil, "redaction not requested")
	})

	r.run("session_redacted", session, func() ([]byte, error) {
		vs, err := sdkPoll(ctx, "redacted", func() (*stripe.IdentityVerificationSession, error) { return sessions.Retrieve(ctx, id, nil) },
			func(vs *stripe.IdentityVerificationSession) bool {
				return vs.Redaction != nil && vs.Redaction.Status == stripe.IdentityVerificationSessionRedactionStatusRedacted
			})
		if err != nil {
			return nil, err
		}
		return rawOf(vs.LastResponse), expectf(len(vs.Metadata) == 0, "metadata survived the redaction")
	})

	r.failing("error_404_missing_id", func() error {
		_, err := sessions.Retrieve(ctx, "vs_doesnotexist000000000000", nil)
		return err
	}, func(se *stripe.Error) error {
		var typed *stripe.InvalidRequestError
		return errors.Join(expectf(se.HTTPStatusCode == http.StatusNotFound && errors.As(se.Err, &typed), "got %d %T", se.HTTPStatusCode, se.Err),
			expectf(se.Code == stripe.ErrorCodeResourceMissing && se.Param == "id", "code %s, param %s", se.Code, se.Param))
	})

	r.failing("error_400_bad_param", func() error {
		_, err := sessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("fingerprint")})
		return err
	}, func(se *stripe.Error) error {
		var typed *stripe.InvalidRequestError
		return errors.Join(expectf(se.HTTPStatusCode == http.StatusBadRequest && errors.As(se.Err, &typed), "got %d %T", se.HTTPStatusCode, se.Err),
			expectf(se.Param == "type", "param %s", se.Param))
	})

	idemKey := tag + "-idem"
	r.run("idempotent_retry_same_object", session, func() ([]byte, error) {
		var ids []string
		var last *stripe.IdentityVerificationSession
		for range 2 {
			p := &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document"), Metadata: map[string]string{"try": "1"}}
			p.SetIdempotencyKey(idemKey)
			vs, err := sessions.Create(ctx, p)
			if err != nil {
				return nil, err
			}
			last, ids = vs, append(ids, vs.ID)
		}
		return rawOf(last.LastResponse), errors.Join(expectf(ids[0] == ids[1], "a retry with the same key made a second session"),
			expectf(last.LastResponse.IdempotencyKey == idemKey, "the answer does not repeat the Idempotency-Key"))
	})

	r.failing("idempotency_key_reused_with_other_params", func() error {
		p := &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("id_number")}
		p.SetIdempotencyKey(idemKey)
		_, err := sessions.Create(ctx, p)
		return err
	}, func(se *stripe.Error) error {
		var typed *stripe.IdempotencyError
		return expectf(se.HTTPStatusCode == http.StatusBadRequest && errors.As(se.Err, &typed), "got %d %T", se.HTTPStatusCode, se.Err)
	})

	for _, eventType := range []stripe.EventType{stripe.EventTypeIdentityVerificationSessionVerified, stripe.EventTypeIdentityVerificationSessionRedacted} {
		var delivery sdkHook
		name := map[stripe.EventType]string{stripe.EventTypeIdentityVerificationSessionVerified: "verified",
			stripe.EventTypeIdentityVerificationSessionRedacted: "redacted"}[eventType]
		got := r.run("webhook_"+name+"_signature", "event", func() ([]byte, error) {
			d, err := sdkPoll(ctx, "a delivery of "+string(eventType), func() (sdkHook, error) {
				d, _ := hooks.find(string(eventType))
				return d, nil
			}, func(d sdkHook) bool { return d.body != "" })
			if err != nil {
				return nil, err
			}
			delivery = d
			ev, err := webhook.ConstructEvent([]byte(d.body), d.signature, secret)
			if err != nil {
				return []byte(d.body), err
			}
			_, wrong := webhook.ConstructEvent([]byte(d.body), d.signature, "whsec_not0the0secret")
			return []byte(d.body), errors.Join(
				expectf(ev.Type == eventType && ev.Data != nil && ev.Data.Object["id"] == id, "the event is about another session"),
				expectf(errors.Is(wrong, webhook.ErrNoValidSignature), "a wrong secret verified: %v", wrong))
		})
		if eventType != stripe.EventTypeIdentityVerificationSessionRedacted {
			continue
		}
		r.run("webhook_event_object", session, func() ([]byte, error) {
			var ev struct {
				Data struct {
					Object json.RawMessage `json:"object"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(delivery.body), &ev); !got || err != nil {
				return nil, errors.New("no delivery")
			}
			return ev.Data.Object, nil
		})
		r.run("event_retrieve", "event", func() ([]byte, error) {
			var sent struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal([]byte(delivery.body), &sent); !got || err != nil {
				return nil, errors.New("no delivery")
			}
			ev, err := sc.V1Events.Retrieve(ctx, sent.ID, nil)
			if err != nil {
				return nil, err
			}
			return rawOf(ev.LastResponse), expectf(ev.ID == sent.ID && ev.Type == eventType, "retrieved another event")
		})
	}
	return r.lines, nil
}
