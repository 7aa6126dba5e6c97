package apikeys

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/bulwark-auth/bulwark/keys/apikey"
	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/storage"
)

// Verify authenticates a presented token. It returns the key's Principal
// and the key record (without hash or sealed bytes; Status tells a caller
// whether a rotation is pending) or one of ErrMalformed (decided without
// I/O), ErrInvalid (unknown id or wrong secret, same cost), ErrRevoked,
// ErrExpired, or a wrapped storage error. A rotating key verifies until
// its grace period ends.
func (s *Service) Verify(ctx context.Context, token string) (*Principal, *storage.APIKey, error) {
	k, err := s.verify(ctx, token)
	if err != nil {
		return nil, nil, err
	}
	return principalOf(k), public(k), nil
}

func principalOf(k *storage.APIKey) *Principal {
	return &Principal{KeyID: k.ID, OwnerType: k.OwnerType, OwnerID: k.OwnerID, Scopes: slices.Clone(k.Scopes)}
}

// verify is Verify returning the full stored record.
func (s *Service) verify(ctx context.Context, token string) (*storage.APIKey, error) {
	tok, err := apikey.Parse(token)
	if err != nil {
		return nil, ErrMalformed
	}
	k, err := s.store.APIKeyByID(ctx, tok.ID)
	if errors.Is(err, storage.ErrNotFound) {
		// Same work as a wrong secret, so timing does not reveal which
		// ids exist.
		s.hasher.DummyCompare(ctx, []byte(tok.Secret))
		return nil, ErrInvalid
	}
	if err != nil {
		return nil, fmt.Errorf("apikeys: load key: %w", err)
	}
	switch err := s.hasher.Compare(ctx, []byte(k.Hash), []byte(tok.Secret)); {
	case err == nil:
	case errors.Is(err, hash.ErrMismatch):
		return nil, ErrInvalid
	case errors.Is(err, hash.ErrInvalidHash):
		s.log.WithField("key_id", k.ID).Error("apikeys: stored hash is unusable")
		return nil, ErrInvalid
	default:
		return nil, fmt.Errorf("apikeys: compare: %w", err)
	}
	// Only now, with the secret proven, may the answer depend on status.
	now := s.clock()
	switch {
	case k.Status == storage.APIKeyRevoked:
		return nil, ErrRevoked
	case k.Status == storage.APIKeyExpired || !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		s.record(ctx, "apikey.use_after_expiry", "apikey:"+k.ID, "denied", k, nil)
		return nil, ErrExpired
	case k.Status != storage.APIKeyActive && k.Status != storage.APIKeyRotating:
		s.log.WithField("key_id", k.ID).WithField("status", k.Status).Error("apikeys: unknown key status")
		return nil, ErrInvalid
	}
	s.touch(k.ID, now)
	if s.hasher.NeedsRehash([]byte(k.Hash)) {
		s.rehash(ctx, k, tok.Secret)
	}
	return k, nil
}

// rehash stores a hash of secret under the current parameters. The secret
// is only available here, right after a successful comparison. Failure is
// harmless (the old hash still verifies) and is retried on the next use.
func (s *Service) rehash(ctx context.Context, k *storage.APIKey, secret string) {
	h, err := s.hasher.Hash(ctx, []byte(secret))
	if err != nil {
		s.log.WithError(err).WithField("key_id", k.ID).Warn("apikeys: rehash failed")
		return
	}
	old := k.Hash
	up := *k
	up.Hash = string(h)
	if err := s.store.UpdateAPIKey(ctx, &up, k.Version); err != nil {
		if !errors.Is(err, storage.ErrPreconditionFailed) {
			s.log.WithError(err).WithField("key_id", k.ID).Warn("apikeys: storing upgraded hash failed")
		}
		return
	}
	*k = up
	// The old hash is gone from the store, so its cache entry can never hit
	// again; drop it rather than wait for the TTL.
	s.hasher.Evict([]byte(old))
}

// Usable reports whether key id is still a working credential (active or
// rotating, not past its end), reading its current row. Tokens obtained by
// exchanging a key (RFC 8693) ask this at introspection, so they stop
// being active the moment their key is revoked or expires, on every
// replica, including tokens minted while the revocation committed.
func (s *Service) Usable(ctx context.Context, id string) (bool, error) {
	k, err := s.store.APIKeyByID(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("apikeys: load key: %w", err)
	}
	if k.Status != storage.APIKeyActive && k.Status != storage.APIKeyRotating {
		return false, nil
	}
	return k.ExpiresAt.IsZero() || s.clock().Before(k.ExpiresAt), nil
}
