package protect

import (
	"net/http"
	"net/netip"
	"strings"
)

// IPResolver finds the address of the client that sent a request.
//
// X-Forwarded-For is trivially forged, so it is only believed when the
// direct peer is a configured trusted proxy. The header is then walked from
// right to left (the right end is what our own proxies appended) and the
// first address that is not itself a trusted proxy is the client. With no
// trusted proxies (the default) the header is ignored entirely.
type IPResolver struct {
	trusted   []netip.Prefix
	untrusted func(peer netip.Addr)
}

// NewIPResolver returns a resolver that trusts X-Forwarded-For only from
// peers inside trustedProxies.
func NewIPResolver(trustedProxies []netip.Prefix) *IPResolver {
	t := make([]netip.Prefix, 0, len(trustedProxies))
	for _, p := range trustedProxies {
		if p.IsValid() {
			t = append(t, p.Masked())
		}
	}
	return &IPResolver{trusted: t}
}

// OnUntrustedForwarded sets f to be called for every request that carries
// X-Forwarded-For or Forwarded but comes from a peer that is not a trusted
// proxy: behind a load balancer that nobody declared with
// --trusted-proxies, every user then shares the balancer's address. Call
// it while assembling the server, before serving; it returns r.
func (r *IPResolver) OnUntrustedForwarded(f func(peer netip.Addr)) *IPResolver {
	r.untrusted = f
	return r
}

// IP returns the client address of req. It returns the zero Addr only when
// RemoteAddr itself is unparseable (never the case for a real listener).
func (r *IPResolver) IP(req *http.Request) netip.Addr {
	peer := parseHostAddr(req.RemoteAddr)
	if !peer.IsValid() || !r.isTrusted(peer) {
		if r.untrusted != nil && (req.Header.Get("X-Forwarded-For") != "" || req.Header.Get("Forwarded") != "") {
			r.untrusted(peer)
		}
		return peer
	}
	hops := req.Header.Values("X-Forwarded-For")
	current := peer
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a := parseHostAddr(strings.TrimSpace(parts[j]))
			if !a.IsValid() {
				// A garbled hop cannot be attributed to anyone; the
				// last trusted proxy that handed it to us is the best
				// answer that cannot be forged.
				return current
			}
			current = a
			if !r.isTrusted(a) {
				return a
			}
		}
	}
	// Every hop was a trusted proxy: the leftmost one is the origin.
	return current
}

func (r *IPResolver) isTrusted(a netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHostAddr accepts "ip", "ip:port" and "[ipv6]:port", and unmaps
// IPv4-in-IPv6 so one client has one key.
func parseHostAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}
