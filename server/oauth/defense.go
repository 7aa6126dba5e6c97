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

// Guard is the brute-force defence (protect.Guard): Reserve counts the
// attempt for the account, on every replica at once, before any secret is
// checked. Accounts are keyed by what was submitted, so the answer is the
// same whether or not the account exists.
type Guard interface {
	Reserve(ctx context.Context, account string, ip netip.Addr) (protect.Decision, error)
	Succeed(ctx context.Context, account string) error
}

// ClientGuard is the client-secret guard (protect.Guard). The attempt it
// announces for the claimed client id is counted by protect.Gate inside the
// verification cache, right before an Argon2id comparison, so cached
// (already verified) secrets of busy clients are never counted.
//
// Methods that compare no secret (private_key_jwt) have their failures
// counted after the check (CountFailure).
type ClientGuard interface {
	WithAttempt(ctx context.Context, account string, ip netip.Addr) context.Context
	CountFailure(ctx context.Context, account string) (time.Duration, bool, error)
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
	ClientGuard ClientGuard
	Signals     Signals
	Metrics     Counters
	// DeviceGuard throttles device user code entry (device.go): keyed on
	// the address (failures only) and on the device code (every entry).
	DeviceGuard Guard
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
// lock there would lock out every user behind one NAT or load balancer
// after a few typos. Failures per address are counted by the limiter's
// failure budget and by the detector's credential-stuffing rule (many
// distinct accounts failing from one address), which target the offending
// address only.
//
// reserve counts an attempt for account with g (a nil g allows all) and
// says whether its secret may be checked.
func reserve(ctx context.Context, g Guard, account string, ip netip.Addr) (protect.Decision, error) {
	if g == nil {
		return protect.Decision{Allowed: true}, nil
	}
	return g.Reserve(ctx, account, ip)
}

// guardSucceeded refunds the attempt a successful check reserved. A lost
// refund only leaves one attempt counted until the window ends.
func (p *Provider) guardSucceeded(ctx context.Context, g Guard, account string) {
	if g == nil {
		return
	}
	if err := g.Succeed(ctx, account); err != nil {
		p.log.WithError(err).Warn("guard refund")
	}
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
