package api_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
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
