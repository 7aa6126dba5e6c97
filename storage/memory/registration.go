package memory

import (
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

var _ storage.RegistrationStore = (*Store)(nil)

// initialTokenRow is never changed in place: an update puts a new row, so
// the transaction journal can restore the old one.
type initialTokenRow struct {
	tok  storage.InitialAccessToken
	hash []byte
}

type regTokenRow struct {
	hash     []byte
	issuedAt time.Time
}

func cloneInitialToken(t *storage.InitialAccessToken) *storage.InitialAccessToken {
	out := *t
	out.Scopes = slices.Clone(t.Scopes)
	out.GrantTypes = slices.Clone(t.GrantTypes)
	if t.RevokedAt != nil {
		at := *t.RevokedAt
		out.RevokedAt = &at
	}
	return &out
}

// matches reports whether h is among hashes.
func matches(h []byte, hashes [][]byte) bool {
	for _, c := range hashes {
		if subtle.ConstantTimeCompare(h, c) == 1 {
			return true
		}
	}
	return false
}

// CreateInitialAccessToken implements storage.RegistrationStore.
func (s *Store) CreateInitialAccessToken(ctx context.Context, t *storage.InitialAccessToken, lookupHash []byte) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	if _, ok := s.initialTokens[t.ID]; ok {
		return fmt.Errorf("memory: initial access token: %w", storage.ErrConflict)
	}
	for _, r := range s.initialTokens {
		if matches(r.hash, [][]byte{lookupHash}) {
			return fmt.Errorf("memory: initial access token: %w", storage.ErrConflict)
		}
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.stamp()
	}
	put(tx, s.initialTokens, t.ID, &initialTokenRow{tok: *cloneInitialToken(t), hash: slices.Clone(lookupHash)})
	return nil
}

// InitialAccessTokenByID implements storage.RegistrationStore.
func (s *Store) InitialAccessTokenByID(ctx context.Context, id string) (*storage.InitialAccessToken, error) {
	unlock := s.read(ctx)
	defer unlock()
	r, ok := s.initialTokens[id]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return cloneInitialToken(&r.tok), nil
}

// ListInitialAccessTokens implements storage.RegistrationStore.
func (s *Store) ListInitialAccessTokens(ctx context.Context, opts storage.ListOptions) ([]*storage.InitialAccessToken, error) {
	unlock := s.read(ctx)
	defer unlock()
	rows := page(s.initialTokens, opts, func(r *initialTokenRow) string { return r.tok.Description },
		func(r *initialTokenRow) *initialTokenRow { return r })
	out := make([]*storage.InitialAccessToken, len(rows))
	for i, r := range rows {
		out[i] = cloneInitialToken(&r.tok)
	}
	return out, nil
}

// RevokeInitialAccessToken implements storage.RegistrationStore.
func (s *Store) RevokeInitialAccessToken(ctx context.Context, id string, at time.Time) (*storage.InitialAccessToken, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	r, ok := s.initialTokens[id]
	if !ok {
		return nil, storage.ErrNotFound
	}
	next := &initialTokenRow{tok: *cloneInitialToken(&r.tok), hash: r.hash}
	if next.tok.RevokedAt == nil {
		next.tok.RevokedAt = &at
	}
	put(tx, s.initialTokens, id, next)
	return cloneInitialToken(&next.tok), nil
}

// UseInitialAccessToken implements storage.RegistrationStore, deciding
// under the store's write lock.
func (s *Store) UseInitialAccessToken(ctx context.Context, hashes [][]byte, now time.Time) (*storage.InitialAccessToken, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	for id, r := range s.initialTokens {
		if !matches(r.hash, hashes) {
			continue
		}
		if !r.tok.Usable(now) {
			break
		}
		next := &initialTokenRow{tok: *cloneInitialToken(&r.tok), hash: r.hash}
		next.tok.Registered++
		put(tx, s.initialTokens, id, next)
		return cloneInitialToken(&next.tok), nil
	}
	return nil, fmt.Errorf("memory: use initial access token: %w", storage.ErrNotFound)
}

// DeleteEndedInitialAccessTokens implements storage.RegistrationStore
// under the store's write lock (the batch bounds Postgres statements only).
func (s *Store) DeleteEndedInitialAccessTokens(ctx context.Context, before time.Time, _ int) (int64, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	var n int64
	for id, r := range s.initialTokens {
		if r.tok.EndedAt().Before(before) {
			del(tx, s.initialTokens, id)
			n++
		}
	}
	return n, nil
}

// CreateRegistrationToken implements storage.RegistrationStore.
func (s *Store) CreateRegistrationToken(ctx context.Context, clientID string, hash []byte, at time.Time) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	if _, ok := s.clients[clientID]; !ok {
		return fmt.Errorf("memory: registration token: %w", storage.ErrNotFound)
	}
	if _, ok := s.regTokens[clientID]; ok {
		return fmt.Errorf("memory: registration token: %w", storage.ErrConflict)
	}
	put(tx, s.regTokens, clientID, regTokenRow{hash: slices.Clone(hash), issuedAt: at})
	return nil
}

// CheckRegistrationToken implements storage.RegistrationStore.
func (s *Store) CheckRegistrationToken(ctx context.Context, clientID string, hashes [][]byte) error {
	unlock := s.read(ctx)
	defer unlock()
	if r, ok := s.regTokens[clientID]; ok && matches(r.hash, hashes) {
		return nil
	}
	return fmt.Errorf("memory: check registration token: %w", storage.ErrNotFound)
}

// RotateRegistrationToken implements storage.RegistrationStore.
func (s *Store) RotateRegistrationToken(ctx context.Context, clientID string, old [][]byte, next []byte, at time.Time) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	r, ok := s.regTokens[clientID]
	if !ok || !matches(r.hash, old) {
		return fmt.Errorf("memory: rotate registration token: %w", storage.ErrNotFound)
	}
	put(tx, s.regTokens, clientID, regTokenRow{hash: slices.Clone(next), issuedAt: at})
	return nil
}
