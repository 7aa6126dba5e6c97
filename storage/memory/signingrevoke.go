package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// RevokeSigningKey implements storage.SigningKeyStore: every check comes
// before the first write, all under one lock, so it changes everything or
// nothing and no reader sees the state in between.
func (s *Store) RevokeSigningKey(ctx context.Context, kid string, from storage.KeyState, at time.Time, replacement *storage.SigningKey) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	k, ok := s.signingKeys[kid]
	if !ok {
		return storage.ErrNotFound
	}
	if k.State != from {
		return fmt.Errorf("memory: signing key not %s: %w", from, storage.ErrPreconditionFailed)
	}
	var promoted *storage.SigningKey
	switch {
	case replacement == nil:
	case replacement.State == storage.KeyNext:
		n, ok := s.signingKeys[replacement.KID]
		if !ok || n.State != storage.KeyNext {
			return fmt.Errorf("memory: promote signing key %s: %w", replacement.KID, storage.ErrPreconditionFailed)
		}
		promoted = cloneSigningKey(n)
		promoted.State, promoted.ActivatedAt = storage.KeyActive, at
	default:
		if _, ok := s.signingKeys[replacement.KID]; ok {
			return fmt.Errorf("memory: signing key: %w", storage.ErrConflict)
		}
		if replacement.CreatedAt.IsZero() {
			replacement.CreatedAt = s.stamp()
		}
		promoted = cloneSigningKey(replacement)
	}
	c := cloneSigningKey(k)
	c.State, c.RevokedAt = storage.KeyRevoked, at
	put(tx, s.signingKeys, kid, c)
	if promoted != nil {
		put(tx, s.signingKeys, promoted.KID, promoted)
	}
	return nil
}
