package verified_test

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/keys/verified"
)

func sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func TestCache(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	cases := map[string]struct {
		put     time.Duration // token lifetime from now
		getAt   time.Duration // when it is asked for
		wantHit bool
	}{
		"valid token hits":                 {put: time.Hour, getAt: time.Minute, wantHit: true},
		"expired token misses":             {put: time.Hour, getAt: time.Hour, wantHit: false},
		"token expired when stored misses": {put: -time.Second, getAt: 0, wantHit: false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := verified.New[string](10)
			c.Put(sum("tok"), "claims", now.Add(tc.put), now)
			v, ok := c.Get(sum("tok"), now.Add(tc.getAt))
			if ok != tc.wantHit || (ok && v != "claims") {
				t.Fatalf("Get = %q, %v; want hit %v", v, ok, tc.wantHit)
			}
			if _, ok := c.Get(sum("tok2"), now); ok {
				t.Fatal("another token's hash hit")
			}
		})
	}
}

// TestBounded: the cache never holds more than its bound; expired entries
// go first, then everything.
func TestBounded(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	c := verified.New[int](4)
	c.Put(sum("short"), 0, now.Add(time.Second), now)
	for i := range 3 {
		c.Put(sum(fmt.Sprint(i)), i, now.Add(time.Hour), now)
	}
	later := now.Add(time.Minute) // "short" has expired
	c.Put(sum("x"), 9, now.Add(time.Hour), later)
	if c.Len() != 4 {
		t.Fatalf("Len = %d after evicting the expired entry, want 4", c.Len())
	}
	if _, ok := c.Get(sum("0"), later); !ok {
		t.Fatal("a live entry was dropped while an expired one could go")
	}
	c.Put(sum("y"), 10, now.Add(time.Hour), later)
	if c.Len() > 4 {
		t.Fatalf("Len = %d, bound 4", c.Len())
	}
	if v, ok := c.Get(sum("y"), later); !ok || v != 10 {
		t.Fatal("the newest entry is missing after a full cache started over")
	}
}

func TestConcurrentUse(t *testing.T) {
	now := time.Now()
	c := verified.New[int](64)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				h := sum(fmt.Sprint(g, i%100))
				c.Put(h, i, now.Add(time.Hour), now)
				c.Get(h, now)
			}
		})
	}
	wg.Wait()
	if c.Len() > 64 {
		t.Fatalf("Len = %d, bound 64", c.Len())
	}
}
