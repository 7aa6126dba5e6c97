// Package egress is Bulwark's one way out to URLs that clients register
// (jwks_uri, logo_uri checks, back-channel logout URIs): an HTTP client that
// refuses to reach the server's own network.
//
// The address check runs in the dialer, on the IP address actually being
// connected to, after DNS resolution. Hostnames that resolve to a private
// address, DNS rebinding between a check and the fetch, and the many
// spellings of one address (2130706433, 0x7f.1, [::ffff:127.0.0.1]) are all
// refused the same way: whatever the name, the connection to a forbidden
// address is never made. Proxies from the environment are ignored (a proxy
// would connect on our behalf and bypass the check), redirects are not
// followed, and every response body is read up to a size cap within a
// timeout.
package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// ErrForbiddenAddress is returned when a URL's host is, or resolves to, an
// address outside the public internet (loopback, private, link-local,
// CGNAT, multicast, reserved) that the operator has not allowed.
var ErrForbiddenAddress = errors.New("egress: address not allowed")

// ErrTooLarge is returned when a response body exceeds the size cap.
var ErrTooLarge = errors.New("egress: response too large")

// Defaults for Options left zero.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultMaxBytes = 64 << 10
)

// Options configure a Client.
type Options struct {
	// Timeout bounds one request, from dialing to the last body byte.
	Timeout time.Duration
	// MaxBytes caps a response body read by Fetch.
	MaxBytes int64
	// Allowed are networks that may be reached although they are not
	// public, such as an internal relying party's subnet. Tests allow
	// 127.0.0.0/8 for their receivers. Empty allows public addresses only.
	Allowed []netip.Prefix
	// AllowHTTP permits plain http URLs. Off, only https is fetched.
	AllowHTTP bool
}

// Client fetches registered URLs under the egress rules.
type Client struct {
	http     *http.Client
	maxBytes int64
	opts     Options
}

// New returns a Client for opts.
func New(opts Options) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	c := &Client{maxBytes: opts.MaxBytes, opts: opts}
	dialer := &net.Dialer{Timeout: opts.Timeout, Control: c.control}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	c.http = &http.Client{
		Transport: transport,
		Timeout:   opts.Timeout,
		// A redirect would lead somewhere the caller never checked.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// HTTPClient returns the underlying client, for libraries that take an
// *http.Client. It keeps every rule but the body size cap, which only
// Fetch and Do enforce.
func (c *Client) HTTPClient() *http.Client { return c.http }

// control runs for every connection after resolution, with the address
// about to be dialed.
func (c *Client) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
	}
	if !c.Permitted(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, ap.Addr())
	}
	return nil
}

// Permitted reports whether addr may be connected to: a public unicast
// address, or one inside an allowed network.
func (c *Client) Permitted(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range c.opts.Allowed {
		if p.Contains(addr) {
			return true
		}
	}
	return IsPublic(addr)
}

// nonPublic lists special-purpose ranges the netip predicates do not cover
// (RFC 6890 and successors).
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // CGNAT shared address space
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: reaches IPv4 through a translator
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds an IPv4 address
	netip.MustParsePrefix("2001::/32"),       // Teredo: embeds an IPv4 address
	netip.MustParsePrefix("100::/64"),        // discard-only
}

// IsPublic reports whether addr is a globally routable unicast address.
func IsPublic(addr netip.Addr) bool {
	addr = addr.Unmap()
	if !addr.IsValid() || !addr.IsGlobalUnicast() || addr.IsPrivate() ||
		addr.IsLoopback() || addr.IsLinkLocalUnicast() || addr.IsMulticast() || addr.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// CheckURL validates raw for registration: an absolute URL with an allowed
// scheme, no user information, and a host whose every resolved address is
// permitted. It gives an operator a clear refusal up front; the dialer
// still checks each connection, so a later DNS change cannot slip past.
func (c *Client) CheckURL(ctx context.Context, raw string) error {
	u, err := c.parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if addr, err := netip.ParseAddr(host); err == nil {
		if !c.Permitted(addr) {
			return fmt.Errorf("%w: %s", ErrForbiddenAddress, addr)
		}
		return nil
	}
	// The lookup is bounded like a fetch, whatever the caller's context.
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("egress: resolve %s: %w", host, err)
	}
	for _, a := range addrs {
		if !c.Permitted(a) {
			return fmt.Errorf("%w: %s resolves to %s", ErrForbiddenAddress, host, a.Unmap())
		}
	}
	return nil
}

func (c *Client) parse(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		return nil, errors.New("egress: not an absolute URL")
	case u.User != nil:
		return nil, errors.New("egress: URL must not contain user information")
	case u.Scheme == "https":
	case u.Scheme == "http" && c.opts.AllowHTTP:
	default:
		return nil, fmt.Errorf("egress: scheme %q not allowed", u.Scheme)
	}
	return u, nil
}

// Do sends req under the egress rules and returns the status and at most
// MaxBytes of the body (ErrTooLarge beyond). The URL's scheme is checked;
// the address is checked when dialing.
func (c *Client) Do(req *http.Request) (int, []byte, error) {
	if _, err := c.parse(req.URL.String()); err != nil {
		return 0, nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("egress: %s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("egress: read %s: %w", req.URL.Redacted(), err)
	}
	if int64(len(body)) > c.maxBytes {
		return resp.StatusCode, nil, fmt.Errorf("%w: more than %d bytes from %s", ErrTooLarge, c.maxBytes, req.URL.Redacted())
	}
	return resp.StatusCode, body, nil
}

// Fetch GETs raw and returns its body when the status is 200.
func (c *Client) Fetch(ctx context.Context, raw string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	status, body, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("egress: GET %s: status %d", req.URL.Redacted(), status)
	}
	return body, nil
}
