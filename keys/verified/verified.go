// Package verified remembers tokens whose signature has been checked, so a
// token presented again costs a hash and a map lookup instead of a
// signature verification (an ES256 verification is ~80 µs; a resource
// server introspects or a gateway checks the same token many times).
//
// Entries are keyed by the SHA-256 of the whole token, so only the exact
// bytes that were verified hit; they are dropped when the token expires.
// The cache says nothing about revocation or about the signing key still
// being published: callers check both on every use, cached or not.
package verified

import (
	"sync"
	"time"
)

// Cache is a bounded map from a token's SHA-256 to what verifying it
// established. When full, expired entries go; if that is not enough the
// cache starts over (the next uses re-verify), so memory stays bounded
// without per-entry bookkeeping on the hot path.
type Cache[V any] struct {
	mu  sync.RWMutex
	m   map[[32]byte]entry[V]
	max int
}

type entry[V any] struct {
	v   V
	exp time.Time
}

// New returns a cache of at most size entries (at least 1).
func New[V any](size int) *Cache[V] {
	return &Cache[V]{m: make(map[[32]byte]entry[V]), max: max(size, 1)}
}

// Get returns the value stored for h if it has not expired at now.
func (c *Cache[V]) Get(h [32]byte, now time.Time) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[h]
	c.mu.RUnlock()
	if !ok || !e.exp.After(now) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put stores v for h until exp. An entry already expired at now is not
// stored.
func (c *Cache[V]) Put(h [32]byte, v V, exp, now time.Time) {
	if !exp.After(now) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if !e.exp.After(now) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[h] = entry[V]{v, exp}
}

// DeleteFunc drops every entry whose value del reports (e.g. the entries
// of one revoked API key).
func (c *Cache[V]) DeleteFunc(del func(V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if del(e.v) {
			delete(c.m, k)
		}
	}
}

// Clear drops every entry.
func (c *Cache[V]) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

// Len is the number of entries (for tests and metrics).
func (c *Cache[V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
