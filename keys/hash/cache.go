package hash

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	gohash "hash"
	"sync"
	"time"

	"github.com/ory/fosite"
	"golang.org/x/sync/singleflight"
)

// Cache defaults, used when CacheConfig leaves a field zero.
const (
	// DefaultCacheTTL bounds how long a verification is trusted without
	// re-running Argon2id. Evict is the primary way entries go away on
	// revocation; the TTL is the safety net if a change notification is lost.
	DefaultCacheTTL = 5 * time.Minute
	// DefaultCacheMaxEntries bounds memory (about 200 bytes an entry).
	DefaultCacheMaxEntries = 10000
)

// CacheConfig configures Cached.
type CacheConfig struct {
	// TTL is how long a successful verification is remembered. It is not
	// extended by hits. Zero or negative means DefaultCacheTTL.
	TTL time.Duration
	// MaxEntries bounds the cache; when full, the oldest entry goes. Zero or
	// negative means DefaultCacheMaxEntries.
	MaxEntries int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Gate, when set, runs before every Argon2id comparison (once per
	// coalesced miss, never on a hit) with the context of the caller that
	// started it. An error refuses the comparison and is returned from
	// Compare; otherwise done(ok) reports the outcome. The brute-force
	// guard counts attempts here, so only real Argon2id work is counted and
	// a burst of identical, correct credentials counts once.
	Gate func(ctx context.Context) (done func(ok bool), err error)
}

// Cached wraps a Hasher with a cache of successful verifications (see the
// package documentation). It implements fosite.Hasher and is safe for
// concurrent use.
type Cached struct {
	h      *Hasher
	ttl    time.Duration
	max    int
	now    func() time.Time
	pepper [32]byte
	// verify is h.Compare; tests replace it to count Argon2id runs.
	verify func(ctx context.Context, hash, data []byte) error
	gate   func(ctx context.Context) (func(ok bool), error)
	// inflight coalesces concurrent misses for the same (hash, secret), so
	// a burst of identical requests after a restart costs one Argon2id run.
	inflight singleflight.Group
	// macs pools keyed HMAC states: re-keying per call would cost more than
	// the rest of a cache hit.
	macs sync.Pool

	mu       sync.Mutex
	entries  map[cacheKey]*list.Element // of *cacheEntry
	order    *list.List                 // insertion order, oldest first
	byStored map[cacheKey]map[cacheKey]struct{}
	// epoch increases on every Evict and Purge. A verification that started
	// before one is not remembered, so an in-flight Compare cannot
	// re-insert an entry that was just evicted.
	epoch uint64
}

type cacheKey [sha256.Size]byte

type cacheEntry struct {
	key, stored cacheKey
	expires     time.Time
}

var _ fosite.Hasher = (*Cached)(nil)

// Domain separation between the two HMAC uses of the pepper.
const (
	tagEntry  = 1
	tagStored = 2
)

// NewCached wraps h with a verification cache. The pepper is drawn from
// crypto/rand here and never leaves the value.
func NewCached(h *Hasher, cfg CacheConfig) *Cached {
	c := &Cached{
		h:        h,
		ttl:      cfg.TTL,
		max:      cfg.MaxEntries,
		now:      cfg.Now,
		verify:   h.Compare,
		gate:     cfg.Gate,
		entries:  make(map[cacheKey]*list.Element),
		order:    list.New(),
		byStored: make(map[cacheKey]map[cacheKey]struct{}),
	}
	if c.ttl <= 0 {
		c.ttl = DefaultCacheTTL
	}
	if c.max <= 0 {
		c.max = DefaultCacheMaxEntries
	}
	if c.now == nil {
		c.now = time.Now
	}
	_, _ = rand.Read(c.pepper[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	c.macs.New = func() any { return hmac.New(sha256.New, c.pepper[:]) }
	return c
}

// Hasher returns the wrapped Hasher.
func (c *Cached) Hasher() *Hasher { return c.h }

// Hash delegates to the wrapped Hasher.
func (c *Cached) Hash(ctx context.Context, data []byte) ([]byte, error) {
	return c.h.Hash(ctx, data)
}

// NeedsRehash delegates to the wrapped Hasher.
func (c *Cached) NeedsRehash(hash []byte) bool { return c.h.NeedsRehash(hash) }

// DummyCompare delegates to the wrapped Hasher; it never touches the cache.
func (c *Cached) DummyCompare(ctx context.Context, data []byte) { c.h.DummyCompare(ctx, data) }

// Compare returns nil at once if this (hash, data) pair verified within the
// TTL; otherwise it runs the full Argon2id comparison and remembers a
// success. Errors are those of Hasher.Compare and are never remembered.
func (c *Cached) Compare(ctx context.Context, hash, data []byte) error {
	key := c.entryKey(hash, data)
	epoch, hit := c.lookup(key)
	if hit {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// The shared call must not fail because the first caller's context was
	// cancelled while others wait on it: the comparison is a pure function
	// of (hash, data).
	detached := context.WithoutCancel(ctx)
	_, err, _ := c.inflight.Do(string(key[:]), func() (any, error) {
		done := func(bool) {}
		if c.gate != nil {
			d, err := c.gate(detached)
			if err != nil {
				return nil, err
			}
			done = d
		}
		err := c.verify(detached, hash, data)
		done(err == nil)
		if err != nil {
			return nil, err
		}
		c.remember(key, c.storedKey(hash), epoch)
		return nil, nil
	})
	return err
}

// Evict forgets every verification of storedHash. Call it when the
// credential behind that hash is revoked or replaced.
func (c *Cached) Evict(storedHash []byte) {
	stored := c.storedKey(storedHash)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	for k := range c.byStored[stored] {
		if el, ok := c.entries[k]; ok {
			c.order.Remove(el)
			delete(c.entries, k)
		}
	}
	delete(c.byStored, stored)
}

// Purge forgets every verification.
func (c *Cached) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	clear(c.entries)
	clear(c.byStored)
	c.order.Init()
}

// Len returns the number of remembered verifications, expired ones
// included until they are swept.
func (c *Cached) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// lookup reports a live entry, dropping an expired one, and returns the
// current epoch for a subsequent remember.
func (c *Cached) lookup(key cacheKey) (uint64, bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return c.epoch, false
	}
	if !now.Before(el.Value.(*cacheEntry).expires) {
		c.removeLocked(el)
		return c.epoch, false
	}
	return c.epoch, true
}

func (c *Cached) remember(key, stored cacheKey, epoch uint64) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch {
		return
	}
	if el, ok := c.entries[key]; ok {
		c.removeLocked(el)
	}
	// Entries share one TTL, so insertion order is expiry order: sweep
	// expired entries from the front, then make room by dropping the oldest.
	for el := c.order.Front(); el != nil && !now.Before(el.Value.(*cacheEntry).expires); el = c.order.Front() {
		c.removeLocked(el)
	}
	for c.order.Len() >= c.max {
		c.removeLocked(c.order.Front())
	}
	e := &cacheEntry{key: key, stored: stored, expires: now.Add(c.ttl)}
	c.entries[key] = c.order.PushBack(e)
	set := c.byStored[stored]
	if set == nil {
		set = make(map[cacheKey]struct{}, 1)
		c.byStored[stored] = set
	}
	set[key] = struct{}{}
}

func (c *Cached) removeLocked(el *list.Element) {
	e := c.order.Remove(el).(*cacheEntry)
	delete(c.entries, e.key)
	if set := c.byStored[e.stored]; set != nil {
		delete(set, e.key)
		if len(set) == 0 {
			delete(c.byStored, e.stored)
		}
	}
}

// entryKey is HMAC-SHA256(pepper, 1 || len(hash) || hash || data). The
// length prefix keeps (hash, data) pairs from colliding by shifting bytes
// between the two.
func (c *Cached) entryKey(hash, data []byte) cacheKey {
	m := c.macs.Get().(gohash.Hash)
	defer c.putMAC(m)
	var hdr [9]byte
	hdr[0] = tagEntry
	binary.BigEndian.PutUint64(hdr[1:], uint64(len(hash)))
	m.Write(hdr[:])
	m.Write(hash)
	m.Write(data)
	var k cacheKey
	m.Sum(k[:0])
	return k
}

// storedKey is HMAC-SHA256(pepper, 2 || hash): the secondary index, so that
// Evict finds every entry of one stored hash.
func (c *Cached) storedKey(hash []byte) cacheKey {
	m := c.macs.Get().(gohash.Hash)
	defer c.putMAC(m)
	m.Write([]byte{tagStored})
	m.Write(hash)
	var k cacheKey
	m.Sum(k[:0])
	return k
}

func (c *Cached) putMAC(m gohash.Hash) {
	m.Reset()
	c.macs.Put(m)
}
