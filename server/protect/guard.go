package protect

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// GuardConfig tunes brute-force defence. Zero fields take the defaults in
// brackets.
type GuardConfig struct {
	// Window is how long a failure counts [15m].
	Window time.Duration
	// FreeFailures are allowed without delay [3].
	FreeFailures int
	// BaseDelay is the first delay after the free failures; each further
	// failure doubles it up to MaxDelay [1s, 30s].
	BaseDelay, MaxDelay time.Duration
	// LockAfter failures of one account within Window lock it for LockFor
	// [10, 15m].
	LockAfter int
	LockFor   time.Duration
	// IPLockAfter failures from one IP (across accounts) lock the IP. It is
	// higher than LockAfter because many users can share one NAT address
	// [50].
	IPLockAfter int
	// MaxKeys bounds memory [100 000].
	MaxKeys int
	// Now is the clock [time.Now].
	Now func() time.Time
}

// Guard slows down and then stops password (or client secret) guessing. It
// tracks failures per account and per IP in sliding windows.
//
// Accounts are keyed by the name the caller submitted, lower-cased, whether
// or not such an account exists, so the delays and locks an attacker sees
// are identical for real and made-up names and reveal nothing. The same
// Guard type serves repeated invalid_client with the client id as account.
//
// State is per replica and bounded; a lock holds on the replica that saw the
// failures (use the Detector for blocks shared by every replica).
type Guard struct {
	cfg GuardConfig

	mu        sync.Mutex
	accounts  map[string]*failures
	ips       map[netip.Addr]*failures
	lastSweep time.Time
}

// failures is a sliding-window log of failure times, capped at the lock
// threshold (more entries cannot change any decision).
type failures struct {
	times       []time.Time
	lockedUntil time.Time
}

// NewGuard returns a Guard for cfg.
func NewGuard(cfg GuardConfig) *Guard {
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
	def(&cfg.BaseDelay, time.Second)
	def(&cfg.MaxDelay, 30*time.Second)
	def(&cfg.LockFor, 15*time.Minute)
	defInt(&cfg.FreeFailures, 3)
	defInt(&cfg.LockAfter, 10)
	defInt(&cfg.IPLockAfter, 50)
	defInt(&cfg.MaxKeys, 100_000)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Guard{cfg: cfg, accounts: make(map[string]*failures), ips: make(map[netip.Addr]*failures)}
}

func normalizeAccount(a string) string { return strings.ToLower(strings.TrimSpace(a)) }

// Check says whether an attempt for account from ip may proceed now. When
// locked is true, wait is the time until the lock expires; otherwise a
// positive wait is the progressive delay still to run since the last
// failure. Callers should answer 429 with Retry-After (or a generic "try
// again later" page) rather than sleep, which would tie up goroutines; and
// they must do so before checking the password, with the same answer
// whether the account exists or not.
func (g *Guard) Check(_ context.Context, account string, ip netip.Addr) (wait time.Duration, locked bool) {
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, f := range []*failures{g.accounts[normalizeAccount(account)], g.ips[ip]} {
		if f == nil {
			continue
		}
		if now.Before(f.lockedUntil) {
			if d := f.lockedUntil.Sub(now); !locked || d > wait {
				wait = d
			}
			locked = true
			continue
		}
		if locked {
			continue
		}
		n := f.count(now, g.cfg.Window)
		if n == 0 {
			continue
		}
		if d := f.times[len(f.times)-1].Add(g.delay(n)).Sub(now); d > wait {
			wait = d
		}
	}
	return wait, locked
}

// delay is the progressive delay after n failures: none for the free ones,
// then BaseDelay doubling per failure up to MaxDelay.
func (g *Guard) delay(n int) time.Duration {
	if n <= g.cfg.FreeFailures {
		return 0
	}
	d := g.cfg.BaseDelay
	for i := g.cfg.FreeFailures + 1; i < n && d < g.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, g.cfg.MaxDelay)
}

// Fail records a failed attempt for account from ip.
func (g *Guard) Fail(account string, ip netip.Addr) {
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweep(now)
	acct := normalizeAccount(account)
	fa := g.accounts[acct]
	if fa == nil {
		fa = &failures{}
		g.accounts[acct] = fa
	}
	fa.add(now, g.cfg.Window, g.cfg.LockAfter, g.cfg.LockFor)
	if ip.IsValid() {
		fi := g.ips[ip]
		if fi == nil {
			fi = &failures{}
			g.ips[ip] = fi
		}
		fi.add(now, g.cfg.Window, g.cfg.IPLockAfter, g.cfg.LockFor)
	}
}

// Succeed forgets the account's failures. The IP's failures are kept on
// purpose: an attacker spraying many accounts from one address must not be
// able to reset its counter by logging in to an account of its own.
func (g *Guard) Succeed(account string, _ netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.accounts, normalizeAccount(account))
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
// or when a map is full; if still full, arbitrary entries go (bounded
// memory beats perfect accounting under a flood of distinct names).
func (g *Guard) sweep(now time.Time) {
	full := len(g.accounts) >= g.cfg.MaxKeys || len(g.ips) >= g.cfg.MaxKeys
	if !full && now.Sub(g.lastSweep) < time.Minute {
		return
	}
	g.lastSweep = now
	sweepMap(g.accounts, now, g.cfg.Window, g.cfg.MaxKeys)
	sweepMap(g.ips, now, g.cfg.Window, g.cfg.MaxKeys)
}

func sweepMap[K comparable](m map[K]*failures, now time.Time, window time.Duration, maxKeys int) {
	for k, f := range m {
		if f.count(now, window) == 0 && !now.Before(f.lockedUntil) {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) < maxKeys*9/10 {
			break
		}
		delete(m, k)
	}
}
