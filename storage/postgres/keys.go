package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-auth/bulwark/storage"
)

const signingKeySelect = `kid, algorithm, state, public_jwk, sealed_private, created_at,
	activate_at, activated_at, retired_at, revoked_at, delete_after`

// CreateSigningKey implements storage.SigningKeyStore.
func (s *Store) CreateSigningKey(ctx context.Context, k *storage.SigningKey) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	_, err := s.q(ctx).Exec(ctx, `INSERT INTO signing_keys (`+signingKeySelect+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		k.KID, k.Algorithm, string(k.State), k.PublicJWK, k.SealedPrivate, k.CreatedAt,
		nullTime(k.ActivateAt), nullTime(k.ActivatedAt), nullTime(k.RetiredAt), nullTime(k.RevokedAt), nullTime(k.DeleteAfter))
	return classify("postgres: create signing key", err)
}

// ListSigningKeys implements storage.SigningKeyStore, oldest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]*storage.SigningKey, error) {
	rows, err := s.q(ctx).Query(ctx, `SELECT `+signingKeySelect+` FROM signing_keys ORDER BY created_at, kid`)
	if err != nil {
		return nil, classify("postgres: list signing keys", err)
	}
	defer rows.Close()
	var out []*storage.SigningKey
	for rows.Next() {
		var (
			k                                   storage.SigningKey
			state                               string
			activate, activated, retired, revok *time.Time
			deleteAfter                         *time.Time
		)
		if err := rows.Scan(&k.KID, &k.Algorithm, &state, &k.PublicJWK, &k.SealedPrivate, &k.CreatedAt,
			&activate, &activated, &retired, &revok, &deleteAfter); err != nil {
			return nil, classify("postgres: list signing keys", err)
		}
		k.State = storage.KeyState(state)
		k.ActivateAt, k.ActivatedAt = fromNull(activate), fromNull(activated)
		k.RetiredAt, k.RevokedAt, k.DeleteAfter = fromNull(retired), fromNull(revok), fromNull(deleteAfter)
		out = append(out, &k)
	}
	return out, classify("postgres: list signing keys", rows.Err())
}

// TransitionSigningKey implements storage.SigningKeyStore as one conditional
// UPDATE: of several replicas racing to rotate, exactly one sees a row
// change; the others get ErrPreconditionFailed.
func (s *Store) TransitionSigningKey(ctx context.Context, kid string, from, to storage.KeyState, at time.Time) error {
	tag, err := s.q(ctx).Exec(ctx, `UPDATE signing_keys SET state = $3,
		activated_at = CASE WHEN $3 = 'active' THEN $4 ELSE activated_at END,
		retired_at   = CASE WHEN $3 = 'retired' THEN $4 ELSE retired_at END,
		revoked_at   = CASE WHEN $3 = 'revoked' THEN $4 ELSE revoked_at END
		WHERE kid = $1 AND state = $2`, kid, string(from), string(to), at)
	if err != nil {
		return classify("postgres: transition signing key", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	return s.versionMiss(ctx, "transition signing key", `SELECT EXISTS (SELECT 1 FROM signing_keys WHERE kid = $1)`, kid, pgx.ErrNoRows)
}

// ResealSigningKey implements storage.SigningKeyStore.
func (s *Store) ResealSigningKey(ctx context.Context, kid string, sealed []byte) error {
	tag, err := s.q(ctx).Exec(ctx, `UPDATE signing_keys SET sealed_private = $2 WHERE kid = $1`, kid, sealed)
	if err != nil {
		return classify("postgres: reseal signing key", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: reseal signing key: %w", storage.ErrNotFound)
	}
	return nil
}

// DeleteSigningKey implements storage.SigningKeyStore.
func (s *Store) DeleteSigningKey(ctx context.Context, kid string) error {
	tag, err := s.q(ctx).Exec(ctx, `DELETE FROM signing_keys WHERE kid = $1`, kid)
	if err != nil {
		return classify("postgres: delete signing key", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete signing key: %w", storage.ErrNotFound)
	}
	return nil
}

// #nosec G101 -- a column list; the secret columns hold Argon2id hashes and sealed bytes.
const apiKeySelect = `id, name, owner_type, owner_id, scopes, hash, status, created_by, created_at,
	expires_at, last_used_at, revoked_at, rotation_period_ns, grace_period_ns, rotate_at,
	replaces_id, replaced_by_id, sealed_successor_secret, version`

func apiKeyArgs(k *storage.APIKey) []any {
	return []any{
		k.ID, k.Name, k.OwnerType, k.OwnerID, nonNil(k.Scopes), k.Hash, string(k.Status), k.CreatedBy, k.CreatedAt,
		nullTime(k.ExpiresAt), nullTime(k.LastUsedAt), nullTime(k.RevokedAt),
		int64(k.RotationPeriod), int64(k.GracePeriod), nullTime(k.RotateAt),
		k.ReplacesID, k.ReplacedByID, k.SealedSuccessorSecret, k.Version,
	}
}

func scanAPIKey(row pgx.Row) (*storage.APIKey, error) {
	var (
		k                                 storage.APIKey
		status                            string
		expires, lastUsed, revoked, rotAt *time.Time
		rotation, grace                   int64
	)
	if err := row.Scan(&k.ID, &k.Name, &k.OwnerType, &k.OwnerID, &k.Scopes, &k.Hash, &status, &k.CreatedBy, &k.CreatedAt,
		&expires, &lastUsed, &revoked, &rotation, &grace, &rotAt,
		&k.ReplacesID, &k.ReplacedByID, &k.SealedSuccessorSecret, &k.Version); err != nil {
		return nil, err
	}
	k.Status = storage.APIKeyStatus(status)
	k.Scopes = nilIfEmpty(k.Scopes)
	k.ExpiresAt, k.LastUsedAt, k.RevokedAt, k.RotateAt = fromNull(expires), fromNull(lastUsed), fromNull(revoked), fromNull(rotAt)
	k.RotationPeriod, k.GracePeriod = time.Duration(rotation), time.Duration(grace)
	if len(k.SealedSuccessorSecret) == 0 {
		k.SealedSuccessorSecret = nil
	}
	return &k, nil
}

// CreateAPIKey implements storage.APIKeyStore. Version starts at 1 and a
// zero CreatedAt is set to now; both are written back to k.
//
// A key owned by a disabled client or user is refused with
// storage.ErrOwnerDisabled. The check runs after the owner lock that
// RevokeAPIKeysByOwner also takes, so a create racing a disable either
// sees the disable (and refuses) or commits before the owner revocation
// starts (which then sees the key and revokes it): no live key survives.
func (s *Store) CreateAPIKey(ctx context.Context, k *storage.APIKey) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now()
	}
	k.Version = 1
	return s.withTx(ctx, func(ctx context.Context) error {
		if err := lockAPIKeyOwner(ctx, s.q(ctx), k.OwnerType, k.OwnerID); err != nil {
			return classify("postgres: create api key", err)
		}
		// Only one owner table can match; owner types without a table
		// (service) match none.
		tag, err := s.q(ctx).Exec(ctx, `INSERT INTO api_keys (`+apiKeySelect+`)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19
			WHERE NOT EXISTS (SELECT 1 FROM clients WHERE $3::text = 'client' AND id = $4::text AND disabled)
			  AND NOT EXISTS (SELECT 1 FROM users WHERE $3::text = 'user' AND id = $4::text AND disabled)`,
			apiKeyArgs(k)...)
		if err != nil {
			return classify("postgres: create api key", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: create api key: %w", storage.ErrOwnerDisabled)
		}
		return nil
	})
}

// APIKeyByID implements storage.APIKeyStore.
func (s *Store) APIKeyByID(ctx context.Context, id string) (*storage.APIKey, error) {
	k, err := scanAPIKey(s.q(ctx).QueryRow(ctx, `SELECT `+apiKeySelect+` FROM api_keys WHERE id = $1`, id))
	if err != nil {
		return nil, classify("postgres: get api key", err)
	}
	return k, nil
}

// ListAPIKeys implements storage.APIKeyStore.
func (s *Store) ListAPIKeys(ctx context.Context, opts storage.ListOptions) ([]*storage.APIKey, error) {
	rows, err := s.q(ctx).Query(ctx, `SELECT `+apiKeySelect+` FROM api_keys
		WHERE id > $1 AND ($2 = '' OR strpos(lower(name), lower($2)) > 0)
		ORDER BY id LIMIT $3`, opts.After, opts.NameContains, limitArg(opts.Limit))
	if err != nil {
		return nil, classify("postgres: list api keys", err)
	}
	defer rows.Close()
	var out []*storage.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, classify("postgres: list api keys", err)
		}
		out = append(out, k)
	}
	return out, classify("postgres: list api keys", rows.Err())
}

// UpdateAPIKey implements storage.APIKeyStore: every field but id and
// created_at is replaced if the version matches; k.Version is bumped.
func (s *Store) UpdateAPIKey(ctx context.Context, k *storage.APIKey, expectVersion int64) error {
	var version int64
	err := s.q(ctx).QueryRow(ctx, `UPDATE api_keys SET name = $2, owner_type = $3, owner_id = $4, scopes = $5,
		hash = $6, status = $7, created_by = $8, expires_at = $9, last_used_at = GREATEST(last_used_at, $10), revoked_at = $11,
		rotation_period_ns = $12, grace_period_ns = $13, rotate_at = $14, replaces_id = $15,
		replaced_by_id = $16, sealed_successor_secret = $17, version = version + 1
		WHERE id = $1 AND version = $18
		RETURNING version, created_at`,
		k.ID, k.Name, k.OwnerType, k.OwnerID, nonNil(k.Scopes), k.Hash, string(k.Status), k.CreatedBy,
		nullTime(k.ExpiresAt), nullTime(k.LastUsedAt), nullTime(k.RevokedAt),
		int64(k.RotationPeriod), int64(k.GracePeriod), nullTime(k.RotateAt),
		k.ReplacesID, k.ReplacedByID, k.SealedSuccessorSecret, expectVersion).Scan(&version, &k.CreatedAt)
	if err != nil {
		return s.versionMiss(ctx, "update api key", `SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1)`, k.ID, err)
	}
	k.Version = version
	return nil
}

// TouchAPIKeys implements storage.APIKeyStore in one statement over two
// parallel arrays. last_used_at only moves forward, so batches flushed out
// of order by different replicas cannot move it back. The version is not
// bumped: recording use is not an edit.
func (s *Store) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	if len(lastUsed) == 0 {
		return nil
	}
	ids := make([]string, 0, len(lastUsed))
	times := make([]time.Time, 0, len(lastUsed))
	for id, t := range lastUsed {
		ids = append(ids, id)
		times = append(times, t)
	}
	_, err := s.q(ctx).Exec(ctx, `UPDATE api_keys k
		SET last_used_at = GREATEST(COALESCE(k.last_used_at, u.t), u.t)
		FROM unnest($1::text[], $2::timestamptz[]) AS u(id, t)
		WHERE k.id = u.id`, ids, times)
	return classify("postgres: touch api keys", err)
}

// RevokeSigningKey implements storage.SigningKeyStore: the revocation and
// the promotion (or insertion) of the replacement commit together.
func (s *Store) RevokeSigningKey(ctx context.Context, kid string, from storage.KeyState, at time.Time, replacement *storage.SigningKey) error {
	return s.withTx(ctx, func(ctx context.Context) error {
		tag, err := s.q(ctx).Exec(ctx, `UPDATE signing_keys SET state = 'revoked', revoked_at = $3
			WHERE kid = $1 AND state = $2`, kid, string(from), at)
		if err != nil {
			return classify("postgres: revoke signing key", err)
		}
		if tag.RowsAffected() != 1 {
			return s.versionMiss(ctx, "revoke signing key", `SELECT EXISTS (SELECT 1 FROM signing_keys WHERE kid = $1)`, kid, pgx.ErrNoRows)
		}
		switch {
		case replacement == nil:
			return nil
		case replacement.State == storage.KeyNext:
			tag, err := s.q(ctx).Exec(ctx, `UPDATE signing_keys SET state = 'active', activated_at = $2
				WHERE kid = $1 AND state = 'next'`, replacement.KID, at)
			if err != nil {
				return classify("postgres: promote signing key", err)
			}
			if tag.RowsAffected() != 1 {
				return fmt.Errorf("postgres: promote signing key %s: %w", replacement.KID, storage.ErrPreconditionFailed)
			}
			return nil
		default:
			return s.CreateSigningKey(ctx, replacement)
		}
	})
}
