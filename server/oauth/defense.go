package oauth

import (
	"context"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/server/reqinfo"
)

// Guard slows down and then locks repeated failures per account and per
// source IP (protect.Guard). Accounts are keyed by what was submitted, so
// the answer is the same whether or not the account exists.
type Guard interface {
	Check(ctx context.Context, account string, ip netip.Addr) (wait time.Duration, locked bool)
	Fail(account string, ip netip.Addr)
	Succeed(account string, ip netip.Addr)
}

// Signals receives security signals for anomaly detection (protect.Detector).
type Signals interface {
	Observe(ctx context.Context, sig protect.Signal, ip netip.Addr, clientID string)
	// ObserveLogin reports a failed sign-in for account (credential
	// stuffing is failures across many accounts from one address).
	ObserveLogin(ctx context.Context, ip netip.Addr, account string)
}

// Counters receives business metrics (server/metrics).
type Counters interface {
	TokensIssued(grant string)
	OAuthError(code string)
}

// Defense is the optional protection the provider consults; nil fields
// disable that part.
type Defense struct {
	// LoginGuard throttles failed sign-ins; ClientGuard throttles failed
	// client authentication at the token endpoint.
	LoginGuard  Guard
	ClientGuard Guard
	Signals     Signals
	Metrics     Counters
}

// clientIP is the caller's address as the server's pipeline resolved it
// once (trusted proxies applied). Outside the pipeline (a handler served
// bare in a test) it is the zero Addr, which the guards treat as unknown.
func (p *Provider) clientIP(r *http.Request) netip.Addr {
	return reqinfo.ClientIP(r.Context())
}

func (p *Provider) observe(r *http.Request, sig protect.Signal, clientID string) {
	if p.cfg.Defense.Signals != nil {
		p.cfg.Defense.Signals.Observe(r.Context(), sig, p.clientIP(r), clientID)
	}
}

// The provider gives the guards no address (netip.Addr{}). The guards
// key on the account (the user name, the claimed client id); a per-address
// delay or lock there would throttle every user behind one NAT or load
// balancer after a few typos. Failures per address are counted by the
// limiter's failure budget and by the detector's credential-stuffing rule
// (many distinct accounts failing from one address), which target the
// offending address only.
//
// throttled answers whether g holds this account back, and how long.
func throttled(ctx context.Context, g Guard, account string, ip netip.Addr) (time.Duration, bool) {
	if g == nil {
		return 0, false
	}
	wait, locked := g.Check(ctx, account, ip)
	return wait, locked || wait > 0
}

func retryAfter(w http.ResponseWriter, wait time.Duration) {
	secs := int64((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
}

func (p *Provider) countToken(grant string) {
	if p.cfg.Defense.Metrics != nil {
		p.cfg.Defense.Metrics.TokensIssued(grant)
	}
}

func (p *Provider) countError(code string) {
	if p.cfg.Defense.Metrics != nil {
		p.cfg.Defense.Metrics.OAuthError(code)
	}
}
