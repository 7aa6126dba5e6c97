package protect

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// GuardConfig tunes brute-force defence. Zero fields take the defaults in
// brackets.
type GuardConfig struct {
	// Name keeps this guard's counters apart from other guards' in the
	// shared store: "login", "console", "console-totp", "client" ["guard"].
	Name string
	// Window is the account counter's window: at most LockAfter attempts
	// per account are evaluated in it, and an account over the limit stays
	// locked until it ends [15m].
	Window time.Duration
	// LockAfter attempts of one account within Window may be checked; the
	// next is refused without checking anything [10].
	LockAfter int
	// IPLockAfter failures from one IP (across accounts) within Window lock
	// that IP on this replica for IPLockFor. It is much higher than
	// LockAfter because many users share one NAT or proxy address, and it
	// counts failures only, never successful sign-ins [50, 15m].
	IPLockAfter int
	IPLockFor   time.Duration
	// MaxKeys bounds the per-IP memory [100 000].
	MaxKeys int
	// Now is the clock [time.Now].
	Now func() time.Time
}

// Guard stops password, TOTP and client-secret guessing.
//
// Per account it is cluster-wide and counted before it is checked: Reserve
// counts the attempt in the shared AttemptStore (one atomic statement in
// Postgres) and only the attempts numbered 1..LockAfter of a window may go
// on to the Argon2id or TOTP comparison. A parallel burst spread over any
// number of replicas therefore gets exactly LockAfter comparisons, not one
// per racer or per replica.
//
// Accounts are keyed by the name the caller submitted, lower-cased and
// trimmed, whether or not such an account exists, so the answers an
// attacker sees are identical for real and made-up names. Keys reach the
// store as "<Name>\x00<account>" and are hashed there.
//
// A successful check refunds its own attempt (Succeed) rather than clearing
// the counter: the owner signing in must not hand a concurrent attacker a
// fresh set of guesses, and the owner's own earlier typos keep counting
// until the window ends.
//
// Per source IP there is only a failure counter kept in this process: a
// rate limit against spraying many accounts from one address, so its
// figure is per replica (N replicas allow N × IPLockAfter).
type Guard struct {
	cfg   GuardConfig
	store storage.AttemptStore

	mu        sync.Mutex
	ips       map[netip.Addr]*failures
	lastSweep time.Time
}

// Decision is the verdict of Reserve.
type Decision struct {
	// Allowed means the secret may be checked now.
	Allowed bool
	// RetryAfter is, when refused, the time until the lock lifts.
	RetryAfter time.Duration
}

// failures is a sliding-window log of one IP's failure times, capped at the
// lock threshold (more entries cannot change any decision).
type failures struct {
	times       []time.Time
	lockedUntil time.Time
}

// NewGuard returns a Guard that keeps its per-account counters in store.
func NewGuard(store storage.AttemptStore, cfg GuardConfig) *Guard {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Window, 15*time.Minute)
	def(&cfg.IPLockFor, 15*time.Minute)
	defInt(&cfg.LockAfter, 10)
	defInt(&cfg.IPLockAfter, 50)
	defInt(&cfg.MaxKeys, 100_000)
	if cfg.Name == "" {
		cfg.Name = "guard"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Guard{cfg: cfg, store: store, ips: make(map[netip.Addr]*failures)}
}

func normalizeAccount(a string) string { return strings.ToLower(strings.TrimSpace(a)) }

func (g *Guard) key(account string) string {
	return g.cfg.Name + "\x00" + normalizeAccount(account)
}

// Reserve counts one attempt for account from ip and says whether its
// secret may be checked. Call it before any lookup, hashing or TOTP work,
// with the same arguments whether or not the account exists; answer a
// refusal with 429 and Retry-After (or a generic "try again later" page).
// A store error must fail closed: the caller checks nothing.
func (g *Guard) Reserve(ctx context.Context, account string, ip netip.Addr) (Decision, error) {
	now := g.cfg.Now()
	if wait := g.ipLocked(ip, now); wait > 0 {
		return Decision{RetryAfter: wait}, nil
	}
	n, end, err := g.store.AddAttempt(ctx, g.key(account), g.cfg.Window, now)
	if err != nil {
		return Decision{}, fmt.Errorf("protect: reserve attempt: %w", err)
	}
	if n > g.cfg.LockAfter {
		return Decision{RetryAfter: max(end.Sub(now), time.Second)}, nil
	}
	return Decision{Allowed: true}, nil
}

// Fail records that a reserved attempt from ip failed. The account's
// attempt was already counted by Reserve; this feeds the per-IP limit.
func (g *Guard) Fail(ip netip.Addr) {
	if !ip.IsValid() {
		return
	}
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweep(now)
	f := g.ips[ip]
	if f == nil {
		f = &failures{}
		g.ips[ip] = f
	}
	f.add(now, g.cfg.Window, g.cfg.IPLockAfter, g.cfg.IPLockFor)
}

// Succeed gives back the attempt a successful check reserved. The IP's
// failures are kept on purpose: an attacker spraying many accounts from one
// address must not reset its counter by signing in to an account of its
// own. An error only means one attempt stays counted until the window ends.
func (g *Guard) Succeed(ctx context.Context, account string) error {
	if err := g.store.RefundAttempt(ctx, g.key(account), g.cfg.Now()); err != nil {
		return fmt.Errorf("protect: refund attempt: %w", err)
	}
	return nil
}

// attemptKey is the context key of a pendingAttempt.
type attemptKey struct{}

// pendingAttempt is an attempt announced with WithAttempt and reserved by
// Gate if a secret is actually compared.
type pendingAttempt struct {
	g       *Guard
	account string
	ip      netip.Addr
	// refusedFor is Gate's RetryAfter in nanoseconds once it refused.
	refusedFor atomic.Int64
	// counted says Gate reserved this attempt (a secret was compared).
	counted atomic.Bool
	// storeErr is the error that kept Gate from counting, if any: the
	// hasher's caller may wrap it beyond recognition (fosite turns it into
	// invalid_client), so the handler asks for it here.
	storeErr atomic.Pointer[error]
}

// WithAttempt returns ctx carrying an attempt for account from ip. Nothing
// is counted yet: Gate reserves it when the request reaches an Argon2id
// comparison. A credential the verification cache already knows costs no
// comparison and so no attempt, which keeps a busy client's parallel
// requests from ever counting against its own limit; every guess of a
// wrong secret is a comparison and is counted before it runs.
func (g *Guard) WithAttempt(ctx context.Context, account string, ip netip.Addr) context.Context {
	return context.WithValue(ctx, attemptKey{}, &pendingAttempt{g: g, account: account, ip: ip})
}

// ErrLocked is Gate's refusal: the account (or address) has used up its
// attempts for now.
var ErrLocked = errors.New("protect: too many attempts")

// Gate is the hook the verification cache runs before each Argon2id
// comparison (keys/hash.CacheConfig.Gate). It reserves the attempt that
// ctx carries (WithAttempt), refuses with ErrLocked when the account is
// over its limit, and refunds the attempt when the comparison succeeds.
// Without an attempt in ctx it allows everything.
func Gate(ctx context.Context) (func(ok bool), error) {
	a, _ := ctx.Value(attemptKey{}).(*pendingAttempt)
	if a == nil {
		return func(bool) {}, nil
	}
	d, err := a.g.Reserve(ctx, a.account, a.ip)
	if err != nil {
		a.storeErr.Store(&err)
		return nil, err
	}
	a.counted.Store(true)
	if !d.Allowed {
		a.refusedFor.Store(int64(d.RetryAfter))
		return nil, ErrLocked
	}
	return func(ok bool) {
		if ok {
			// A lost refund leaves one attempt counted until the window
			// ends; nothing to do about it here.
			_ = a.g.Succeed(ctx, a.account)
		}
	}, nil
}

// Refused reports whether Gate refused the attempt ctx carries, and how
// long the caller should wait.
func Refused(ctx context.Context) (time.Duration, bool) {
	a, _ := ctx.Value(attemptKey{}).(*pendingAttempt)
	if a == nil {
		return 0, false
	}
	d := time.Duration(a.refusedFor.Load())
	return d, d > 0
}

// GateError returns the error that kept Gate from counting the attempt ctx
// carries (the store was unavailable), or nil. The comparison did not run.
func GateError(ctx context.Context) error {
	a, _ := ctx.Value(attemptKey{}).(*pendingAttempt)
	if a == nil {
		return nil
	}
	if e := a.storeErr.Load(); e != nil {
		return *e
	}
	return nil
}

// ipLocked returns how long ip stays locked on this replica, or zero.
func (g *Guard) ipLocked(ip netip.Addr, now time.Time) time.Duration {
	if !ip.IsValid() {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.ips[ip]; f != nil && now.Before(f.lockedUntil) {
		return f.lockedUntil.Sub(now)
	}
	return 0
}

func (f *failures) count(now time.Time, window time.Duration) int {
	cut := now.Add(-window)
	i := 0
	for i < len(f.times) && !f.times[i].After(cut) {
		i++
	}
	f.times = f.times[i:]
	return len(f.times)
}

func (f *failures) add(now time.Time, window time.Duration, lockAfter int, lockFor time.Duration) {
	f.count(now, window)
	f.times = append(f.times, now)
	if len(f.times) > lockAfter {
		f.times = f.times[len(f.times)-lockAfter:]
	}
	if len(f.times) >= lockAfter && !now.Before(f.lockedUntil) {
		f.lockedUntil = now.Add(lockFor)
		// The lock is the penalty; counting starts afresh after it.
		f.times = f.times[:0]
	}
}

// sweep drops entries with nothing left to remember, at most once a minute
// or when the map is full; if still full, arbitrary entries go (bounded
// memory beats perfect accounting under a flood of distinct addresses).
func (g *Guard) sweep(now time.Time) {
	if len(g.ips) < g.cfg.MaxKeys && now.Sub(g.lastSweep) < time.Minute {
		return
	}
	g.lastSweep = now
	for k, f := range g.ips {
		if f.count(now, g.cfg.Window) == 0 && !now.Before(f.lockedUntil) {
			delete(g.ips, k)
		}
	}
	for k := range g.ips {
		if len(g.ips) < g.cfg.MaxKeys*9/10 {
			break
		}
		delete(g.ips, k)
	}
}

// Counted says whether Gate reserved the attempt ctx carries, that is,
// whether a secret was compared for it.
func Counted(ctx context.Context) bool {
	a, _ := ctx.Value(attemptKey{}).(*pendingAttempt)
	return a != nil && a.counted.Load()
}

// CountFailure counts a failed authentication of account that compared no
// secret (a private_key_jwt assertion: its signature cannot be guessed, so
// counting after the check gives nothing away). The count is the shared
// one of Reserve, so every replica sees it. It answers whether the account
// is now over its limit, and for how long: the failure is then answered
// 429 like a refused secret guess, while a valid assertion still passes,
// so junk sent in a client's name cannot lock the client out.
func (g *Guard) CountFailure(ctx context.Context, account string) (time.Duration, bool, error) {
	d, err := g.Reserve(ctx, account, netip.Addr{})
	if err != nil || d.Allowed {
		return 0, false, err
	}
	return d.RetryAfter, true, nil
}
