package postgres

import (
	"context"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// lockAPIKeyOwner serializes, until the end of the transaction, every
// rotation and revocation of one owner's API keys. A statement in READ
// COMMITTED sees only rows committed before it starts; without this lock a
// successor inserted by a rotation that commits while a revocation's UPDATE
// waits on the old key's row would be invisible to that UPDATE and survive.
// Taking the lock first makes the later statement's snapshot include it.
func lockAPIKeyOwner(ctx context.Context, q querier, ownerType, ownerID string) error {
	_, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('bulwark:apikey-owner:' || $1 || ':' || $2, 0))`,
		ownerType, ownerID)
	return err
}

// withTx runs fn with a transaction in its context: the caller's if ctx
// carries one, otherwise a new one committed when fn succeeds.
func (s *Store) withTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if txFrom(ctx) != nil {
		return fn(ctx)
	}
	tctx, err := s.BeginTX(ctx)
	if err != nil {
		return err
	}
	if err := fn(tctx); err != nil {
		_ = s.Rollback(tctx)
		return err
	}
	return s.Commit(tctx)
}

// RotateAPIKey implements storage.APIKeyStore: owner lock, the old key's
// versioned UPDATE, the successor's INSERT, one transaction.
func (s *Store) RotateAPIKey(ctx context.Context, old *storage.APIKey, expectVersion int64, succ *storage.APIKey) error {
	return s.withTx(ctx, func(ctx context.Context) error {
		if err := lockAPIKeyOwner(ctx, s.q(ctx), old.OwnerType, old.OwnerID); err != nil {
			return classify("postgres: rotate api key", err)
		}
		if err := s.UpdateAPIKey(ctx, old, expectVersion); err != nil {
			return err
		}
		return s.CreateAPIKey(ctx, succ)
	})
}

// revokedSet is the SET clause every API key revocation uses: the sealed
// successor secret goes too, so a revoked key cannot collect it.
const revokedSet = `status = 'revoked', revoked_at = $2, rotate_at = NULL,
	sealed_successor_secret = NULL, version = version + 1`

// RevokeAPIKeyChain implements storage.APIKeyStore. The chain is walked
// and revoked by one UPDATE with a recursive CTE, after the owner lock.
func (s *Store) RevokeAPIKeyChain(ctx context.Context, id string, at time.Time) ([]*storage.APIKey, error) {
	var out []*storage.APIKey
	err := s.withTx(ctx, func(ctx context.Context) error {
		var ownerType, ownerID string
		if err := s.q(ctx).QueryRow(ctx, `SELECT owner_type, owner_id FROM api_keys WHERE id = $1`, id).
			Scan(&ownerType, &ownerID); err != nil {
			return classify("postgres: revoke api key chain", err)
		}
		if err := lockAPIKeyOwner(ctx, s.q(ctx), ownerType, ownerID); err != nil {
			return classify("postgres: revoke api key chain", err)
		}
		var err error
		out, err = s.revokeAPIKeys(ctx, "revoke api key chain", `WITH RECURSIVE chain (id, replaces_id, replaced_by_id) AS (
				SELECT id, replaces_id, replaced_by_id FROM api_keys WHERE id = $1
				UNION
				SELECT k.id, k.replaces_id, k.replaced_by_id FROM api_keys k, chain c
				WHERE k.id = c.replaces_id OR k.id = c.replaced_by_id OR k.replaces_id = c.id
			)
			UPDATE api_keys SET `+revokedSet+`
			WHERE id IN (SELECT id FROM chain) AND status <> 'revoked'
			RETURNING `+apiKeySelect, id, at)
		return err
	})
	return out, err
}

// RevokeAPIKeysByOwner implements storage.APIKeyStore: the owner lock, then
// one UPDATE over the owner's keys.
func (s *Store) RevokeAPIKeysByOwner(ctx context.Context, ownerType, ownerID string, at time.Time) ([]*storage.APIKey, error) {
	var out []*storage.APIKey
	err := s.withTx(ctx, func(ctx context.Context) error {
		if err := lockAPIKeyOwner(ctx, s.q(ctx), ownerType, ownerID); err != nil {
			return classify("postgres: revoke api keys by owner", err)
		}
		var err error
		out, err = s.revokeAPIKeys(ctx, "revoke api keys by owner", `UPDATE api_keys SET `+revokedSet+`
			WHERE owner_type = $1 AND owner_id = $3 AND status <> 'revoked'
			RETURNING `+apiKeySelect, ownerType, at, ownerID)
		return err
	})
	return out, err
}

func (s *Store) revokeAPIKeys(ctx context.Context, op, sql string, args ...any) ([]*storage.APIKey, error) {
	rows, err := s.q(ctx).Query(ctx, sql, args...)
	if err != nil {
		return nil, classify("postgres: "+op, err)
	}
	defer rows.Close()
	var out []*storage.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, classify("postgres: "+op, err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("postgres: "+op, err)
	}
	return out, nil
}
