package api_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

// TestWebhookEndpoints_RefusedAddress: with the default address policy an endpoint URL whose host is an IP
// literal deliveries may not connect to is a 400 naming url, and nothing is stored or changed.
func TestWebhookEndpoints_RefusedAddress(t *testing.T) {
	t.Parallel()
	refused := map[string]string{
		"http://127.0.0.1:4242/hook":          "loopback",
		"http://[::1]/hook":                   "loopback",
		"http://[::ffff:127.0.0.1]/hook":      "loopback",
		"http://10.1.2.3/hook":                "private",
		"http://172.16.0.9/hook":              "private",
		"https://192.168.1.20/hook":           "private",
		"https://[fd00:ec2::254]/hook":        "private",
		"http://100.100.100.200/latest":       "shared (carrier-grade NAT)",
		"http://169.254.169.254/latest/meta":  "link-local",
		"http://[::ffff:169.254.169.254]/":    "link-local",
		"http://[fe80::1%25eth0]/hook":        "link-local",
		"http://0.0.0.0:4242/hook":            "unspecified",
		"http://[::]/hook":                    "unspecified",
		"http://224.0.0.1/hook":               "multicast",
		"http://[ff02::1]/hook":               "multicast",
		"http://255.255.255.255/hook":         "reserved",
		"http://[64:ff9b::a9fe:a9fe]/latest/": "link-local",
	}
	b := setupAPI(t)
	ok := b.post(t, "/v1/webhook_endpoints", "url=https://merchant.example/hook&enabled_events[]=*")
	require.Equal(t, http.StatusOK, ok.status, ok.raw)
	id := ok.str("id")
	before := b.snapshot(t)
	for target, class := range refused {
		form := "url=" + url.QueryEscape(target) + "&enabled_events[]=*"
		for _, path := range []string{"/v1/webhook_endpoints", "/v1/webhook_endpoints/" + id} {
			res := b.post(t, path, form)
			require.Equal(t, http.StatusBadRequest, res.status, "%s %s: %s", path, target, res.raw)
			require.Equal(t, "url", res.errField("param"))
			require.Equal(t, "url_invalid", res.errField("code"))
			require.Contains(t, res.errField("message"), "may not connect to a "+class+" address", target)
			u, err := url.Parse(target)
			require.NoError(t, err)
			require.NotContains(t, res.errField("message"), u.Hostname(), "the message never echoes the value")
		}
	}
	requireUnchanged(t, before, b.snapshot(t), "refused endpoint URLs")

	// A name is not resolved here: it is checked each time a delivery connects.
	named := b.post(t, "/v1/webhook_endpoints", "url=http://localhost:4242/hook&enabled_events[]=*")
	require.Equal(t, http.StatusOK, named.status, named.raw)
	public := b.post(t, "/v1/webhook_endpoints/"+id, "url=https://93.184.215.14/hook")
	require.Equal(t, http.StatusOK, public.status, public.raw)
}

func TestWebhookEndpoints_RollSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("ShowsTheNewSecretOnceAndStoresItOnlyInTheRecord", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		created := b.post(t, "/v1/webhook_endpoints", "url=https://merchant.example/hook&enabled_events[]=*")
		require.Equal(t, http.StatusOK, created.status, created.raw)
		id, oldSecret := created.str("id"), created.str("secret")
		roll := request{method: http.MethodPost, path: "/v1/webhook_endpoints/" + id + "/roll_secret", key: keyA,
			body: "expires_in=3600", header: map[string]string{"Idempotency-Key": "roll-" + id}}
		res := b.do(t, roll)
		require.Equal(t, http.StatusOK, res.status, res.raw)
		require.Equal(t, id, res.str("id"))
		require.Equal(t, "webhook_endpoint", res.str("object"))
		newSecret := res.str("secret")
		require.True(t, strings.HasPrefix(newSecret, "whsec_"))
		require.NotEqual(t, oldSecret, newSecret)

		replay := b.do(t, roll)
		require.Equal(t, "true", replay.header.Get("Idempotent-Replayed"))
		require.Equal(t, newSecret, replay.str("secret"), "a replay shows the secret again")
		require.NotContains(t, b.get(t, "/v1/webhook_endpoints/"+id).raw, "secret")

		all, err := storetest.ScanAll(ctx, b.redis.Client)
		require.NoError(t, err)
		for key, v := range all {
			if strings.HasPrefix(key, b.redis.KeyPrefix+":") && strings.Contains(v, newSecret) {
				require.True(t, strings.HasSuffix(key, ":we:"+id), "only the endpoint's record holds the secret, not %s", key)
			}
		}
		_, secrets, err := b.st.SigningSecrets(ctx, store.Scope{Account: "acct_alpha"}, id)
		require.NoError(t, err)
		require.Equal(t, []string{newSecret, oldSecret}, secrets)
		b.clock.Advance(time.Hour)
		_, secrets, err = b.st.SigningSecrets(ctx, store.Scope{Account: "acct_alpha"}, id)
		require.NoError(t, err)
		require.Equal(t, []string{newSecret}, secrets, "expires_in=3600 ends the overlap an hour later")
	})

	t.Run("DefaultOverlapIsADay", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		id := b.post(t, "/v1/webhook_endpoints", "url=https://merchant.example/hook&enabled_events[]=*").str("id")
		require.Equal(t, http.StatusOK, b.post(t, "/v1/webhook_endpoints/"+id+"/roll_secret", "").status)
		sc := store.Scope{Account: "acct_alpha"}
		b.clock.Advance(24*time.Hour - time.Second)
		_, secrets, err := b.st.SigningSecrets(ctx, sc, id)
		require.NoError(t, err)
		require.Len(t, secrets, 2)
		b.clock.Advance(time.Second)
		_, secrets, err = b.st.SigningSecrets(ctx, sc, id)
		require.NoError(t, err)
		require.Len(t, secrets, 1)
	})

	t.Run("BadExpiresInChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		id := b.post(t, "/v1/webhook_endpoints", "url=https://merchant.example/hook&enabled_events[]=*").str("id")
		before := b.snapshot(t)
		for _, v := range []string{"-1", "604801", "1.5", "soon", "", "99999999999999999999", "9223372037"} {
			res := b.post(t, "/v1/webhook_endpoints/"+id+"/roll_secret", "expires_in="+v)
			require.Equal(t, http.StatusBadRequest, res.status, "%q: %s", v, res.raw)
			require.Equal(t, "expires_in", res.errField("param"), v)
			require.Empty(t, res.str("secret"))
		}
		res := b.post(t, "/v1/webhook_endpoints/"+id+"/roll_secret", "secret=whsec_mine")
		require.Equal(t, http.StatusBadRequest, res.status, res.raw)
		require.Equal(t, "secret", res.errField("param"))
		requireUnchanged(t, before, b.snapshot(t), "refused rolls")
		require.Equal(t, http.StatusOK, b.post(t, "/v1/webhook_endpoints/"+id+"/roll_secret", "expires_in=604800").status)
		require.Equal(t, http.StatusOK, b.post(t, "/v1/webhook_endpoints/"+id+"/roll_secret", "expires_in=0").status)
	})

	t.Run("UnknownOrDeletedIs404", func(t *testing.T) {
		t.Parallel()
		b := setupAPI(t)
		id := b.post(t, "/v1/webhook_endpoints", "url=https://merchant.example/hook&enabled_events[]=*").str("id")
		other := b.do(t, request{method: http.MethodPost, path: "/v1/webhook_endpoints/" + id + "/roll_secret", key: keyB})
		require.Equal(t, http.StatusNotFound, other.status, "another account's endpoint: %s", other.raw)
		require.Equal(t, http.StatusOK, b.do(t, request{method: http.MethodDelete, path: "/v1/webhook_endpoints/" + id, key: keyA}).status)
		for _, path := range []string{"/v1/webhook_endpoints/" + id + "/roll_secret", "/v1/webhook_endpoints/we_missing/roll_secret"} {
			res := b.post(t, path, "expires_in=60")
			require.Equal(t, http.StatusNotFound, res.status, res.raw)
			require.Equal(t, "resource_missing", res.errField("code"))
		}
	})
}
