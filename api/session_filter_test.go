package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestListSessions_RelatedCustomerAccount(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	const sessions = "/v1/identity/verification_sessions"
	var mine []string // newest first
	for i := range 7 {
		form := "type=document"
		if i%2 == 0 {
			form += "&related_customer_account=acct_c1"
		}
		id := b.createSession(t, keyA, form)
		if i%2 == 0 {
			mine = append([]string{id}, mine...)
		}
		b.clock.Advance(time.Second)
	}
	b.createSession(t, keyA, "type=document&related_customer_account=acct_c2")
	b.createSession(t, keyA, "type=document&related_customer=acct_c1")
	b.createSession(t, keyB, "type=document&related_customer_account=acct_c1") // another account's

	const filter = sessions + "?related_customer_account=acct_c1"
	require.Equal(t, mine, dataIDs(t, b.get(t, filter+"&limit=100")))
	require.Equal(t, mine, dataIDs(t, b.get(t, filter+"&limit=100&expand[]=data.verified_outputs")), "the decoding path")

	first := b.get(t, filter+"&limit=3")
	require.Equal(t, mine[:3], dataIDs(t, first))
	require.Equal(t, true, first.body["has_more"])
	rest := b.get(t, filter+"&limit=3&starting_after="+mine[2])
	require.Equal(t, mine[3:], dataIDs(t, rest))
	require.Equal(t, false, rest.body["has_more"])
	back := b.get(t, filter+"&limit=2&ending_before="+mine[3])
	require.Equal(t, mine[1:3], dataIDs(t, back))
	require.Equal(t, true, back.body["has_more"])

	canceled := mine[1]
	require.Equal(t, http.StatusOK, b.post(t, sessions+"/"+canceled+"/cancel", "").status)
	require.Equal(t, []string{canceled}, dataIDs(t, b.get(t, filter+"&status=canceled")))
	require.Empty(t, dataIDs(t, b.get(t, sessions+"?related_customer_account=acct_none")))
	both := b.createSession(t, keyA, "type=document&client_reference_id=r1&related_customer_account=acct_c1")
	b.createSession(t, keyA, "type=document&client_reference_id=r1")
	for _, expand := range []string{"", "&expand[]=data.verified_outputs"} {
		require.Equal(t, []string{both}, dataIDs(t, b.get(t, filter+"&client_reference_id=r1"+expand)),
			"read from the client_reference_id index, matched on related_customer_account")
	}

	for _, bad := range []string{"related_customer_account=", "related_customer_account[x]=acct_c1",
		"related_customer_account[]=acct_c1"} {
		res := b.get(t, sessions+"?"+bad)
		require.Equal(t, http.StatusBadRequest, res.status, "%s: %s", bad, res.raw)
		require.Contains(t, res.errField("param"), "related_customer_account", bad)
		require.Equal(t, "invalid_request_error", res.errField("type"))
	}
}
