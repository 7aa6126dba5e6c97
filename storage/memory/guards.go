package memory

import (
	"context"
	"sync"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// guardState holds attempt counters and used marks under their own mutex,
// outside the transaction journal: like the Postgres store, a counted
// attempt is never rolled back. The zero value is ready to use.
type guardState struct {
	mu       sync.Mutex
	attempts map[string]*attemptRow
	marks    map[string]time.Time
}

type attemptRow struct {
	count int
	end   time.Time
}

// AddAttempt implements storage.AttemptStore.
func (s *Store) AddAttempt(_ context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error) {
	g := &s.guards
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.attempts == nil {
		g.attempts = map[string]*attemptRow{}
	}
	k := storage.HashKey(key)
	r := g.attempts[k]
	if r == nil || !r.end.After(now) {
		r = &attemptRow{end: now.Add(window)}
		g.attempts[k] = r
	}
	r.count++
	return r.count, r.end, nil
}

// RefundAttempt implements storage.AttemptStore.
func (s *Store) RefundAttempt(_ context.Context, key string, now time.Time) error {
	g := &s.guards
	g.mu.Lock()
	defer g.mu.Unlock()
	if r := g.attempts[storage.HashKey(key)]; r != nil && r.count > 0 && r.end.After(now) {
		r.count--
	}
	return nil
}

// ClearAttempts implements storage.AttemptStore.
func (s *Store) ClearAttempts(_ context.Context, key string) error {
	g := &s.guards
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.attempts, storage.HashKey(key))
	return nil
}

// MarkUsed implements storage.UsedMarkStore.
func (s *Store) MarkUsed(_ context.Context, key string, expires time.Time) (bool, error) {
	now := s.now()
	g := &s.guards
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.marks == nil {
		g.marks = map[string]time.Time{}
	}
	k := storage.HashKey(key)
	if exp, ok := g.marks[k]; ok && exp.After(now) {
		return false, nil
	}
	g.marks[k] = expires
	return true, nil
}

// deleteExpired is the janitor's share of guardState: rows whose window or
// mark ended before `before`.
func (g *guardState) deleteExpired(before time.Time) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var n int64
	for k, r := range g.attempts {
		if r.end.Before(before) {
			delete(g.attempts, k)
			n++
		}
	}
	for k, exp := range g.marks {
		if exp.Before(before) {
			delete(g.marks, k)
			n++
		}
	}
	return n
}
