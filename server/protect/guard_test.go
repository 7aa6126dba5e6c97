package protect

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

func reserve(t *testing.T, g *Guard, account string, ip netip.Addr) Decision {
	t.Helper()
	d, err := g.Reserve(context.Background(), account, ip)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestGuardAccountLock(t *testing.T) {
	t.Parallel()
	ip := netip.MustParseAddr("192.0.2.1")
	// LockAfter 5; `before` attempts for bob, then the clock moves by
	// `advance`, then one more attempt for `account` is judged.
	cases := []struct {
		name    string
		before  int
		advance time.Duration
		account string
		want    Decision
	}{
		{"case=last allowed attempt", 4, 0, "bob", Decision{Allowed: true}},
		{"case=over limit refused until the window ends", 5, 10 * time.Minute, "bob", Decision{RetryAfter: 5 * time.Minute}},
		{"case=name normalised, known or not", 5, 0, "  BOB ", Decision{RetryAfter: 15 * time.Minute}},
		{"case=window over", 5, 15 * time.Minute, "bob", Decision{Allowed: true}},
		{"case=other account unaffected", 5, 0, "carol", Decision{Allowed: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			g := NewGuard(memory.New(memory.Config{Now: clk.Now}), GuardConfig{Name: "login", LockAfter: 5, Now: clk.Now})
			for i := range tc.before {
				if d := reserve(t, g, "bob", ip); !d.Allowed {
					t.Fatalf("attempt %d refused", i+1)
				}
			}
			clk.Advance(tc.advance)
			if d := reserve(t, g, tc.account, ip); d != tc.want {
				t.Fatalf("got %+v, want %+v", d, tc.want)
			}
		})
	}
}

// Counted before checked: N racers on two guards (two replicas) sharing one
// store get exactly LockAfter permissions between them.
func TestGuardBurstAcrossReplicas(t *testing.T) {
	t.Parallel()
	clk := newClock()
	store := memory.New(memory.Config{Now: clk.Now})
	replicas := []*Guard{
		NewGuard(store, GuardConfig{Name: "console", LockAfter: 4, Now: clk.Now}),
		NewGuard(store, GuardConfig{Name: "console", LockAfter: 4, Now: clk.Now}),
	}
	out := storagetest.Together(40, func(i int) Decision {
		d, err := replicas[i%2].Reserve(context.Background(), "alice", netip.AddrFrom4([4]byte{10, 0, byte(i), 1}))
		if err != nil {
			t.Error(err)
		}
		return d
	})
	if n := storagetest.Count(out, func(d Decision) bool { return d.Allowed }); n != 4 {
		t.Fatalf("%d attempts allowed, want exactly 4", n)
	}
	// Another guard name does not share the counter.
	other := NewGuard(store, GuardConfig{Name: "login", LockAfter: 4, Now: clk.Now})
	if d := reserve(t, other, "alice", netip.Addr{}); !d.Allowed {
		t.Fatal("the login guard shares the console guard's counter")
	}
}

// Success refunds only its own attempt: earlier failures keep counting, so
// the owner signing in cannot reset what an attacker has used up.
func TestGuardSucceedRefundsOwnAttempt(t *testing.T) {
	t.Parallel()
	clk := newClock()
	g := NewGuard(memory.New(memory.Config{Now: clk.Now}), GuardConfig{LockAfter: 3, Now: clk.Now})
	ctx := context.Background()
	ip := netip.MustParseAddr("192.0.2.9")
	for range 2 {
		reserve(t, g, "erin", ip) // two failures
	}
	reserve(t, g, "erin", ip) // the owner's right password
	if err := g.Succeed(ctx, "erin"); err != nil {
		t.Fatal(err)
	}
	if d := reserve(t, g, "erin", ip); !d.Allowed {
		t.Fatal("third attempt refused after a refund")
	}
	if d := reserve(t, g, "erin", ip); d.Allowed {
		t.Fatal("fourth attempt allowed: success reset more than its own attempt")
	}
}

func TestGuardIPLock(t *testing.T) {
	t.Parallel()
	clk := newClock()
	g := NewGuard(memory.New(memory.Config{Now: clk.Now}), GuardConfig{LockAfter: 100, IPLockAfter: 5, Now: clk.Now})
	ctx := context.Background()
	ip := netip.MustParseAddr("192.0.2.1")
	for _, a := range []string{"a", "b"} {
		for range 2 {
			reserve(t, g, a, ip)
			g.Fail(ip)
		}
	}
	reserve(t, g, "a", ip)
	if err := g.Succeed(ctx, "a"); err != nil { // the attacker's own account: must not reset the IP
		t.Fatal(err)
	}
	reserve(t, g, "c", ip)
	g.Fail(ip) // 5th failure → lock
	if d := reserve(t, g, "fresh", ip); d.Allowed || d.RetryAfter != 15*time.Minute {
		t.Fatalf("IP not locked after 5 failures: %+v", d)
	}
	if d := reserve(t, g, "fresh", netip.MustParseAddr("203.0.113.8")); !d.Allowed {
		t.Fatal("another IP is locked too")
	}
	// Successful attempts never count against the IP (shared NAT).
	g2 := NewGuard(memory.New(memory.Config{Now: clk.Now}), GuardConfig{IPLockAfter: 2, Now: clk.Now})
	for i := range 20 {
		acct := string(rune('a' + i))
		if d := reserve(t, g2, acct, ip); !d.Allowed {
			t.Fatalf("successful sign-in %d from a shared address refused", i)
		}
		if err := g2.Succeed(ctx, acct); err != nil {
			t.Fatal(err)
		}
	}
}

type failingAttempts struct{ storage.AttemptStore }

func (failingAttempts) AddAttempt(context.Context, string, time.Duration, time.Time) (int, time.Time, error) {
	return 0, time.Time{}, storage.ErrUnavailable
}

// A store that cannot count must not let the check run.
func TestGuardFailsClosed(t *testing.T) {
	t.Parallel()
	g := NewGuard(failingAttempts{}, GuardConfig{})
	d, err := g.Reserve(context.Background(), "x", netip.Addr{})
	if err == nil || d.Allowed {
		t.Fatalf("got %+v, %v; want an error and no permission", d, err)
	}
	// Through Gate: the comparison is refused and the handler can tell a
	// store failure from a lock.
	ctx := g.WithAttempt(context.Background(), "svc", netip.Addr{})
	if _, err := Gate(ctx); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("Gate on a failing store: %v", err)
	}
	if err := GateError(ctx); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("GateError = %v", err)
	}
	if _, refused := Refused(ctx); refused {
		t.Fatal("a store failure reported as a lock")
	}
}

// Gate reserves the attempt a context carries, refuses past the limit with
// ErrLocked (Refused then says so), refunds a success, and lets contexts
// without an attempt through.
func TestGuardGate(t *testing.T) {
	t.Parallel()
	clk := newClock()
	g := NewGuard(memory.New(memory.Config{Now: clk.Now}), GuardConfig{Name: "client", LockAfter: 2, Now: clk.Now})
	bare := context.Background()
	if done, err := Gate(bare); err != nil {
		t.Fatalf("no attempt in context: %v", err)
	} else {
		done(false)
	}
	if _, refused := Refused(bare); refused {
		t.Fatal("Refused without an attempt")
	}
	ip := netip.MustParseAddr("192.0.2.7")
	attempt := func() (context.Context, func(bool), error) {
		ctx := g.WithAttempt(bare, "svc", ip)
		done, err := Gate(ctx)
		return ctx, done, err
	}
	_, done, err := attempt()
	if err != nil {
		t.Fatal(err)
	}
	done(true) // refunded: the count stays at 0
	for i := range 2 {
		_, done, err := attempt()
		if err != nil {
			t.Fatalf("failure %d refused: %v", i+1, err)
		}
		done(false)
	}
	ctx, _, err := attempt()
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("third failure: %v, want ErrLocked", err)
	}
	if wait, refused := Refused(ctx); !refused || wait != 15*time.Minute {
		t.Fatalf("Refused = %v, %v", wait, refused)
	}
}
