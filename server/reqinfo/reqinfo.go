// Package reqinfo carries the per-request facts that the request pipeline
// establishes once (request id, client IP, user agent, route template and
// its protection kind, the claimed client id) and the facts handlers learn
// later (authenticated client id, subject), through the request context.
// Every layer reads them here instead of deriving them again from the raw
// request.
package reqinfo

import (
	"context"
	"net/netip"
	"sync"
)

type ctxKey struct{}

// Info is created by the outermost middleware of each listener. ID, IP,
// RemoteIP and UserAgent are set before anything else runs and never change;
// the route, its protection kind and the claimed client id are set by the
// route's chain before its handler runs; handlers record what they learn
// (never secrets).
type Info struct {
	ID string
	// IP is the client address, resolved once behind the trusted proxies.
	IP netip.Addr
	// RemoteIP is IP as text, for logs and audit rows.
	RemoteIP  string
	UserAgent string

	mu       sync.Mutex
	clientID string
	claimed  string
	account  string
	subject  string
	route    string
	kind     string
	failed   bool
	expected bool
}

// With returns ctx carrying info.
func With(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, info)
}

// From returns the request's Info, or nil outside a request.
func From(ctx context.Context) *Info {
	info, _ := ctx.Value(ctxKey{}).(*Info)
	return info
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	if info := From(ctx); info != nil {
		return info.ID
	}
	return ""
}

// ClientIP returns the resolved client address in ctx, or the zero Addr.
func ClientIP(ctx context.Context) netip.Addr {
	if info := From(ctx); info != nil {
		return info.IP
	}
	return netip.Addr{}
}

// ClaimedClientID returns the client id the request claims in ctx, or "".
func ClaimedClientID(ctx context.Context) string {
	return From(ctx).ClaimedClientID()
}

func (i *Info) set(f func()) {
	if i == nil {
		return
	}
	i.mu.Lock()
	f()
	i.mu.Unlock()
}

func get[T any](i *Info, f func() T) T {
	if i == nil {
		var zero T
		return zero
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return f()
}

// SetClientID records the authenticated OAuth client. Nil-safe.
func (i *Info) SetClientID(id string) { i.set(func() { i.clientID = id }) }

// ClientID returns the authenticated client id. Nil-safe.
func (i *Info) ClientID() string { return get(i, func() string { return i.clientID }) }

// SetClaimedClientID records the client id the request claims (HTTP Basic
// user, the client_id parameter, or a client assertion's sub/iss). It is
// unauthenticated: it keys limits, guards and blocks, never grants. Nil-safe.
func (i *Info) SetClaimedClientID(id string) { i.set(func() { i.claimed = id }) }

// ClaimedClientID returns the claimed client id. Nil-safe.
func (i *Info) ClaimedClientID() string { return get(i, func() string { return i.claimed }) }

// SetClaimedAccount records the account a sign-in form names (the
// username, normalized). Unauthenticated, like the claimed client id: it
// keys per-account limits. Nil-safe.
func (i *Info) SetClaimedAccount(a string) { i.set(func() { i.account = a }) }

// ClaimedAccount returns the claimed account. Nil-safe.
func (i *Info) ClaimedAccount() string { return get(i, func() string { return i.account }) }

// SetSubject records the authenticated end user or API key owner. Nil-safe.
func (i *Info) SetSubject(sub string) { i.set(func() { i.subject = sub }) }

// Subject returns the recorded subject. Nil-safe.
func (i *Info) Subject() string { return get(i, func() string { return i.subject }) }

// SetRoute records the matched route template (never the raw path, which may
// carry ids) and the name of its protection kind. Nil-safe.
func (i *Info) SetRoute(route, kind string) { i.set(func() { i.route, i.kind = route, kind }) }

// Route returns the matched route template, or "" when none matched.
func (i *Info) Route() string { return get(i, func() string { return i.route }) }

// Kind returns the matched route's protection kind, or "".
func (i *Info) Kind() string { return get(i, func() string { return i.kind }) }

// MarkFailure records that the request is a failure signal although its
// status does not say so (an introspection of an invalid token answers 200
// {"active":false}). The rate limiter counts failures per source address.
// Nil-safe.
func (i *Info) MarkFailure() { i.set(func() { i.failed = true }) }

// Failed reports whether MarkFailure was called. Nil-safe.
func (i *Info) Failed() bool { return get(i, func() bool { return i.failed }) }

// MarkExpected records that the request's 4xx answer is part of the
// protocol, not a failure signal: a device polling the token endpoint is
// answered authorization_pending (400) until its user decides (RFC 8628
// §3.5), and thousands of devices behind one address must not spend that
// address's failure budget. MarkFailure still wins. Nil-safe.
func (i *Info) MarkExpected() { i.set(func() { i.expected = true }) }

// Expected reports whether MarkExpected was called. Nil-safe.
func (i *Info) Expected() bool { return get(i, func() bool { return i.expected }) }
