package memory

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// RotateAPIKey implements storage.APIKeyStore under one write lock, which
// serializes it with every revocation as the Postgres owner lock does.
func (s *Store) RotateAPIKey(ctx context.Context, old *storage.APIKey, expectVersion int64, succ *storage.APIKey) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	stored, ok := s.apiKeys[old.ID]
	if !ok {
		return storage.ErrNotFound
	}
	if stored.Version != expectVersion {
		return fmt.Errorf("memory: api key version %d: %w", expectVersion, storage.ErrPreconditionFailed)
	}
	if _, ok := s.apiKeys[succ.ID]; ok {
		return fmt.Errorf("memory: api key: %w", storage.ErrConflict)
	}
	if s.ownerDisabled(succ) {
		return fmt.Errorf("memory: api key: %w", storage.ErrOwnerDisabled)
	}
	old.CreatedAt = stored.CreatedAt
	old.Version = expectVersion + 1
	o := cloneAPIKey(old)
	if o.LastUsedAt.Before(stored.LastUsedAt) {
		o.LastUsedAt = stored.LastUsedAt
	}
	if succ.CreatedAt.IsZero() {
		succ.CreatedAt = s.stamp()
	}
	succ.Version = 1
	put(tx, s.apiKeys, o.ID, o)
	put(tx, s.apiKeys, succ.ID, cloneAPIKey(succ))
	return nil
}

// RevokeAPIKeyChain implements storage.APIKeyStore.
func (s *Store) RevokeAPIKeyChain(ctx context.Context, id string, at time.Time) ([]*storage.APIKey, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	if _, ok := s.apiKeys[id]; !ok {
		return nil, storage.ErrNotFound
	}
	chain := map[string]bool{id: true}
	for grown := true; grown; {
		grown = false
		for _, k := range s.apiKeys {
			if chain[k.ID] {
				continue
			}
			if chain[k.ReplacesID] || chain[k.ReplacedByID] || s.links(k.ID, chain) {
				chain[k.ID], grown = true, true
			}
		}
	}
	return s.revokeAPIKeysWhere(tx, at, func(k *storage.APIKey) bool { return chain[k.ID] }), nil
}

// links reports whether a key in chain names id as its predecessor or
// successor.
func (s *Store) links(id string, chain map[string]bool) bool {
	for c := range chain {
		if k := s.apiKeys[c]; k != nil && (k.ReplacesID == id || k.ReplacedByID == id) {
			return true
		}
	}
	return false
}

// RevokeAPIKeysByOwner implements storage.APIKeyStore.
func (s *Store) RevokeAPIKeysByOwner(ctx context.Context, ownerType, ownerID string, at time.Time) ([]*storage.APIKey, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	return s.revokeAPIKeysWhere(tx, at, func(k *storage.APIKey) bool {
		return k.OwnerType == ownerType && k.OwnerID == ownerID
	}), nil
}

// revokeAPIKeysWhere revokes every unrevoked key match selects, as the Postgres
// UPDATE does, and returns copies ordered by id. The caller holds the
// write lock.
func (s *Store) revokeAPIKeysWhere(tx *txn, at time.Time, match func(*storage.APIKey) bool) []*storage.APIKey {
	var out []*storage.APIKey
	for id, k := range s.apiKeys {
		if k.Status == storage.APIKeyRevoked || !match(k) {
			continue
		}
		c := cloneAPIKey(k)
		c.Status = storage.APIKeyRevoked
		c.RevokedAt = at
		c.RotateAt = time.Time{}
		c.SealedSuccessorSecret = nil
		c.Version++
		put(tx, s.apiKeys, id, c)
		out = append(out, cloneAPIKey(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
