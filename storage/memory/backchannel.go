package memory

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// rpSession is one relying party's session derived from a login session.
type rpSession struct {
	subject   string
	expiresAt time.Time
}

// backchannelState is the outbox of back-channel logouts (backchannel.go).
type backchannelState struct {
	// rp is keyed by (sid, client id).
	rp      map[pairKey]rpSession
	logouts map[int64]*storage.BackchannelLogout
	nextID  int64
}

func newBackchannelState() backchannelState {
	return backchannelState{rp: map[pairKey]rpSession{}, logouts: map[int64]*storage.BackchannelLogout{}}
}

// JoinLoginSession implements storage.BackchannelStore; the store lock
// serialises it with the login session's deletion.
func (s *Store) JoinLoginSession(ctx context.Context, loginKey, clientID string) (string, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	l, ok := s.logins[storage.HashKey(loginKey)]
	if !ok || expired(l.ExpiresAt, s.now()) || l.SID == "" {
		return "", fmt.Errorf("memory: join login session: %w", storage.ErrNotFound)
	}
	put(tx, s.bc.rp, pairKey{l.SID, clientID}, rpSession{subject: l.Subject, expiresAt: l.ExpiresAt})
	return l.SID, nil
}

// QueueLogouts implements storage.BackchannelStore under the store lock.
func (s *Store) QueueLogouts(ctx context.Context, m storage.LogoutMatch) (int64, error) {
	if m.Empty() {
		return 0, nil
	}
	jtis := func() (string, error) {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("memory: random: %w", err)
		}
		return hex.EncodeToString(b), nil
	}
	tx, unlock := s.write(ctx)
	type target struct{ client, subject, sid string }
	var targets []target
	seen := map[target]bool{}
	for k, r := range s.bc.rp {
		sid, client := k.a, k.b
		if (m.Subject != "" && r.subject != m.Subject) || (m.SID != "" && sid != m.SID) || (m.ClientID != "" && client != m.ClientID) {
			continue
		}
		del(tx, s.bc.rp, k)
		c, ok := s.clients[client]
		if !ok || c.BackchannelLogoutURI == "" {
			continue
		}
		t := target{client, r.subject, sid}
		if m.SID == "" && !c.BackchannelLogoutSessionRequired {
			t.sid = ""
		}
		if !seen[t] {
			seen[t] = true
			targets = append(targets, t)
		}
	}
	now := s.stamp()
	for _, t := range targets {
		jti, err := jtis()
		if err != nil {
			unlock()
			return 0, err
		}
		s.bc.nextID++
		put(tx, s.bc.logouts, s.bc.nextID, &storage.BackchannelLogout{
			ID: s.bc.nextID, ClientID: t.client, Subject: t.subject, SID: t.sid, JTI: jti, Reason: m.Reason,
			CreatedAt: now, NextAttemptAt: now,
		})
	}
	if tx != nil && len(targets) > 0 {
		tx.notify = append(tx.notify, [2]string{storage.BackchannelChannel, storage.BackchannelQueued})
	}
	unlock()
	if tx == nil && len(targets) > 0 {
		s.publish(storage.BackchannelChannel, storage.BackchannelQueued)
	}
	return int64(len(targets)), nil
}

func cloneLogout(l *storage.BackchannelLogout) *storage.BackchannelLogout {
	out := *l
	return &out
}

// ClaimLogouts implements storage.BackchannelStore under the store lock.
func (s *Store) ClaimLogouts(ctx context.Context, lease string, until time.Time, limit int) ([]*storage.BackchannelLogout, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	now := s.now()
	var due []*storage.BackchannelLogout
	for _, l := range s.bc.logouts {
		if !l.NextAttemptAt.After(now) && (l.LeaseUntil.IsZero() || !l.LeaseUntil.After(now)) {
			due = append(due, l)
		}
	}
	slices.SortFunc(due, func(a, b *storage.BackchannelLogout) int {
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if len(due) > limit {
		due = due[:max(limit, 0)]
	}
	out := make([]*storage.BackchannelLogout, 0, len(due))
	for _, l := range due {
		c := cloneLogout(l)
		c.Lease, c.LeaseUntil = lease, until.Truncate(time.Microsecond)
		put(tx, s.bc.logouts, c.ID, c)
		out = append(out, cloneLogout(c))
	}
	return out, nil
}

// FinishLogout implements storage.BackchannelStore.
func (s *Store) FinishLogout(ctx context.Context, id int64, lease string) (bool, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	l, ok := s.bc.logouts[id]
	if !ok || lease == "" || l.Lease != lease {
		return false, nil
	}
	del(tx, s.bc.logouts, id)
	return true, nil
}

// ReleaseLogout implements storage.BackchannelStore.
func (s *Store) ReleaseLogout(ctx context.Context, id int64, lease string, next time.Time, failure string) (bool, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	l, ok := s.bc.logouts[id]
	if !ok || lease == "" || l.Lease != lease {
		return false, nil
	}
	c := cloneLogout(l)
	c.Lease, c.LeaseUntil, c.NextAttemptAt = "", time.Time{}, next.Truncate(time.Microsecond)
	if failure != "" {
		c.Attempts++
		c.LastError = failure
	}
	put(tx, s.bc.logouts, id, c)
	return true, nil
}

// PendingLogouts implements storage.BackchannelStore.
func (s *Store) PendingLogouts(ctx context.Context) (int64, error) {
	unlock := s.read(ctx)
	defer unlock()
	return int64(len(s.bc.logouts)), nil
}

// deleteExpiredRPSessions removes RP sessions whose login session expired
// before `before` (the janitor); the caller holds the write lock.
func (s *Store) deleteExpiredRPSessions(tx *txn, before time.Time) int64 {
	var n int64
	for k, r := range s.bc.rp {
		if r.expiresAt.Before(before) {
			del(tx, s.bc.rp, k)
			n++
		}
	}
	return n
}
