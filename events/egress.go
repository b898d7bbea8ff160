package events

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// AddressClass says what kind of network an IP address belongs to, as far as webhook deliveries care.
type AddressClass int

// The address classes. Every class but AddressPublic is refused unless an AddressPolicy lets it through.
const (
	// AddressPublic is any globally routable address: deliveries may connect to it.
	AddressPublic AddressClass = iota
	// AddressLoopback is 127.0.0.0/8 and ::1: the host identityd runs on.
	AddressLoopback
	// AddressPrivate is RFC 1918 (10/8, 172.16/12, 192.168/16) and IPv6 unique-local (fc00::/7).
	AddressPrivate
	// AddressShared is the carrier-grade NAT range 100.64.0.0/10 (RFC 6598). It is not globally routable,
	// and inside clouds and overlay networks it reaches internal services (Alibaba Cloud's metadata service
	// is 100.100.100.200; Tailscale gives its nodes addresses there).
	AddressShared
	// AddressLinkLocal is 169.254.0.0/16 and fe80::/10, where cloud metadata services answer (169.254.169.254).
	AddressLinkLocal
	// AddressUnspecified is 0.0.0.0/8 and ::; a connection to it reaches the local host.
	AddressUnspecified
	// AddressMulticast is 224.0.0.0/4 and ff00::/8.
	AddressMulticast
	// AddressReserved is 240.0.0.0/4 (with the broadcast address), IPv6 site-local fec0::/10 and the
	// deprecated IPv4-compatible ::/96: nothing a receiver lives on.
	AddressReserved
)

var addressClassNames = [...]string{AddressPublic: "public", AddressLoopback: "loopback", AddressPrivate: "private",
	AddressShared: "shared (carrier-grade NAT)", AddressLinkLocal: "link-local", AddressUnspecified: "unspecified",
	AddressMulticast: "multicast", AddressReserved: "reserved"}

// String names the class in error messages.
func (c AddressClass) String() string {
	if c < 0 || int(c) >= len(addressClassNames) {
		return fmt.Sprintf("AddressClass(%d)", int(c))
	}
	return addressClassNames[c]
}

// classRanges lists every non-public range; the first that holds an address gives its class, so the
// single addresses :: and ::1 come before ::/96.
var classRanges = []struct {
	prefix netip.Prefix
	class  AddressClass
}{
	{netip.MustParsePrefix("0.0.0.0/8"), AddressUnspecified},
	{netip.MustParsePrefix("10.0.0.0/8"), AddressPrivate},
	{netip.MustParsePrefix("100.64.0.0/10"), AddressShared},
	{netip.MustParsePrefix("127.0.0.0/8"), AddressLoopback},
	{netip.MustParsePrefix("169.254.0.0/16"), AddressLinkLocal},
	{netip.MustParsePrefix("172.16.0.0/12"), AddressPrivate},
	{netip.MustParsePrefix("192.168.0.0/16"), AddressPrivate},
	{netip.MustParsePrefix("224.0.0.0/4"), AddressMulticast},
	{netip.MustParsePrefix("240.0.0.0/4"), AddressReserved},
	{netip.MustParsePrefix("::/128"), AddressUnspecified},
	{netip.MustParsePrefix("::1/128"), AddressLoopback},
	{netip.MustParsePrefix("::/96"), AddressReserved},
	{netip.MustParsePrefix("fc00::/7"), AddressPrivate},
	{netip.MustParsePrefix("fe80::/10"), AddressLinkLocal},
	{netip.MustParsePrefix("fec0::/10"), AddressReserved},
	{netip.MustParsePrefix("ff00::/8"), AddressMulticast},
}

// nat64 is the well-known NAT64 prefix (RFC 6052): its addresses stand for the IPv4 address in their last
// 32 bits, and are classed as that address.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Classify returns the class of ip. An IPv4-mapped IPv6 address (::ffff:127.0.0.1) and a NAT64 address are
// classed as the IPv4 address they stand for; a zone is ignored.
func Classify(ip netip.Addr) AddressClass {
	ip = canonical(ip)
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	for _, r := range classRanges {
		if r.prefix.Contains(ip) {
			return r.class
		}
	}
	return AddressPublic
}

func canonical(ip netip.Addr) netip.Addr { return ip.WithZone("").Unmap() }

// AddressPolicy decides which addresses webhook deliveries may connect to. The zero value lets only
// public addresses through.
type AddressPolicy struct {
	// AllowPrivate lets loopback, private and shared (carrier-grade NAT) addresses through, for tests and
	// receivers on the local network. Link-local (cloud metadata), unspecified, multicast and reserved
	// addresses stay refused unless AllowCIDRs holds them.
	AllowPrivate bool
	// AllowCIDRs lets every address they hold through, whatever its class.
	AllowCIDRs []netip.Prefix
}

// RefusedAddressError is the error of a connection, or of an endpoint URL, whose address the policy
// refuses. Its text names the class of the address, never the address or the URL.
type RefusedAddressError struct {
	Class AddressClass
}

// Error implements error.
func (e *RefusedAddressError) Error() string {
	return "webhook deliveries may not connect to a " + e.Class.String() + " address"
}

// Check returns nil when deliveries may connect to ip, and a *RefusedAddressError when they may not.
func (p AddressPolicy) Check(ip netip.Addr) error {
	class := Classify(ip)
	if class == AddressPublic {
		return nil
	}
	if p.AllowPrivate && (class == AddressLoopback || class == AddressPrivate || class == AddressShared) {
		return nil
	}
	for _, allowed := range p.AllowCIDRs {
		if allowed.Contains(canonical(ip)) || allowed.Contains(ip.WithZone("")) {
			return nil
		}
	}
	return &RefusedAddressError{Class: class}
}

// CheckHost refuses an endpoint URL's host (as url.URL.Hostname returns it) when it is an IP address the
// policy refuses. A name passes: what it resolves to is checked each time a delivery connects.
func (p AddressPolicy) CheckHost(host string) error {
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.Check(ip)
	}
	return nil
}

// control runs after a connection's address is resolved and before it is dialled: the address it checks is
// the one the socket connects to, so a name that resolves to a public address when the URL is checked and to
// a private one later (DNS rebinding) is still refused.
func (p AddressPolicy) control(_ context.Context, _ string, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook deliveries connect to IP addresses only: %w", err)
	}
	return p.Check(ap.Addr())
}

// dialer returns the dialer deliveries connect with: every address it dials is checked against p.
func (p AddressPolicy) dialer() *net.Dialer {
	return &net.Dialer{Timeout: AttemptTimeout, KeepAlive: 30 * time.Second, ControlContext: p.control}
}
