package apikeys

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bulwark-auth/bulwark/keys/apikey"
	bstorage "github.com/bulwark-auth/bulwark/storage"
)

// Actors recorded for changes not made by a person.
const (
	ActorScheduler = "system:apikeys-scheduler"
)

// Rotate replaces key id at once (an admin action): the successor is
// created and its token returned (show it once); the old key becomes
// "rotating" and keeps working until its grace period ends. The successor's
// secret is not kept for collection: the admin hands it over.
func (s *Service) Rotate(ctx context.Context, id, actor string) (string, *bstorage.APIKey, error) {
	k, err := s.store.APIKeyByID(ctx, id)
	if err != nil {
		return "", nil, fmt.Errorf("apikeys: rotate: %w", err)
	}
	tok, succ, err := s.rotate(ctx, k, actor, false)
	if err != nil {
		return "", nil, err
	}
	return tok.String(), public(succ), nil
}

// CollectOrRotate is the holder's self-rotation, authenticated by the old
// token itself. If the key is rotating and its successor's secret is still
// sealed, the successor's token is returned and the sealed copy erased, so
// it is handed out once. If the key is active (no rotation pending), it
// is rotated now and the successor returned at once. Otherwise the error
// is one of Verify's or ErrNoPendingSuccessor.
func (s *Service) CollectOrRotate(ctx context.Context, oldToken string) (string, *bstorage.APIKey, error) {
	k, err := s.verify(ctx, oldToken)
	if err != nil {
		return "", nil, err
	}
	actor := "apikey:" + k.ID
	if k.Status == bstorage.APIKeyActive {
		tok, succ, err := s.rotate(ctx, k, actor, false)
		if err != nil {
			return "", nil, err
		}
		return tok.String(), public(succ), nil
	}
	return s.collect(ctx, k, actor)
}

// collect hands out the sealed successor secret of rotating key k once.
func (s *Service) collect(ctx context.Context, k *bstorage.APIKey, actor string) (string, *bstorage.APIKey, error) {
	if len(k.SealedSuccessorSecret) == 0 || k.ReplacedByID == "" {
		return "", nil, ErrNoPendingSuccessor
	}
	succ, err := s.store.APIKeyByID(ctx, k.ReplacedByID)
	if err != nil && !errors.Is(err, bstorage.ErrNotFound) {
		return "", nil, fmt.Errorf("apikeys: collect: %w", err)
	}
	usable := err == nil && (succ.Status == bstorage.APIKeyActive || succ.Status == bstorage.APIKeyRotating)
	var secret []byte
	if usable {
		secret, err = s.sealer.Open(k.SealedSuccessorSecret, []byte(k.ID))
		if err != nil {
			// Wrong or rotated-away master secret: the sealed bytes are
			// useless, so erase them rather than fail every attempt.
			s.log.WithField("key_id", k.ID).Error("apikeys: sealed successor secret cannot be opened")
			usable = false
		}
	}
	defer clear(secret)
	// Erase before returning: if the update loses a race, the other caller
	// got the secret and this one gets nothing, so it is handed out once.
	up := *k
	up.SealedSuccessorSecret = nil
	if err := s.store.UpdateAPIKey(ctx, &up, k.Version); err != nil {
		if errors.Is(err, bstorage.ErrPreconditionFailed) {
			return "", nil, ErrConflict
		}
		return "", nil, fmt.Errorf("apikeys: collect: %w", err)
	}
	if !usable {
		return "", nil, ErrNoPendingSuccessor
	}
	s.record(ctx, "apikey.collect", actor, "success", k, map[string]string{"successor_id": succ.ID})
	return apikey.Key{ID: succ.ID, Secret: string(secret)}.String(), public(succ), nil
}

// rotate creates k's successor and moves k to rotating. With seal, the
// successor's secret is sealed onto k for later collection (scheduled
// rotation); otherwise the caller returns the token at once.
func (s *Service) rotate(ctx context.Context, k *bstorage.APIKey, actor string, seal bool) (apikey.Key, *bstorage.APIKey, error) {
	now := s.clock()
	if k.Status != bstorage.APIKeyActive || k.ReplacedByID != "" {
		return apikey.Key{}, nil, ErrNotActive
	}
	if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
		return apikey.Key{}, nil, ErrExpired
	}
	grace := k.GracePeriod
	if grace <= 0 {
		grace = s.grace
	}
	rotation := k.RotationPeriod
	if rotation <= 0 {
		rotation = s.rotation
	}
	succ := &bstorage.APIKey{
		Name:           k.Name,
		OwnerType:      k.OwnerType,
		OwnerID:        k.OwnerID,
		Scopes:         slices.Clone(k.Scopes),
		Status:         bstorage.APIKeyActive,
		CreatedBy:      actor,
		CreatedAt:      now,
		ExpiresAt:      k.ExpiresAt, // a hard end carries over
		RotationPeriod: rotation,
		GracePeriod:    grace,
		RotateAt:       now.Add(rotation),
		ReplacesID:     k.ID,
	}
	old := *k
	old.Status = bstorage.APIKeyRotating
	old.RotateAt = time.Time{} // rotated: nothing more to schedule
	if end := now.Add(grace); old.ExpiresAt.IsZero() || end.Before(old.ExpiresAt) {
		old.ExpiresAt = end
	}

	var tok apikey.Key
	for attempt := 0; ; attempt++ {
		var err error
		if tok, err = s.mint(ctx, succ); err != nil {
			return apikey.Key{}, nil, err
		}
		old.ReplacedByID = succ.ID
		old.SealedSuccessorSecret = nil
		if seal {
			if old.SealedSuccessorSecret, err = s.sealer.Seal([]byte(tok.Secret), []byte(k.ID)); err != nil {
				return apikey.Key{}, nil, fmt.Errorf("apikeys: seal successor: %w", err)
			}
		}
		err = s.swap(ctx, succ, &old, k.Version)
		if err == nil {
			break
		}
		if errors.Is(err, bstorage.ErrPreconditionFailed) {
			return apikey.Key{}, nil, ErrConflict
		}
		if errors.Is(err, bstorage.ErrOwnerDisabled) {
			// The owner was disabled and its keys are being revoked: the
			// key is on its way out, not a server fault.
			return apikey.Key{}, nil, fmt.Errorf("%w: owner is disabled", ErrNotActive)
		}
		if !errors.Is(err, bstorage.ErrConflict) || attempt == 2 {
			return apikey.Key{}, nil, fmt.Errorf("apikeys: rotate: %w", err)
		}
	}
	*k = old
	s.notifyChange(ctx, k)
	trigger := "admin"
	switch {
	case seal:
		trigger = "schedule"
	case actor == "apikey:"+k.ID:
		trigger = "self"
	}
	s.record(ctx, "apikey.rotate", actor, "success", k, map[string]string{
		"successor_id": succ.ID, "trigger": trigger, "old_expires_at": k.ExpiresAt.Format(time.RFC3339),
	})
	return tok, succ, nil
}

// swap stores the successor and the rotated old key together. The store
// serializes it with revocations of the owner's keys, so a successor is
// never minted for a key or owner whose revocation committed first, and a
// revocation committing after it covers the successor too.
func (s *Service) swap(ctx context.Context, succ, old *bstorage.APIKey, version int64) error {
	return s.store.RotateAPIKey(ctx, old, version, succ)
}

// Revoke ends key id at once (incident containment), together with every
// key of its rotation chain: the predecessor still in its grace period and
// any successor, whether or not its secret was handed out. Whoever holds
// one key of a chain could have collected the next, so the chain is one
// credential. Sealed successor secrets are erased. Revoking a revoked key
// succeeds.
func (s *Service) Revoke(ctx context.Context, id, actor string) error {
	revoked, err := s.store.RevokeAPIKeyChain(ctx, id, s.clock())
	if err != nil {
		return fmt.Errorf("apikeys: revoke: %w", err)
	}
	for _, k := range revoked {
		s.notifyChange(ctx, k)
		d := map[string]string{}
		if k.ID != id {
			d["revoked_with"] = id
		}
		s.record(ctx, "apikey.revoke", actor, "success", k, d)
	}
	return nil
}

// RevokeOwner revokes every key of (ownerType, ownerID) in one store
// statement (containment of a disabled client or user) and returns how
// many it revoked. A rotation running at the same time either finished
// first, and its successor is revoked too, or fails. With a transaction
// in ctx it joins it, so the owner's disable and this are one unit.
func (s *Service) RevokeOwner(ctx context.Context, ownerType, ownerID, actor string) (int64, error) {
	revoked, err := s.store.RevokeAPIKeysByOwner(ctx, ownerType, ownerID, s.clock())
	if err != nil {
		return 0, fmt.Errorf("apikeys: revoke owner: %w", err)
	}
	for _, k := range revoked {
		s.notifyChange(ctx, k)
		s.record(ctx, "apikey.revoke", actor, "success", k, map[string]string{"reason": "owner_contained"})
	}
	return int64(len(revoked)), nil
}
