package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store/storetest"
)

// Event types, short.
const (
	evCreated       = "identity.verification_session.created"
	evProcessing    = "identity.verification_session.processing"
	evVerified      = "identity.verification_session.verified"
	evRequiresInput = "identity.verification_session.requires_input"
	evCanceled      = "identity.verification_session.canceled"
	evRedacted      = "identity.verification_session.redacted"
)

// raceOp is one call fired at a session at the same moment as others.
type raceOp struct {
	name   string
	method string
	path   func(id string) string
	params url.Values
}

var (
	opCancel = raceOp{"cancel", http.MethodPost, func(id string) string { return "/v1/identity/verification_sessions/" + id + "/cancel" }, nil}
	opRedact = raceOp{"redact", http.MethodPost, func(id string) string { return "/v1/identity/verification_sessions/" + id + "/redact" }, nil}
	opUpdate = raceOp{"update", http.MethodPost, func(id string) string { return "/v1/identity/verification_sessions/" + id },
		url.Values{"metadata[race]": {"updated"}, "provided_details[email]": {"race@example.com"}}}
	opSubmit = raceOp{"submit", http.MethodPost, submitPath, url.Values{"outcome": {"verified"},
		"verified_outputs[first_name]": {"Racer"}, "document[number]": {"R123"}}}
)

// createSessions makes n document sessions with a little personal data.
func createSessions(t *testing.T, api *formClient, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		r := api.post(t, "/v1/identity/verification_sessions", url.Values{"type": {"document"},
			"metadata[seq]": {strconv.Itoa(i)}, "provided_details[phone]": {"+15555550123"}})
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
		ids[i] = r.Body["id"].(string)
	}
	return ids
}

// fireTogether creates n sessions and, for each, fires every op at once; it returns the answers per session
// and op.
func fireTogether(t *testing.T, api *formClient, n int, ops ...raceOp) map[string]map[string]*apiResponse {
	t.Helper()
	return fireAt(t, api, createSessions(t, api, n), ops...)
}

// fireAt fires every op at every session at once. A transport error fails the test after all goroutines
// returned.
func fireAt(t *testing.T, api *formClient, ids []string, ops ...raceOp) map[string]map[string]*apiResponse {
	t.Helper()
	var (
		mu      sync.Mutex
		answers = map[string]map[string]*apiResponse{}
		errs    []error
		wg      sync.WaitGroup
	)
	start := make(chan struct{})
	for _, id := range ids {
		answers[id] = map[string]*apiResponse{}
		for _, op := range ops {
			wg.Go(func() {
				<-start
				r, err := api.do(context.Background(), op.method, op.path(id), op.params)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Errorf("%s %s: %w", op.name, id, err))
					return
				}
				answers[id][op.name] = r
			})
		}
	}
	close(start)
	wg.Wait()
	require.Empty(t, errs)
	return answers
}

// settled waits until no session is mid-verification or mid-redaction, and returns them all by id.
func settled(t *testing.T, api *formClient, ids map[string]map[string]*apiResponse) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	eventually(t, pollWithin, "every session settled", func() bool {
		for id := range ids {
			r := api.get(t, "/v1/identity/verification_sessions/"+id, url.Values{"expand[]": {"verified_outputs"}})
			require.Equal(t, http.StatusOK, r.Status, r.Raw)
			if r.Body["status"] == "processing" || jsonStr(r.Body, "redaction.status") == "processing" {
				return false
			}
			out[id] = r.Body
		}
		return true
	})
	return out
}

// won reports whether op answered 200; any other answer must be a clean status_transition_invalid.
func won(t *testing.T, answers map[string]*apiResponse, op string) bool {
	t.Helper()
	r, ok := answers[op]
	if !ok {
		return false
	}
	if r.Status == http.StatusOK {
		return true
	}
	require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", op, r.Raw)
	require.Equal(t, "status_transition_invalid", r.errCode(), "%s: %s", op, r.Raw)
	return false
}

func TestRaces_CancelRedactUpdateSubmit(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--verification-delay", "0s")
	api := d.form(testKeyA)
	answers := fireTogether(t, api, 30, opCancel, opRedact, opUpdate, opSubmit)
	final := settled(t, api, answers)
	events := api.sessionEvents(t)

	outcomes := map[string]int{}
	for id, a := range answers {
		s, evs := final[id], events[id]
		cancel, redact, update, submit := won(t, a, "cancel"), won(t, a, "redact"), won(t, a, "update"), won(t, a, "submit")
		status := s["status"].(string)
		outcomes[fmt.Sprintf("cancel=%v redact=%v update=%v submit=%v → %s", cancel, redact, update, submit, status)]++

		require.Contains(t, []string{"requires_input", "processing", "verified", "canceled"}, status)
		require.False(t, cancel && submit, "%s: cancel and submit both won", id)
		require.Equal(t, 1, evs[evCreated])

		// What each winner answered was a state it may produce, never one after a redaction request.
		if cancel {
			require.Equal(t, "canceled", a["cancel"].Body["status"])
			require.Nil(t, a["cancel"].Body["redaction"])
		}
		if update {
			require.Equal(t, "requires_input", a["update"].Body["status"])
			require.Nil(t, a["update"].Body["redaction"])
			require.Equal(t, "updated", jsonStr(a["update"].Body, "metadata.race"))
		}
		if submit {
			require.Equal(t, "processing", a["submit"].Body["status"])
			require.Nil(t, a["submit"].Body["redaction"])
			require.Equal(t, "verified", status, "%s: outcome=verified", id)
			require.Equal(t, 1, evs[evProcessing])
			require.Equal(t, 1, evs[evVerified])
		} else {
			require.Zero(t, evs[evProcessing])
			require.Zero(t, evs[evVerified])
		}
		require.Zero(t, evs[evRequiresInput])

		if redact {
			require.Equal(t, "processing", jsonStr(a["redact"].Body, "redaction.status"))
			require.Contains(t, []string{"canceled", "verified"}, a["redact"].Body["status"])
			require.Equal(t, "redacted", jsonStr(s, "redaction.status"))
			require.Equal(t, 1, evs[evRedacted], "%s: exactly one .redacted", id)
			require.Empty(t, s["metadata"], "%s: no update after the redaction", id)
			require.Contains(t, []any{nil, "[redacted]"}, jsonAt(s, "provided_details.email"))
			require.Equal(t, "[redacted]", jsonAt(s, "provided_details.phone"))
			if submit {
				require.Equal(t, "[redacted]", jsonAt(s, "verified_outputs.first_name"))
			}
		} else {
			require.Nil(t, s["redaction"])
			require.Zero(t, evs[evRedacted])
			require.Equal(t, "+15555550123", jsonAt(s, "provided_details.phone"))
			if update {
				require.Equal(t, "updated", jsonStr(s, "metadata.race"))
			}
		}

		// canceled ⇔ exactly one .canceled, by the cancel call or by redact's auto-cancel.
		if status == "canceled" {
			require.Equal(t, 1, evs[evCanceled], id)
			require.True(t, cancel || redact)
		} else {
			require.Zero(t, evs[evCanceled], id)
			require.False(t, cancel)
		}
		if !cancel && !redact && !submit {
			require.Equal(t, "requires_input", status)
		}
	}
	t.Logf("outcomes over %d sessions: %v", len(answers), outcomes)
}

func TestRaces_SubmitVersusCancel(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--verification-delay", "0s")
	api := d.form(testKeyA)
	answers := fireTogether(t, api, 30, opSubmit, opCancel)
	final := settled(t, api, answers)
	events := api.sessionEvents(t)
	wins := map[string]int{}
	for id, a := range answers {
		cancel, submit := won(t, a, "cancel"), won(t, a, "submit")
		require.NotEqual(t, cancel, submit, "%s: exactly one of submit and cancel wins", id)
		evs := events[id]
		if cancel {
			wins["cancel"]++
			require.Equal(t, "canceled", final[id]["status"])
			require.Equal(t, map[string]int{evCreated: 1, evCanceled: 1}, evs)
		} else {
			wins["submit"]++
			require.Equal(t, "verified", final[id]["status"])
			require.Equal(t, map[string]int{evCreated: 1, evProcessing: 1, evVerified: 1}, evs)
		}
	}
	t.Logf("winners over %d sessions: %v", len(answers), wins)
}

func TestRaces_RedactVerifiedSessions(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve", "--verification-delay", "0s")
	api := d.form(testKeyA)
	ids := createSessions(t, api, 20)
	for _, id := range ids {
		r := api.post(t, submitPath(id), opSubmit.params)
		require.Equal(t, http.StatusOK, r.Status, r.Raw)
	}
	eventually(t, pollWithin, "all verified", func() bool {
		for _, id := range ids {
			if api.get(t, "/v1/identity/verification_sessions/"+id, nil).Body["status"] != "verified" {
				return false
			}
		}
		return true
	})
	redact2, redact3 := opRedact, opRedact
	redact2.name, redact3.name = "redact2", "redact3"
	answers := fireAt(t, api, ids, opRedact, redact2, redact3, opUpdate, opCancel, opSubmit)
	final := settled(t, api, answers)
	events := api.sessionEvents(t)
	for _, id := range ids {
		a := answers[id]
		for _, op := range []string{"redact", "redact2", "redact3"} {
			require.True(t, won(t, a, op), "%s: every redact call answers 200", op)
			require.Contains(t, []string{"processing", "redacted"}, jsonStr(a[op].Body, "redaction.status"))
		}
		for _, op := range []string{"update", "cancel", "submit"} {
			require.False(t, won(t, a, op), "%s on a verified session", op)
		}
		require.Equal(t, "verified", final[id]["status"])
		require.Equal(t, "redacted", jsonStr(final[id], "redaction.status"))
		require.Equal(t, "[redacted]", jsonStr(final[id], "verified_outputs.first_name"))
		require.Equal(t, map[string]int{evCreated: 1, evProcessing: 1, evVerified: 1, evRedacted: 1}, events[id])
	}
	require.Equal(t, len(ids), redactTaskCount(t, d), "one task per session however often redact was called")
	require.Contains(t, scrapeMetrics(t, d), fmt.Sprintf("identityd_redactions_requested_total %d\n", len(ids)))
	require.Contains(t, scrapeMetrics(t, d), fmt.Sprintf("identityd_redactions_completed_total %d\n", len(ids)))
}
