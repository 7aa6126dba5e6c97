package protect

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

type guardResult struct {
	wait   time.Duration
	locked bool
}

// All failures happen at the same instant, so wait is the full delay.
func TestGuardDelayProgression(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ip := netip.MustParseAddr("192.0.2.1")
	cases := []struct {
		failures int
		want     guardResult
	}{
		{0, guardResult{0, false}},
		{1, guardResult{0, false}},
		{3, guardResult{0, false}},
		{4, guardResult{time.Second, false}},
		{5, guardResult{2 * time.Second, false}},
		{6, guardResult{4 * time.Second, false}},
		{7, guardResult{8 * time.Second, false}},
		{8, guardResult{10 * time.Second, false}}, // capped
		{9, guardResult{10 * time.Second, false}},
		{10, guardResult{time.Hour, true}}, // locked for LockFor
	}
	for _, tc := range cases {
		clk := newClock()
		g := NewGuard(GuardConfig{BaseDelay: time.Second, MaxDelay: 10 * time.Second, LockAfter: 10, LockFor: time.Hour, Now: clk.Now})
		for i := 0; i < tc.failures; i++ {
			g.Fail("alice", ip)
		}
		wait, locked := g.Check(ctx, "alice", ip)
		if (guardResult{wait, locked}) != tc.want {
			t.Fatalf("case=%d-failures: got wait %v locked %v, want %+v", tc.failures, wait, locked, tc.want)
		}
	}
}

func TestGuardDelayElapsesAndLockExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock()
	ip := netip.MustParseAddr("192.0.2.1")
	g := NewGuard(GuardConfig{LockAfter: 5, LockFor: 15 * time.Minute, Window: time.Hour, Now: clk.Now})
	for i := 0; i < 4; i++ {
		g.Fail("bob", ip)
	}
	if wait, locked := g.Check(ctx, "bob", ip); wait != time.Second || locked {
		t.Fatalf("after 4: wait %v locked %v", wait, locked)
	}
	clk.Advance(600 * time.Millisecond)
	if wait, _ := g.Check(ctx, "bob", ip); wait != 400*time.Millisecond {
		t.Fatalf("delay should count down from the last failure: wait %v", wait)
	}
	clk.Advance(time.Second)
	if wait, locked := g.Check(ctx, "bob", ip); wait != 0 || locked {
		t.Fatalf("after the delay: wait %v locked %v", wait, locked)
	}
	g.Fail("bob", ip) // 5th → lock
	if wait, locked := g.Check(ctx, "bob", ip); !locked || wait != 15*time.Minute {
		t.Fatalf("after 5: wait %v locked %v, want locked 15m", wait, locked)
	}
	// Another account from another IP is unaffected.
	if wait, locked := g.Check(ctx, "carol", netip.MustParseAddr("192.0.2.2")); wait != 0 || locked {
		t.Fatalf("unrelated account: wait %v locked %v", wait, locked)
	}
	clk.Advance(15*time.Minute - time.Second)
	if _, locked := g.Check(ctx, "bob", ip); !locked {
		t.Fatal("lock ended early")
	}
	clk.Advance(time.Second)
	if wait, locked := g.Check(ctx, "BOB ", ip); locked || wait != 0 {
		t.Fatalf("after lock expiry (name normalised): wait %v locked %v", wait, locked)
	}
}

func TestGuardWindowSlides(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock()
	ip := netip.MustParseAddr("192.0.2.1")
	g := NewGuard(GuardConfig{Window: 10 * time.Minute, LockAfter: 3, FreeFailures: 5, Now: clk.Now})
	g.Fail("dave", ip)
	g.Fail("dave", ip)
	clk.Advance(11 * time.Minute) // both fall out of the window
	g.Fail("dave", ip)
	if _, locked := g.Check(ctx, "dave", ip); locked {
		t.Fatal("failures outside the window counted")
	}
	g.Fail("dave", ip)
	g.Fail("dave", ip)
	if _, locked := g.Check(ctx, "dave", ip); !locked {
		t.Fatal("3 failures inside the window did not lock")
	}
}

func TestGuardSameForExistingAndUnknownAccounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The guard never learns whether an account exists; the caller passes
	// the submitted name. Two names with the same history must produce the
	// same answers at every step.
	trace := func(account string) []guardResult {
		clk := newClock()
		g := NewGuard(GuardConfig{LockAfter: 6, Now: clk.Now})
		ip := netip.MustParseAddr("198.51.100.4")
		var out []guardResult
		for i := 0; i < 8; i++ {
			w, l := g.Check(ctx, account, ip)
			out = append(out, guardResult{w, l})
			g.Fail(account, ip)
			clk.Advance(700 * time.Millisecond)
		}
		return out
	}
	existing, unknown := trace("alice"), trace("no-such-user-93f1")
	for i := range existing {
		if existing[i] != unknown[i] {
			t.Fatalf("step %d differs: %+v vs %+v", i, existing[i], unknown[i])
		}
	}
	if !existing[len(existing)-1].locked {
		t.Fatal("trace never reached the lock; the comparison is too weak")
	}
}

func TestGuardIPLockAndSucceed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock()
	ip := netip.MustParseAddr("203.0.113.7")
	g := NewGuard(GuardConfig{LockAfter: 3, IPLockAfter: 5, FreeFailures: 10, Now: clk.Now})
	// Spraying accounts: none reaches 3 failures, the IP reaches 5.
	for _, a := range []string{"a", "b"} {
		g.Fail(a, ip)
		g.Fail(a, ip)
	}
	g.Succeed("a", ip) // the attacker's own account: must not reset the IP
	g.Fail("c", ip)
	if _, locked := g.Check(ctx, "fresh", ip); !locked {
		t.Fatal("IP spraying five failures did not lock the IP")
	}
	if _, locked := g.Check(ctx, "fresh", netip.MustParseAddr("203.0.113.8")); locked {
		t.Fatal("another IP is locked")
	}
	// Succeed clears the account's own history.
	g2 := NewGuard(GuardConfig{LockAfter: 3, FreeFailures: 1, Now: clk.Now})
	g2.Fail("erin", netip.Addr{})
	g2.Fail("erin", netip.Addr{})
	g2.Succeed("erin", netip.Addr{})
	if w, l := g2.Check(ctx, "erin", netip.Addr{}); w != 0 || l {
		t.Fatalf("after Succeed: wait %v locked %v", w, l)
	}
}
