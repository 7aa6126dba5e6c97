package memory

import (
	"context"
	"sync"
	"time"
)

// subscriberBuffer is how many payloads a slow subscriber may lag behind
// before further payloads to it are dropped. Notifications are cache hints
// backed by periodic reloads, so dropping beats blocking the publisher.
const subscriberBuffer = 64

// TryLock implements storage.Locker with in-process named locks. The
// release function is idempotent.
func (s *Store) TryLock(_ context.Context, name string) (func(), bool, error) {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if _, held := s.locks[name]; held {
		return nil, false, nil
	}
	s.locks[name] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.lockMu.Lock()
			delete(s.locks, name)
			s.lockMu.Unlock()
		})
	}, true, nil
}

// Notify implements storage.Notifier. Inside a transaction the payload is
// delivered on Commit and dropped on Rollback, as Postgres NOTIFY does.
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	if tx := s.txFrom(ctx); tx != nil {
		s.mu.Lock()
		tx.notify = append(tx.notify, [2]string{channel, payload})
		s.mu.Unlock()
		return nil
	}
	s.publish(channel, payload)
	return nil
}

func (s *Store) publish(channel, payload string) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for ch := range s.subs[channel] {
		select {
		case ch <- payload:
		default: // subscriber too slow: drop (see subscriberBuffer)
		}
	}
}

// Subscribe implements storage.Notifier. The channel is closed once ctx
// ends.
func (s *Store) Subscribe(ctx context.Context, channel string) (<-chan string, error) {
	ch := make(chan string, subscriberBuffer)
	s.subMu.Lock()
	if s.subs[channel] == nil {
		s.subs[channel] = map[chan string]struct{}{}
	}
	s.subs[channel][ch] = struct{}{}
	s.subMu.Unlock()
	go func() {
		<-ctx.Done()
		s.subMu.Lock()
		delete(s.subs[channel], ch)
		if len(s.subs[channel]) == 0 {
			delete(s.subs, channel)
		}
		close(ch)
		s.subMu.Unlock()
	}()
	return ch, nil
}

// DeleteExpired implements storage.Janitor. Everything happens under one
// lock, so batch does not matter here.
func (s *Store) DeleteExpired(ctx context.Context, before time.Time, _ int) (int64, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	var n int64
	for _, kind := range allKinds {
		n += s.deleteWhere(tx, kind, func(r *tokenRow) bool { return r.rec.ExpiresAt.Before(before) })
	}
	for k, exp := range s.jtis {
		if exp.Before(before) {
			del(tx, s.jtis, k)
			n++
		}
	}
	for k, l := range s.logins {
		if !l.ExpiresAt.IsZero() && l.ExpiresAt.Before(before) {
			del(tx, s.logins, k)
			n++
		}
	}
	for k, b := range s.blocks {
		if !b.ExpiresAt.IsZero() && b.ExpiresAt.Before(before) {
			del(tx, s.blocks, k)
			n++
		}
	}
	n += s.guards.deleteExpired(before)
	n += s.devices.deleteExpired(before)
	n += s.deleteExpiredRPSessions(tx, before)
	n += s.dpop.deleteExpired(before)
	return n, nil
}

// TrimAudit implements storage.Janitor.
func (s *Store) TrimAudit(ctx context.Context, before time.Time, _ int) (int64, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	var n int64
	for id, e := range s.audit {
		if e.Time.Before(before) {
			del(tx, s.audit, id)
			n++
		}
	}
	return n, nil
}
