package hash

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for TTL tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingCache returns a Cached whose Argon2id comparisons are counted.
func countingCache(t *testing.T, cfg CacheConfig) (*Cached, *atomic.Int64) {
	t.Helper()
	c := NewCached(mustNew(t, cheap), cfg)
	var n atomic.Int64
	inner := c.verify
	c.verify = func(ctx context.Context, hash, data []byte) error {
		n.Add(1)
		return inner(ctx, hash, data)
	}
	return c, &n
}

func hashOf(t *testing.T, c *Cached, secret string) []byte {
	t.Helper()
	h, err := c.Hash(context.Background(), []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func expectRuns(t *testing.T, n *atomic.Int64, want int64) {
	t.Helper()
	if got := n.Load(); got != want {
		t.Fatalf("Argon2id ran %d times, want %d", got, want)
	}
}

func TestCacheHitAfterSuccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, runs := countingCache(t, CacheConfig{})
	stored := hashOf(t, c, "s1")
	for range 5 {
		if err := c.Compare(ctx, stored, []byte("s1")); err != nil {
			t.Fatalf("Compare = %v", err)
		}
	}
	expectRuns(t, runs, 1)
	if c.Len() != 1 {
		t.Fatalf("Len = %d, want 1", c.Len())
	}
	// A different stored hash of the same secret is a different entry.
	other := hashOf(t, c, "s1")
	if err := c.Compare(ctx, other, []byte("s1")); err != nil {
		t.Fatal(err)
	}
	expectRuns(t, runs, 2)
}

func TestCacheNeverRemembersFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, runs := countingCache(t, CacheConfig{})
	stored := hashOf(t, c, "right")
	for i := range 3 {
		if err := c.Compare(ctx, stored, []byte("wrong")); !errors.Is(err, ErrMismatch) {
			t.Fatalf("Compare(wrong) #%d = %v, want ErrMismatch", i, err)
		}
	}
	expectRuns(t, runs, 3)
	if c.Len() != 0 {
		t.Fatalf("Len = %d after failures, want 0", c.Len())
	}
	// A success on the same stored hash does not make the wrong secret pass.
	if err := c.Compare(ctx, stored, []byte("right")); err != nil {
		t.Fatal(err)
	}
	if err := c.Compare(ctx, stored, []byte("wrong")); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Compare(wrong) after a cached success = %v, want ErrMismatch", err)
	}
	if err := c.Compare(ctx, []byte("not a hash"), []byte("right")); !errors.Is(err, ErrInvalidHash) {
		t.Fatalf("Compare(invalid hash) = %v, want ErrInvalidHash", err)
	}
}

func TestCacheTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c, runs := countingCache(t, CacheConfig{TTL: time.Minute, Now: clock.Now})
	stored := hashOf(t, c, "s")
	if err := c.Compare(ctx, stored, []byte("s")); err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Second)
	if err := c.Compare(ctx, stored, []byte("s")); err != nil {
		t.Fatal(err)
	}
	expectRuns(t, runs, 1) // hit, and hits do not extend the TTL
	clock.Advance(time.Second)
	if err := c.Compare(ctx, stored, []byte("s")); err != nil {
		t.Fatal(err)
	}
	expectRuns(t, runs, 2) // expired exactly at TTL: verified again
	clock.Advance(30 * time.Second)
	if err := c.Compare(ctx, stored, []byte("s")); err != nil {
		t.Fatal(err)
	}
	expectRuns(t, runs, 2) // the re-verification started a fresh TTL
}

func TestCacheDefaults(t *testing.T) {
	t.Parallel()
	c := NewCached(mustNew(t, cheap), CacheConfig{TTL: -1})
	if c.ttl != DefaultCacheTTL || c.max != DefaultCacheMaxEntries || c.now == nil {
		t.Fatalf("defaults not applied: ttl=%v max=%d", c.ttl, c.max)
	}
	other := NewCached(c.h, CacheConfig{})
	if c.pepper == other.pepper || c.pepper == ([32]byte{}) {
		t.Fatal("pepper is not random per cache")
	}
}

func TestCacheEvict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, runs := countingCache(t, CacheConfig{})
	a, b := hashOf(t, c, "a"), hashOf(t, c, "b")
	for _, pair := range []struct {
		stored []byte
		secret string
	}{{a, "a"}, {b, "b"}} {
		if err := c.Compare(ctx, pair.stored, []byte(pair.secret)); err != nil {
			t.Fatal(err)
		}
	}
	expectRuns(t, runs, 2)

	c.Evict(a)
	if c.Len() != 1 {
		t.Fatalf("Len after Evict = %d, want 1", c.Len())
	}
	if err := c.Compare(ctx, b, []byte("b")); err != nil {
		t.Fatal(err)
	}
	expectRuns(t, runs, 2) // b untouched
	if err := c.Compare(ctx, a, []byte("a")); err != nil {
		t.Fatal(err)
	}
	expectRuns(t, runs, 3) // a verified again
	if len(c.byStored) != 2 {
		t.Fatalf("secondary index has %d stored hashes, want 2", len(c.byStored))
	}

	c.Evict([]byte("never seen")) // harmless
	c.Purge()
	if c.Len() != 0 || len(c.byStored) != 0 {
		t.Fatalf("after Purge: Len=%d index=%d", c.Len(), len(c.byStored))
	}
	if err := c.Compare(ctx, b, []byte("b")); err != nil {
		t.Fatal(err)
	}
	expectRuns(t, runs, 4)
}

// An Evict that lands while a verification is running must win: the
// in-flight success is not remembered.
func TestCacheEvictDuringVerification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, runs := countingCache(t, CacheConfig{})
	stored := hashOf(t, c, "s")
	inner := c.verify
	c.verify = func(ctx context.Context, hash, data []byte) error {
		err := inner(ctx, hash, data)
		c.Evict(hash) // revocation arrives mid-verification
		return err
	}
	if err := c.Compare(ctx, stored, []byte("s")); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 0 {
		t.Fatalf("Len = %d: an evicted verification was remembered", c.Len())
	}
	if err := c.Compare(ctx, stored, []byte("s")); err != nil {
		t.Fatal(err)
	}
	expectRuns(t, runs, 2)
}

func TestCacheBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c, runs := countingCache(t, CacheConfig{MaxEntries: 3, Now: clock.Now})
	stored := make([][]byte, 5)
	for i := range stored {
		stored[i] = hashOf(t, c, fmt.Sprint("s", i))
		if err := c.Compare(ctx, stored[i], []byte(fmt.Sprint("s", i))); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		if c.Len() > 3 {
			t.Fatalf("Len = %d, want ≤ 3", c.Len())
		}
	}
	expectRuns(t, runs, 5)
	// The newest three are cached, the two oldest were dropped.
	for i := 2; i < 5; i++ {
		if err := c.Compare(ctx, stored[i], []byte(fmt.Sprint("s", i))); err != nil {
			t.Fatal(err)
		}
	}
	expectRuns(t, runs, 5)
	if err := c.Compare(ctx, stored[0], []byte("s0")); err != nil {
		t.Fatal(err)
	}
	expectRuns(t, runs, 6)
	if len(c.byStored) != 3 {
		t.Fatalf("secondary index has %d entries, want 3 (it must shrink with the cache)", len(c.byStored))
	}
}

func TestCacheExpiredSweptOnInsert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c, _ := countingCache(t, CacheConfig{TTL: time.Minute, Now: clock.Now})
	for i := range 4 {
		s := fmt.Sprint("s", i)
		if err := c.Compare(ctx, hashOf(t, c, s), []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Minute)
	if err := c.Compare(ctx, hashOf(t, c, "new"), []byte("new")); err != nil {
		t.Fatal(err)
	}
	if c.Len() != 1 {
		t.Fatalf("Len = %d, want 1: expired entries were not swept", c.Len())
	}
}

func TestCacheCancelledContext(t *testing.T) {
	t.Parallel()
	c, runs := countingCache(t, CacheConfig{})
	stored := hashOf(t, c, "s")
	if err := c.Compare(context.Background(), stored, []byte("s")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A hit needs no work, so it succeeds even on a cancelled context...
	if err := c.Compare(ctx, stored, []byte("s")); err != nil {
		t.Fatalf("cached Compare = %v", err)
	}
	// ...while a miss does not start Argon2id.
	if err := c.Compare(ctx, stored, []byte("t")); !errors.Is(err, context.Canceled) {
		t.Fatalf("uncached Compare = %v, want context.Canceled", err)
	}
	expectRuns(t, runs, 1)
}

func TestCacheConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, _ := countingCache(t, CacheConfig{MaxEntries: 4})
	const nSecrets = 6
	stored := make([][]byte, nSecrets)
	for i := range stored {
		stored[i] = hashOf(t, c, fmt.Sprint("s", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				k := (g + i) % nSecrets
				right := []byte(fmt.Sprint("s", k))
				if err := c.Compare(ctx, stored[k], right); err != nil {
					errs <- fmt.Errorf("right secret %d: %w", k, err)
					return
				}
				if err := c.Compare(ctx, stored[k], []byte("wrong")); !errors.Is(err, ErrMismatch) {
					errs <- fmt.Errorf("wrong secret %d: %v", k, err)
					return
				}
				switch i % 10 {
				case 3:
					c.Evict(stored[k])
				case 7:
					if g == 0 {
						c.Purge()
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c.Len() > 4 {
		t.Fatalf("Len = %d, exceeds MaxEntries", c.Len())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.order.Len() != len(c.entries) {
		t.Fatalf("list has %d entries, map %d", c.order.Len(), len(c.entries))
	}
	n := 0
	for _, set := range c.byStored {
		n += len(set)
	}
	if n != len(c.entries) {
		t.Fatalf("secondary index holds %d keys, cache %d", n, len(c.entries))
	}
}

func TestCachedKeySeparatesHashAndSecret(t *testing.T) {
	t.Parallel()
	c := NewCached(mustNew(t, cheap), CacheConfig{})
	// Moving bytes between stored hash and secret must change the key.
	if c.entryKey([]byte("ab"), []byte("c")) == c.entryKey([]byte("a"), []byte("bc")) {
		t.Fatal("entry key ignores the boundary between hash and secret")
	}
	if c.entryKey([]byte("a"), []byte("b")) == c.entryKey([]byte("a"), []byte("b ")) {
		t.Fatal("entry key ignores the secret")
	}
}

// The gate runs before each Argon2id comparison and never on a hit; its
// refusal skips the comparison; done reports the outcome.
func TestCacheGate(t *testing.T) {
	var gated, succeeded, failed atomic.Int64
	refuse := errors.New("locked")
	var closed atomic.Bool
	c, runs := countingCache(t, CacheConfig{Gate: func(context.Context) (func(bool), error) {
		if closed.Load() {
			return nil, refuse
		}
		gated.Add(1)
		return func(ok bool) {
			if ok {
				succeeded.Add(1)
			} else {
				failed.Add(1)
			}
		}, nil
	}})
	ctx := context.Background()
	h := hashOf(t, c, "right")
	if err := c.Compare(ctx, h, []byte("wrong")); err == nil {
		t.Fatal("wrong secret accepted")
	}
	if err := c.Compare(ctx, h, []byte("right")); err != nil {
		t.Fatal(err)
	}
	if err := c.Compare(ctx, h, []byte("right")); err != nil { // hit
		t.Fatal(err)
	}
	expectRuns(t, runs, 2)
	if gated.Load() != 2 || succeeded.Load() != 1 || failed.Load() != 1 {
		t.Fatalf("gate %d, done(true) %d, done(false) %d; want 2, 1, 1", gated.Load(), succeeded.Load(), failed.Load())
	}
	closed.Store(true)
	if err := c.Compare(ctx, h, []byte("another")); !errors.Is(err, refuse) {
		t.Fatalf("refused comparison: %v", err)
	}
	expectRuns(t, runs, 2)
	// A cached verification needs no gate, even a closed one.
	if err := c.Compare(ctx, h, []byte("right")); err != nil {
		t.Fatalf("hit behind a closed gate: %v", err)
	}
}
