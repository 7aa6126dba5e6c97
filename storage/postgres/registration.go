package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwark-auth/bulwark/storage"
)

var _ storage.RegistrationStore = (*Store)(nil)

// codeForeignKeyViolation: a registration token for a client that does
// not exist (any more).
const codeForeignKeyViolation = "23503"

const initialTokenColumns = `id, description, scopes, grant_types, max_clients, registered, expires_at, revoked_at, created_by, created_at`

func scanInitialToken(row pgx.Row) (*storage.InitialAccessToken, error) {
	var t storage.InitialAccessToken
	if err := row.Scan(&t.ID, &t.Description, &t.Scopes, &t.GrantTypes, &t.MaxClients, &t.Registered,
		&t.ExpiresAt, &t.RevokedAt, &t.CreatedBy, &t.CreatedAt); err != nil {
		return nil, err
	}
	t.Scopes, t.GrantTypes = nilIfEmpty(t.Scopes), nilIfEmpty(t.GrantTypes)
	return &t, nil
}

// CreateInitialAccessToken implements storage.RegistrationStore.
func (s *Store) CreateInitialAccessToken(ctx context.Context, t *storage.InitialAccessToken, lookupHash []byte) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	_, err := s.q(ctx).Exec(ctx, `INSERT INTO initial_access_tokens
		(id, lookup_hash, description, scopes, grant_types, max_clients, registered, expires_at, revoked_at, created_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		t.ID, lookupHash, t.Description, nonNil(t.Scopes), nonNil(t.GrantTypes), t.MaxClients, t.Registered,
		t.ExpiresAt, t.RevokedAt, t.CreatedBy, t.CreatedAt)
	return classify("postgres: create initial access token", err)
}

// InitialAccessTokenByID implements storage.RegistrationStore.
func (s *Store) InitialAccessTokenByID(ctx context.Context, id string) (*storage.InitialAccessToken, error) {
	t, err := scanInitialToken(s.q(ctx).QueryRow(ctx, `SELECT `+initialTokenColumns+` FROM initial_access_tokens WHERE id = $1`, id))
	if err != nil {
		return nil, classify("postgres: get initial access token", err)
	}
	return t, nil
}

// ListInitialAccessTokens implements storage.RegistrationStore.
func (s *Store) ListInitialAccessTokens(ctx context.Context, opts storage.ListOptions) ([]*storage.InitialAccessToken, error) {
	rows, err := s.q(ctx).Query(ctx, `SELECT `+initialTokenColumns+` FROM initial_access_tokens
		WHERE id > $1 AND ($2 = '' OR strpos(lower(description), lower($2)) > 0)
		ORDER BY id LIMIT $3`, opts.After, opts.NameContains, limitArg(opts.Limit))
	if err != nil {
		return nil, classify("postgres: list initial access tokens", err)
	}
	defer rows.Close()
	var out []*storage.InitialAccessToken
	for rows.Next() {
		t, err := scanInitialToken(rows)
		if err != nil {
			return nil, classify("postgres: list initial access tokens", err)
		}
		out = append(out, t)
	}
	return out, classify("postgres: list initial access tokens", rows.Err())
}

// RevokeInitialAccessToken implements storage.RegistrationStore. The
// first revocation's time is kept.
func (s *Store) RevokeInitialAccessToken(ctx context.Context, id string, at time.Time) (*storage.InitialAccessToken, error) {
	t, err := scanInitialToken(s.q(ctx).QueryRow(ctx, `UPDATE initial_access_tokens
		SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING `+initialTokenColumns, id, at))
	if err != nil {
		return nil, classify("postgres: revoke initial access token", err)
	}
	return t, nil
}

// UseInitialAccessToken implements storage.RegistrationStore: one
// conditional UPDATE decides. Concurrent callers queue on the row lock and
// re-check the condition after the winner commits, so a token with one
// use left admits exactly one of them.
func (s *Store) UseInitialAccessToken(ctx context.Context, hashes [][]byte, now time.Time) (*storage.InitialAccessToken, error) {
	t, err := scanInitialToken(s.q(ctx).QueryRow(ctx, `UPDATE initial_access_tokens SET registered = registered + 1
		WHERE lookup_hash = ANY($1) AND revoked_at IS NULL AND expires_at > $2 AND registered < max_clients
		RETURNING `+initialTokenColumns, hashes, now))
	if err != nil {
		return nil, classify("postgres: use initial access token", err)
	}
	return t, nil
}

// DeleteEndedInitialAccessTokens implements storage.RegistrationStore in
// bounded batches, like the other janitor deletes. LEAST skips a NULL
// revoked_at, so it is storage.InitialAccessToken.EndedAt.
func (s *Store) DeleteEndedInitialAccessTokens(ctx context.Context, before time.Time, batch int) (int64, error) {
	return s.deleteBatched(ctx, "initial_access_tokens", "LEAST(expires_at, revoked_at)", before, batch)
}

// CreateRegistrationToken implements storage.RegistrationStore.
func (s *Store) CreateRegistrationToken(ctx context.Context, clientID string, hash []byte, at time.Time) error {
	_, err := s.q(ctx).Exec(ctx, `INSERT INTO client_registrations (client_id, token_hash, issued_at) VALUES ($1, $2, $3)`,
		clientID, hash, at)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeForeignKeyViolation {
		return fmt.Errorf("postgres: create registration token: %w", storage.ErrNotFound)
	}
	return classify("postgres: create registration token", err)
}

// CheckRegistrationToken implements storage.RegistrationStore.
func (s *Store) CheckRegistrationToken(ctx context.Context, clientID string, hashes [][]byte) error {
	var one int
	err := s.q(ctx).QueryRow(ctx, `SELECT 1 FROM client_registrations WHERE client_id = $1 AND token_hash = ANY($2)`,
		clientID, hashes).Scan(&one)
	return classify("postgres: check registration token", err)
}

// RotateRegistrationToken implements storage.RegistrationStore: one
// conditional UPDATE, so of concurrent rotations with the same token the
// first to commit wins and the others match nothing.
func (s *Store) RotateRegistrationToken(ctx context.Context, clientID string, old [][]byte, next []byte, at time.Time) error {
	tag, err := s.q(ctx).Exec(ctx, `UPDATE client_registrations SET token_hash = $3, issued_at = $4
		WHERE client_id = $1 AND token_hash = ANY($2)`, clientID, old, next, at)
	if err != nil {
		return classify("postgres: rotate registration token", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: rotate registration token: %w", storage.ErrNotFound)
	}
	return nil
}
