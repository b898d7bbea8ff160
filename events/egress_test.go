package events_test

import (
	"context"
	"net/netip"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]events.AddressClass{
		"8.8.8.8":                 events.AddressPublic,
		"2606:4700:4700::1111":    events.AddressPublic,
		"100.63.255.255":          events.AddressPublic,
		"100.128.0.0":             events.AddressPublic,
		"172.32.0.1":              events.AddressPublic,
		"127.0.0.1":               events.AddressLoopback,
		"127.255.0.9":             events.AddressLoopback,
		"::1":                     events.AddressLoopback,
		"::ffff:127.0.0.1":        events.AddressLoopback,
		"64:ff9b::7f00:1":         events.AddressLoopback,
		"10.1.2.3":                events.AddressPrivate,
		"172.16.0.1":              events.AddressPrivate,
		"172.31.255.255":          events.AddressPrivate,
		"192.168.1.1":             events.AddressPrivate,
		"::ffff:192.168.1.1":      events.AddressPrivate,
		"fd00:ec2::254":           events.AddressPrivate,
		"fc00::1":                 events.AddressPrivate,
		"100.64.0.1":              events.AddressShared,
		"100.100.100.200":         events.AddressShared,
		"169.254.169.254":         events.AddressLinkLocal,
		"::ffff:169.254.169.254":  events.AddressLinkLocal,
		"fe80::1":                 events.AddressLinkLocal,
		"fe80::1%eth0":            events.AddressLinkLocal,
		"0.0.0.0":                 events.AddressUnspecified,
		"0.1.2.3":                 events.AddressUnspecified,
		"::":                      events.AddressUnspecified,
		"224.0.0.1":               events.AddressMulticast,
		"239.255.255.250":         events.AddressMulticast,
		"ff02::1":                 events.AddressMulticast,
		"255.255.255.255":         events.AddressReserved,
		"240.0.0.1":               events.AddressReserved,
		"fec0::1":                 events.AddressReserved,
		"::7f00:1":                events.AddressReserved,
		"64:ff9b::808:808":        events.AddressPublic,
		"2001:db8::ffff:10.0.0.1": events.AddressPublic,
	} {
		require.Equal(t, want, events.Classify(netip.MustParseAddr(addr)), addr)
	}
	require.Equal(t, "link-local", events.AddressLinkLocal.String())
	require.Equal(t, "AddressClass(99)", events.AddressClass(99).String())
}

func TestAddressPolicy_Check(t *testing.T) {
	t.Parallel()
	loopback, private, shared := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("100.64.0.1")
	metadata, public := netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("93.184.215.14")

	t.Run("ZeroValueAllowsPublicOnly", func(t *testing.T) {
		t.Parallel()
		var p events.AddressPolicy
		require.NoError(t, p.Check(public))
		for _, ip := range []netip.Addr{loopback, private, shared, metadata, netip.MustParseAddr("::ffff:10.0.0.1")} {
			err := p.Check(ip)
			var refused *events.RefusedAddressError
			require.ErrorAs(t, err, &refused, ip.String())
			require.NotContains(t, err.Error(), ip.String(), "the error names the class, not the address")
		}
	})
	t.Run("AllowPrivateKeepsMetadataRefused", func(t *testing.T) {
		t.Parallel()
		p := events.AddressPolicy{AllowPrivate: true}
		for _, ip := range []netip.Addr{loopback, private, shared, netip.MustParseAddr("::1"), netip.MustParseAddr("fd12::1"), public} {
			require.NoError(t, p.Check(ip), ip.String())
		}
		for _, ip := range []string{"169.254.169.254", "fe80::1", "0.0.0.0", "224.0.0.1"} {
			require.Error(t, p.Check(netip.MustParseAddr(ip)), ip)
		}
	})
	t.Run("AllowCIDRsLetsOnlyThemThrough", func(t *testing.T) {
		t.Parallel()
		p := events.AddressPolicy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16"),
			netip.MustParsePrefix("169.254.169.254/32")}}
		require.NoError(t, p.Check(netip.MustParseAddr("10.20.3.4")))
		require.NoError(t, p.Check(netip.MustParseAddr("::ffff:10.20.3.4")))
		require.NoError(t, p.Check(metadata))
		require.Error(t, p.Check(netip.MustParseAddr("10.21.0.1")))
		require.Error(t, p.Check(loopback))
	})
	t.Run("CheckHost", func(t *testing.T) {
		t.Parallel()
		var p events.AddressPolicy
		for _, raw := range []string{"http://127.0.0.1:4242/hook", "http://[::1]/", "http://[::ffff:169.254.169.254]/",
			"https://[fe80::1%25eth0]/", "http://10.0.0.7/", "http://0.0.0.0:80/"} {
			u, err := url.Parse(raw)
			require.NoError(t, err)
			require.Error(t, p.CheckHost(u.Hostname()), raw)
		}
		require.NoError(t, p.CheckHost("merchant.example"), "a name is checked when it is dialled")
		require.NoError(t, p.CheckHost("localhost"), "a name is checked when it is dialled")
		require.NoError(t, p.CheckHost("93.184.215.14"))
	})
}

// TestDeliver_AddressPolicy delivers to a loopback receiver under a name (localhost), so the address is
// checked where it is dialled, after resolution.
func TestDeliver_AddressPolicy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		policy    events.AddressPolicy
		delivered bool
	}{
		{"RefusedByDefault", events.AddressPolicy{}, false},
		{"AllowPrivate", events.AddressPolicy{AllowPrivate: true}, true},
		{"AllowCIDROfTheReceiver", events.AddressPolicy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, true},
		{"AllowCIDRElsewhere", events.AddressPolicy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"),
			netip.MustParsePrefix("10.0.0.0/8")}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, b := setupDeliver(t)
			w.HTTP = events.NewHTTPClient(tc.policy)
			rcv := newReceiver(t)
			u, err := url.Parse(rcv.URL)
			require.NoError(t, err)
			target := "http://localhost:" + u.Port() + "/hooks/tok_in_the_path?key=in_the_query"
			ep, _ := newEndpoint(t, b.store, target, "*")
			_, ev := newSession(t, b.store, ep)

			err = w.Deliver(ctx, scope, ev.ID, ep.ID, 1, false)
			as := attempts(t, b.store, ep.ID)
			require.Len(t, as, 1)
			if tc.delivered {
				require.NoError(t, err)
				require.Len(t, rcv.requests(), 1)
				require.Equal(t, store.AttemptDelivered, as[0].Outcome)
				return
			}
			require.Error(t, err)
			require.Empty(t, rcv.requests(), "a refused address is never connected to")
			require.Equal(t, store.AttemptRetrying, as[0].Outcome)
			require.Nil(t, as[0].StatusCode)
			require.Contains(t, *as[0].Error, "webhook deliveries may not connect to a loopback address")
			for _, part := range []string{"localhost", "tok_in_the_path", "in_the_query", "/hooks"} {
				require.NotContains(t, *as[0].Error, part, "an attempt's error never holds the URL")
				require.NotContains(t, err.Error(), part)
			}
		})
	}
}

// BenchmarkAddressPolicy_Check is the cost the address check adds to every connection a delivery dials.
func BenchmarkAddressPolicy_Check(b *testing.B) {
	p := events.AddressPolicy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}
	public, mapped := netip.MustParseAddr("2606:4700:4700::1111"), netip.MustParseAddr("::ffff:169.254.169.254")
	for b.Loop() {
		_ = p.Check(public)
		_ = p.Check(mapped)
	}
}
