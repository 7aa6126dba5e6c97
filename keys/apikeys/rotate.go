package apikeys

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ory/fosite/storage"

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

// swap stores the successor and the rotated old key together: in one
// transaction when the store offers them, otherwise old key first (its
// version check is what stops two replicas rotating one key twice).
func (s *Service) swap(ctx context.Context, succ, old *bstorage.APIKey, version int64) error {
	tx, ok := s.store.(storage.Transactional)
	if !ok {
		if err := s.store.UpdateAPIKey(ctx, old, version); err != nil {
			return err
		}
		return s.store.CreateAPIKey(ctx, succ)
	}
	tctx, err := tx.BeginTX(ctx)
	if err != nil {
		return err
	}
	if err := s.store.UpdateAPIKey(tctx, old, version); err != nil {
		_ = tx.Rollback(tctx)
		return err
	}
	if err := s.store.CreateAPIKey(tctx, succ); err != nil {
		_ = tx.Rollback(tctx)
		return err
	}
	return tx.Commit(tctx)
}

// Revoke ends key id at once (incident containment). The sealed successor
// secret, if any, is erased, so an attacker holding the old key cannot
// collect it. A successor already handed out is a key of its own: revoke it
// too if it is compromised. Revoking a revoked key succeeds.
func (s *Service) Revoke(ctx context.Context, id, actor string) error {
	for range 5 {
		k, err := s.store.APIKeyByID(ctx, id)
		if err != nil {
			return fmt.Errorf("apikeys: revoke: %w", err)
		}
		if k.Status == bstorage.APIKeyRevoked {
			return nil
		}
		up := *k
		up.Status = bstorage.APIKeyRevoked
		up.RevokedAt = s.clock()
		up.RotateAt = time.Time{}
		up.SealedSuccessorSecret = nil
		err = s.store.UpdateAPIKey(ctx, &up, k.Version)
		if errors.Is(err, bstorage.ErrPreconditionFailed) {
			continue // changed meanwhile (rotation, rehash): re-read and retry
		}
		if err != nil {
			return fmt.Errorf("apikeys: revoke: %w", err)
		}
		s.notifyChange(ctx, k)
		s.record(ctx, "apikey.revoke", actor, "success", &up, map[string]string{"previous_status": string(k.Status)})
		return nil
	}
	return ErrConflict
}
