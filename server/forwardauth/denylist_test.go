package forwardauth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

// countingLookup counts the store lookups the deny list makes.
type countingLookup struct {
	TokenLookup
	n atomic.Int64
}

func (c *countingLookup) GetAccessTokenSession(ctx context.Context, sig string, s fosite.Session) (fosite.Requester, error) {
	c.n.Add(1)
	return c.TokenLookup.GetAccessTokenSession(ctx, sig, s)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

type denyFixture struct {
	store  *memory.Store
	client *storage.Client
	lookup *countingLookup
	d      *Revocations
	clock  *clock
}

func newDenyFixture(t *testing.T, max int) *denyFixture {
	t.Helper()
	clk := &clock{t: time.Now().Truncate(time.Second)}
	st := memory.New(memory.Config{})
	c := &storage.Client{ID: "svc", GrantTypes: []string{"client_credentials"}}
	if err := st.CreateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	log, _ := test.NewNullLogger()
	lk := &countingLookup{TokenLookup: st}
	d, err := NewRevocations(RevocationsConfig{Notifier: st, Lookup: lk, MaxEntries: max, Now: clk.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return &denyFixture{store: st, client: c, lookup: lk, d: d, clock: clk}
}

// token stores an access token session and returns its key and expiry.
func (f *denyFixture) token(t *testing.T, sig, requestID string) (string, time.Time) {
	t.Helper()
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	sess := storage.NewSession("svc")
	sess.SetExpiresAt(fosite.AccessToken, exp)
	r := &fosite.Request{ID: requestID, RequestedAt: time.Now(), Client: f.client, Session: sess}
	if err := f.store.CreateAccessTokenSession(t.Context(), sig, r); err != nil {
		t.Fatal(err)
	}
	return storage.HashKey(sig), exp
}

func (f *denyFixture) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go f.d.Run(ctx, time.Hour)
	eventually(t, f.d.Ready)
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRevocationsDecideFromMemoryAfterSubscribing(t *testing.T) {
	f := newDenyFixture(t, 100)
	key, exp := f.token(t, "sig-1", "req-1")
	start := f.clock.Now()

	// Before the subscription nothing is vouched for: the store decides.
	if err := f.d.Check(t.Context(), key, "sig-1", start.Add(time.Second), exp); err != nil || f.lookup.n.Load() != 1 {
		t.Fatalf("before subscribing: %v, %d lookups", err, f.lookup.n.Load())
	}

	f.run(t)
	issued := start.Add(time.Second) // after the subscription's second
	for range 3 {
		if err := f.d.Check(t.Context(), key, "sig-1", issued, exp); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.lookup.n.Load(); n != 1 {
		t.Fatalf("store consulted after subscribing: %d lookups", n)
	}

	// Revocation reaches the list through the store's announcement.
	if err := f.store.RevokeAccessToken(t.Context(), "req-1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return errors.Is(f.d.Check(t.Context(), key, "sig-1", issued, exp), errRevoked) })
	if n := f.lookup.n.Load(); n != 1 {
		t.Fatalf("revocation decided by the store: %d lookups", n)
	}

	// A token issued before the subscription is looked up once, then
	// remembered.
	key2, exp2 := f.token(t, "sig-2", "req-2")
	for range 2 {
		if err := f.d.Check(t.Context(), key2, "sig-2", start.Add(-time.Minute), exp2); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.lookup.n.Load(); n != 2 {
		t.Fatalf("old token: want one more lookup, got %d in all", n)
	}
}

func TestRevocationsOverflowAndReconnectFallBackToTheStore(t *testing.T) {
	for _, payload := range []string{storage.RevokedAccessOverflow, "", "garbage"} {
		t.Run("case=payload "+payload, func(t *testing.T) {
			f := newDenyFixture(t, 100)
			// Subscribed (as Run does), but nobody listens to the store:
			// the revocation below is lost, as during a reconnect.
			f.d.reset(true)
			key, exp := f.token(t, "sig-1", "req-1")
			issued := f.clock.Now().Add(time.Second)
			if err := f.d.Check(t.Context(), key, "sig-1", issued, exp); err != nil || f.lookup.n.Load() != 0 {
				t.Fatalf("%v, %d lookups", err, f.lookup.n.Load())
			}
			if err := f.store.RevokeAccessToken(t.Context(), "req-1"); err != nil {
				t.Fatal(err)
			}
			f.clock.Set(issued.Add(time.Second))
			f.d.apply(payload)
			if err := f.d.Check(t.Context(), key, "sig-1", issued, exp); !errors.Is(err, errRevoked) || f.lookup.n.Load() != 1 {
				t.Fatalf("after %q: %v, %d lookups", payload, err, f.lookup.n.Load())
			}
			// Remembered: no second lookup.
			if err := f.d.Check(t.Context(), key, "sig-1", issued, exp); !errors.Is(err, errRevoked) || f.lookup.n.Load() != 1 {
				t.Fatalf("second check: %v, %d lookups", err, f.lookup.n.Load())
			}
		})
	}
}

func TestRevocationsBoundedAndTrimmed(t *testing.T) {
	f := newDenyFixture(t, 2)
	f.d.reset(true)
	t0 := f.clock.Now()
	f.d.add(storage.HashKey("a"), t0.Add(time.Minute))
	f.d.add(storage.HashKey("b"), t0.Add(time.Hour))
	// Full: "c" is not remembered, so tokens issued up to now are looked up.
	f.clock.Set(t0.Add(2 * time.Second))
	key, exp := f.token(t, "c", "req-c")
	if err := f.store.RevokeAccessToken(t.Context(), "req-c"); err != nil {
		t.Fatal(err)
	}
	f.d.add(key, exp)
	if len(f.d.denied) != 2 {
		t.Fatalf("list grew past its bound: %d", len(f.d.denied))
	}
	if err := f.d.Check(t.Context(), key, "c", t0.Add(time.Second), exp); !errors.Is(err, errRevoked) || f.lookup.n.Load() != 1 {
		t.Fatalf("overflowed revocation: %v, %d lookups", err, f.lookup.n.Load())
	}
	// Expired entries make room again.
	f.clock.Set(t0.Add(2 * time.Minute))
	f.d.trim()
	if _, ok := f.d.denied[storage.HashKey("a")]; ok || len(f.d.denied) != 1 {
		t.Fatalf("expired entry kept: %v", f.d.denied)
	}
}
