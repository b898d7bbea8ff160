package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v85"

	"github.com/identityd/identityd/store/storetest"
)

// listAll drains a stripe-go list with its auto-pagination.
func listAll(t *testing.T, l *stripe.V1List[*stripe.IdentityVerificationSession]) []string {
	t.Helper()
	ids := []string{}
	for vs, err := range l.All(context.Background()) {
		require.NoError(t, err)
		ids = append(ids, vs.ID)
	}
	return ids
}

func createN(t *testing.T, sc *stripe.Client, n int, params func(i int) *stripe.IdentityVerificationSessionCreateParams) []string {
	t.Helper()
	var ids []string
	for i := range n {
		p := &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")}
		if params != nil {
			p = params(i)
		}
		vs, err := sc.V1IdentityVerificationSessions.Create(context.Background(), p)
		require.NoError(t, err)
		ids = append(ids, vs.ID)
	}
	return ids
}

func TestStripeGo_AutoPaginationOverOneSecond(t *testing.T) {
	t.Parallel()
	clock := storetest.NewFakeClock(time.Unix(1_700_000_000, 0)) // never advanced: every session shares `created`
	d := startDaemonAt(t, storetest.New(t), clock, "serve")
	sc := d.client(testKeyA)
	ctx := context.Background()
	created := createN(t, sc, 37, nil)
	want := append([]string(nil), created...)
	sort.Sort(sort.Reverse(sort.StringSlice(want))) // one second: newest first means id descending

	forward := listAll(t, sc.V1IdentityVerificationSessions.List(ctx,
		&stripe.IdentityVerificationSessionListParams{ListParams: stripe.ListParams{Limit: stripe.Int64(10)}}))
	require.Equal(t, want, forward, "every session once, in (created, id) order, across 4 pages")

	// Backwards from the oldest: stripe-go walks ending_before pages and yields oldest to newest.
	backward := listAll(t, sc.V1IdentityVerificationSessions.List(ctx, &stripe.IdentityVerificationSessionListParams{
		ListParams: stripe.ListParams{Limit: stripe.Int64(7), EndingBefore: stripe.String(want[36])}}))
	reversed := append([]string(nil), want[:36]...)
	sort.Strings(reversed)
	require.Equal(t, reversed, backward)

	// From the middle, both ways.
	after := listAll(t, sc.V1IdentityVerificationSessions.List(ctx, &stripe.IdentityVerificationSessionListParams{
		ListParams: stripe.ListParams{Limit: stripe.Int64(5), StartingAfter: stripe.String(want[20])}}))
	require.Equal(t, want[21:], after)
	before := listAll(t, sc.V1IdentityVerificationSessions.List(ctx, &stripe.IdentityVerificationSessionListParams{
		ListParams: stripe.ListParams{Limit: stripe.Int64(5), EndingBefore: stripe.String(want[20])}}))
	require.Len(t, before, 20)
	require.Equal(t, want[19], before[0], "the first one yielded is right before the cursor")
	require.Equal(t, want[0], before[19])

	page := sc.V1IdentityVerificationSessions.List(ctx, &stripe.IdentityVerificationSessionListParams{
		ListParams: stripe.ListParams{Limit: stripe.Int64(37), Single: true}})
	require.NoError(t, page.Err())
	require.False(t, page.Meta().HasMore)
	require.Len(t, page.Data(), 37)
}

func TestStripeGo_ListFilters(t *testing.T) {
	t.Parallel()
	start := time.Unix(1_700_000_000, 0)
	clock := storetest.NewFakeClock(start)
	d := startDaemonAt(t, storetest.New(t), clock, "serve")
	sc := d.client(testKeyA)
	ctx := context.Background()
	// Three seconds, four sessions each: refs alternate, the customer is on the first of each second.
	bySecond := map[int64][]string{}
	byRef := map[string][]string{}
	var canceled []string
	for s := range int64(3) {
		for i := range 4 {
			ref := []string{"ref_even", "ref_odd"}[i%2]
			p := &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document"), ClientReferenceID: stripe.String(ref)}
			if i == 0 {
				p.RelatedCustomer = stripe.String("cus_42")
			}
			vs, err := sc.V1IdentityVerificationSessions.Create(ctx, p)
			require.NoError(t, err)
			bySecond[start.Unix()+s] = append(bySecond[start.Unix()+s], vs.ID)
			byRef[ref] = append(byRef[ref], vs.ID)
			if i == 3 {
				_, err := sc.V1IdentityVerificationSessions.Cancel(ctx, vs.ID, nil)
				require.NoError(t, err)
				canceled = append(canceled, vs.ID)
			}
		}
		clock.Advance(time.Second)
	}
	list := func(p *stripe.IdentityVerificationSessionListParams) []string {
		p.Limit = stripe.Int64(2) // several pages, so filters and cursors combine
		ids := listAll(t, sc.V1IdentityVerificationSessions.List(ctx, p))
		sort.Strings(ids)
		return ids
	}
	sorted := func(ids ...[]string) []string {
		var out []string
		for _, x := range ids {
			out = append(out, x...)
		}
		sort.Strings(out)
		return out
	}
	require.Equal(t, sorted(byRef["ref_odd"]), list(&stripe.IdentityVerificationSessionListParams{ClientReferenceID: stripe.String("ref_odd")}))
	require.Equal(t, sorted(canceled), list(&stripe.IdentityVerificationSessionListParams{Status: stripe.String("canceled")}))
	require.Len(t, list(&stripe.IdentityVerificationSessionListParams{Status: stripe.String("requires_input")}), 9)
	require.Len(t, list(&stripe.IdentityVerificationSessionListParams{RelatedCustomer: stripe.String("cus_42")}), 3)
	require.Empty(t, list(&stripe.IdentityVerificationSessionListParams{ClientReferenceID: stripe.String("ref_none")}))
	t0 := start.Unix()
	require.Equal(t, sorted(bySecond[t0+1]), list(&stripe.IdentityVerificationSessionListParams{Created: new(t0 + 1)}))
	require.Equal(t, sorted(bySecond[t0+1], bySecond[t0+2]), list(&stripe.IdentityVerificationSessionListParams{
		CreatedRange: &stripe.RangeQueryParams{GreaterThan: t0}}))
	require.Equal(t, sorted(bySecond[t0], bySecond[t0+1]), list(&stripe.IdentityVerificationSessionListParams{
		CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: t0, LesserThan: t0 + 2}}))
	require.Equal(t, sorted(bySecond[t0+2]), list(&stripe.IdentityVerificationSessionListParams{
		CreatedRange: &stripe.RangeQueryParams{LesserThanOrEqual: t0 + 5, GreaterThanOrEqual: t0 + 2}}))
	got := list(&stripe.IdentityVerificationSessionListParams{ClientReferenceID: stripe.String("ref_odd"),
		Status: stripe.String("canceled"), CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: t0 + 1}})
	require.Equal(t, sorted(canceled[1:]), got, "filters combine")
}

func TestStripeGo_TestAndLiveAreApart(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve")
	ctx := context.Background()
	test, live := d.client(testKeyA), d.client(liveKeyA)
	testIDs := createN(t, test, 3, nil)
	liveVS, err := live.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
	require.NoError(t, err)
	require.True(t, liveVS.Livemode)

	require.Equal(t, []string{liveVS.ID}, listAll(t, live.V1IdentityVerificationSessions.List(ctx, &stripe.IdentityVerificationSessionListParams{})))
	require.ElementsMatch(t, testIDs, listAll(t, test.V1IdentityVerificationSessions.List(ctx, &stripe.IdentityVerificationSessionListParams{})))
	_, err = live.V1IdentityVerificationSessions.Retrieve(ctx, testIDs[0], nil)
	requireStripeError(t, err, http.StatusNotFound, "resource_missing", "id")
	_, err = test.V1IdentityVerificationSessions.Retrieve(ctx, liveVS.ID, nil)
	requireStripeError(t, err, http.StatusNotFound, "resource_missing", "id")
	_, err = live.V1IdentityVerificationSessions.Cancel(ctx, testIDs[0], nil)
	requireStripeError(t, err, http.StatusNotFound, "resource_missing", "id")
	got, err := test.V1IdentityVerificationSessions.Retrieve(ctx, testIDs[0], nil)
	require.NoError(t, err)
	require.Equal(t, stripe.IdentityVerificationSessionStatusRequiresInput, got.Status, "the live key changed nothing")
}

func requireStripeError(t *testing.T, err error, status int, code, param string) *stripe.Error {
	t.Helper()
	var se *stripe.Error
	require.ErrorAs(t, err, &se, "want *stripe.Error, got %v", err)
	require.Equal(t, status, se.HTTPStatusCode)
	require.Equal(t, stripe.ErrorTypeInvalidRequest, se.Type)
	require.Equal(t, stripe.ErrorCode(code), se.Code)
	require.Equal(t, param, se.Param)
	require.NotEmpty(t, se.RequestID)
	return se
}

func TestStripeGo_CrossAccountIsNotFound(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve")
	ctx := context.Background()
	a, b := d.client(testKeyA), d.client(testKeyB)
	theirs, err := b.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
	require.NoError(t, err)
	const missing = "vs_AAAAAAAAAAAAAAAAAAAAAAAA"
	ops := map[string]func(id string) error{
		"retrieve": func(id string) error { _, err := a.V1IdentityVerificationSessions.Retrieve(ctx, id, nil); return err },
		"update": func(id string) error {
			p := &stripe.IdentityVerificationSessionUpdateParams{}
			p.AddMetadata("stolen", "yes")
			_, err := a.V1IdentityVerificationSessions.Update(ctx, id, p)
			return err
		},
		"cancel": func(id string) error { _, err := a.V1IdentityVerificationSessions.Cancel(ctx, id, nil); return err },
		"redact": func(id string) error { _, err := a.V1IdentityVerificationSessions.Redact(ctx, id, nil); return err },
	}
	for name, op := range ops {
		got := requireStripeError(t, op(theirs.ID), http.StatusNotFound, "resource_missing", "id")
		want := requireStripeError(t, op(missing), http.StatusNotFound, "resource_missing", "id")
		require.Equal(t, want.Msg, got.Msg, "%s: another account's id reads exactly like a missing one", name)
	}
	still, err := b.V1IdentityVerificationSessions.Retrieve(ctx, theirs.ID, nil)
	require.NoError(t, err)
	require.Equal(t, stripe.IdentityVerificationSessionStatusRequiresInput, still.Status)
	require.Empty(t, still.Metadata)
	require.Nil(t, still.Redaction)
	require.Empty(t, listAll(t, a.V1IdentityVerificationSessions.List(ctx, &stripe.IdentityVerificationSessionListParams{})))
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve")
	vs, err := d.client(testKeyA).V1IdentityVerificationSessions.Create(context.Background(),
		&stripe.IdentityVerificationSessionCreateParams{Type: stripe.String("document")})
	require.NoError(t, err)
	get := func(user string) (int, map[string]any, http.Header) {
		req, err := http.NewRequest(http.MethodGet, d.url()+"/v1/identity/verification_sessions/"+vs.ID, nil)
		require.NoError(t, err)
		req.SetBasicAuth(user, "")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		var body map[string]any
		require.NoError(t, json.Unmarshal(raw, &body))
		return res.StatusCode, body, res.Header
	}
	status, body, header := get(secretOf(testKeyA))
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, vs.ID, body["id"])
	require.Regexp(t, `^req_`, header.Get("Request-Id"))
	status, _, header = get(secretOf(testKeyB))
	require.Equal(t, http.StatusNotFound, status, "basic auth as another account")
	require.Regexp(t, `^req_`, header.Get("Request-Id"))
	status, body, header = get("sk_test_unknown")
	require.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, "invalid_request_error", body["error"].(map[string]any)["type"])
	require.Regexp(t, `^req_`, header.Get("Request-Id"))
}

func TestStripeGo_RelatedCustomerAccount(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, storetest.New(t), "serve")
	sc := d.client(testKeyA)
	ctx := context.Background()
	vs, err := sc.V1IdentityVerificationSessions.Create(ctx, &stripe.IdentityVerificationSessionCreateParams{
		Type: stripe.String("document"), RelatedCustomerAccount: stripe.String("acct_customer1")})
	require.NoError(t, err)
	require.Equal(t, "acct_customer1", vs.RelatedCustomerAccount)
	got, err := sc.V1IdentityVerificationSessions.Retrieve(ctx, vs.ID, nil)
	require.NoError(t, err)
	require.Equal(t, "acct_customer1", got.RelatedCustomerAccount)
	canceled, err := sc.V1IdentityVerificationSessions.Cancel(ctx, vs.ID, nil)
	require.NoError(t, err)
	require.Equal(t, "acct_customer1", canceled.RelatedCustomerAccount)
	raw := d.form(testKeyA).get(t, "/v1/identity/verification_sessions/"+vs.ID, nil)
	require.Contains(t, raw.Raw, `"related_customer_account":"acct_customer1"`)
}
