package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark-auth/bulwark/storage"
)

const userSelect = `id, username, email, password_hash, disabled, admin_scopes, totp_secret_sealed, created_at, updated_at, version`

func scanUser(row pgx.Row) (*storage.User, error) {
	var u storage.User
	if err := row.Scan(userDest(&u)...); err != nil {
		return nil, err
	}
	return finishUser(&u), nil
}

// userDest returns the scan destinations of userSelect.
func userDest(u *storage.User) []any {
	return []any{&u.ID, &u.Username, &u.Email, &u.PasswordHash, &u.Disabled, &u.AdminScopes,
		&u.TOTPSecretSealed, &u.CreatedAt, &u.UpdatedAt, &u.Version}
}

// finishUser normalises a scanned user as every read returns it.
func finishUser(u *storage.User) *storage.User {
	u.AdminScopes = nilIfEmpty(u.AdminScopes)
	if len(u.TOTPSecretSealed) == 0 {
		u.TOTPSecretSealed = nil
	}
	return u
}

// CreateUser implements storage.UserStore. A username equal to another one
// ignoring case is a conflict. Zero timestamps are set to now and Version
// starts at 1; both are written back to u.
func (s *Store) CreateUser(ctx context.Context, u *storage.User) error {
	now := s.now()
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
	u.Version = 1
	_, err := s.q(ctx).Exec(ctx, `INSERT INTO users (`+userSelect+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		u.ID, u.Username, u.Email, u.PasswordHash, u.Disabled, nonNil(u.AdminScopes), u.TOTPSecretSealed,
		u.CreatedAt, u.UpdatedAt, u.Version)
	return classify("postgres: create user", err)
}

// UserByID implements storage.UserStore.
func (s *Store) UserByID(ctx context.Context, id string) (*storage.User, error) {
	u, err := scanUser(s.q(ctx).QueryRow(ctx, `SELECT `+userSelect+` FROM users WHERE id = $1`, id))
	if err != nil {
		return nil, classify("postgres: get user", err)
	}
	return u, nil
}

// UserByUsername implements storage.UserStore through the lower(username)
// unique index.
func (s *Store) UserByUsername(ctx context.Context, username string) (*storage.User, error) {
	u, err := scanUser(s.q(ctx).QueryRow(ctx, `SELECT `+userSelect+` FROM users WHERE lower(username) = lower($1)`, username))
	if err != nil {
		return nil, classify("postgres: get user by name", err)
	}
	return u, nil
}

// ListUsers implements storage.UserStore.
func (s *Store) ListUsers(ctx context.Context, opts storage.ListOptions) ([]*storage.User, error) {
	rows, err := s.q(ctx).Query(ctx, `SELECT `+userSelect+` FROM users
		WHERE id > $1 AND ($2 = '' OR strpos(lower(username), lower($2)) > 0)
		ORDER BY id LIMIT $3`, opts.After, opts.NameContains, limitArg(opts.Limit))
	if err != nil {
		return nil, classify("postgres: list users", err)
	}
	defer rows.Close()
	var out []*storage.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, classify("postgres: list users", err)
		}
		out = append(out, u)
	}
	return out, classify("postgres: list users", rows.Err())
}

// UpdateUser implements storage.UserStore with the same version check as
// UpdateClient.
func (s *Store) UpdateUser(ctx context.Context, u *storage.User, expectVersion int64) error {
	u.UpdatedAt = s.now()
	var version int64
	err := s.q(ctx).QueryRow(ctx, `UPDATE users SET username = $2, email = $3, password_hash = $4, disabled = $5,
		admin_scopes = $6, totp_secret_sealed = $7, updated_at = $8, version = version + 1
		WHERE id = $1 AND version = $9 RETURNING version, created_at`,
		u.ID, u.Username, u.Email, u.PasswordHash, u.Disabled, nonNil(u.AdminScopes), u.TOTPSecretSealed,
		u.UpdatedAt, expectVersion).Scan(&version, &u.CreatedAt)
	if err != nil {
		return s.versionMiss(ctx, "update user", `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, u.ID, err)
	}
	u.Version = version
	return nil
}

// DeleteUser implements storage.UserStore. The user's consents and login
// sessions go with it; tokens are revoked separately (RevokeTokensBySubject)
// because the caller decides whether to audit that.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.inTx(ctx, func(q querier) error {
		tag, err := q.Exec(ctx, `DELETE FROM users WHERE id = $1`, id)
		if err != nil {
			return classify("postgres: delete user", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: delete user: %w", storage.ErrNotFound)
		}
		if _, err := q.Exec(ctx, `DELETE FROM consents WHERE subject = $1`, id); err != nil {
			return classify("postgres: delete user consents", err)
		}
		_, err = q.Exec(ctx, `DELETE FROM login_sessions WHERE subject = $1`, id)
		return classify("postgres: delete user sessions", err)
	})
}

// SaveConsent implements storage.ConsentStore (upsert).
func (s *Store) SaveConsent(ctx context.Context, c *storage.Consent) error {
	if c.GrantedAt.IsZero() {
		c.GrantedAt = s.now()
	}
	_, err := s.q(ctx).Exec(ctx, `INSERT INTO consents (subject, client_id, scopes, granted_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (subject, client_id) DO UPDATE
		SET scopes = EXCLUDED.scopes, granted_at = EXCLUDED.granted_at, expires_at = EXCLUDED.expires_at`,
		c.Subject, c.ClientID, nonNil(c.Scopes), c.GrantedAt, nullTime(c.ExpiresAt))
	return classify("postgres: save consent", err)
}

// GrantConsent implements storage.ConsentStore with one INSERT … ON
// CONFLICT that merges the scopes in SQL: the row it merges into is the one
// locked by the conflict, so there is no read of a consent a concurrent
// revocation deletes. New scopes come first, earlier ones keep their order.
func (s *Store) GrantConsent(ctx context.Context, c *storage.Consent) error {
	if c.GrantedAt.IsZero() {
		c.GrantedAt = s.now()
	}
	var scopes []string
	err := s.q(ctx).QueryRow(ctx, `INSERT INTO consents AS c (subject, client_id, scopes, granted_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (subject, client_id) DO UPDATE
		SET scopes = ARRAY(SELECT u.s FROM unnest(EXCLUDED.scopes || c.scopes) WITH ORDINALITY AS u(s, i)
				GROUP BY u.s ORDER BY min(u.i)),
			granted_at = EXCLUDED.granted_at, expires_at = EXCLUDED.expires_at
		RETURNING scopes`,
		c.Subject, c.ClientID, nonNil(c.Scopes), c.GrantedAt, nullTime(c.ExpiresAt)).Scan(&scopes)
	if err != nil {
		return classify("postgres: grant consent", err)
	}
	c.Scopes = nilIfEmpty(scopes)
	return nil
}

const consentSelect = `subject, client_id, scopes, granted_at, expires_at`

func scanConsent(row pgx.Row) (*storage.Consent, error) {
	var (
		c   storage.Consent
		exp *time.Time
	)
	if err := row.Scan(&c.Subject, &c.ClientID, &c.Scopes, &c.GrantedAt, &exp); err != nil {
		return nil, err
	}
	c.Scopes = nilIfEmpty(c.Scopes)
	c.ExpiresAt = fromNull(exp)
	return &c, nil
}

// GetConsent implements storage.ConsentStore. An expired consent is
// ErrNotFound: the user is asked again.
func (s *Store) GetConsent(ctx context.Context, subject, clientID string) (*storage.Consent, error) {
	c, err := scanConsent(s.q(ctx).QueryRow(ctx, `SELECT `+consentSelect+` FROM consents
		WHERE subject = $1 AND client_id = $2 AND (expires_at IS NULL OR expires_at > $3)`, subject, clientID, s.now()))
	if err != nil {
		return nil, classify("postgres: get consent", err)
	}
	return c, nil
}

// ListConsents implements storage.ConsentStore: the subject's unexpired
// consents, ordered by client id.
func (s *Store) ListConsents(ctx context.Context, subject string) ([]*storage.Consent, error) {
	rows, err := s.q(ctx).Query(ctx, `SELECT `+consentSelect+` FROM consents
		WHERE subject = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY client_id`, subject, s.now())
	if err != nil {
		return nil, classify("postgres: list consents", err)
	}
	defer rows.Close()
	var out []*storage.Consent
	for rows.Next() {
		c, err := scanConsent(rows)
		if err != nil {
			return nil, classify("postgres: list consents", err)
		}
		out = append(out, c)
	}
	return out, classify("postgres: list consents", rows.Err())
}

// RevokeConsent implements storage.ConsentStore; ErrNotFound if there was
// none.
func (s *Store) RevokeConsent(ctx context.Context, subject, clientID string) error {
	tag, err := s.q(ctx).Exec(ctx, `DELETE FROM consents WHERE subject = $1 AND client_id = $2`, subject, clientID)
	if err != nil {
		return classify("postgres: revoke consent", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: revoke consent: %w", storage.ErrNotFound)
	}
	return nil
}

// CreateLoginSession implements storage.LoginSessionStore. The key is hashed
// again before it is stored, so whether callers pass the cookie value or its
// HashKey, no table row can be replayed as a cookie.
func (s *Store) CreateLoginSession(ctx context.Context, ls *storage.LoginSession) error {
	data, err := json.Marshal(nonNilMap(ls.Data))
	if err != nil {
		return fmt.Errorf("postgres: encode login session: %w", err)
	}
	_, err = s.q(ctx).Exec(ctx, `INSERT INTO login_sessions (key, kind, subject, auth_time, last_seen, expires_at, data, sid)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		storage.HashKey(ls.Key), ls.Kind, ls.Subject, ls.AuthTime, ls.LastSeen, ls.ExpiresAt, data, ls.SID)
	return classify("postgres: create login session", err)
}

// GetLoginSession implements storage.LoginSessionStore; expired sessions are
// ErrNotFound.
func (s *Store) GetLoginSession(ctx context.Context, key string) (*storage.LoginSession, error) {
	ls := storage.LoginSession{Key: key}
	var data []byte
	err := s.q(ctx).QueryRow(ctx, `SELECT kind, subject, auth_time, last_seen, expires_at, data, sid
		FROM login_sessions WHERE key = $1 AND expires_at > $2`, storage.HashKey(key), s.now()).
		Scan(&ls.Kind, &ls.Subject, &ls.AuthTime, &ls.LastSeen, &ls.ExpiresAt, &data, &ls.SID)
	if err != nil {
		return nil, classify("postgres: get login session", err)
	}
	if err := json.Unmarshal(data, &ls.Data); err != nil {
		return nil, fmt.Errorf("postgres: decode login session: %w", err)
	}
	if len(ls.Data) == 0 {
		ls.Data = nil
	}
	return &ls, nil
}

// TouchLoginSession implements storage.LoginSessionStore.
func (s *Store) TouchLoginSession(ctx context.Context, key string, at time.Time) error {
	tag, err := s.q(ctx).Exec(ctx, `UPDATE login_sessions SET last_seen = $2 WHERE key = $1`, storage.HashKey(key), at)
	if err != nil {
		return classify("postgres: touch login session", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: touch login session: %w", storage.ErrNotFound)
	}
	return nil
}

// DeleteLoginSession implements storage.LoginSessionStore. Deleting a
// session that is already gone is not an error (sign-out is idempotent).
func (s *Store) DeleteLoginSession(ctx context.Context, key string) error {
	_, err := s.q(ctx).Exec(ctx, `DELETE FROM login_sessions WHERE key = $1`, storage.HashKey(key))
	return classify("postgres: delete login session", err)
}

// DeleteLoginSessionsBySubject implements storage.LoginSessionStore.
func (s *Store) DeleteLoginSessionsBySubject(ctx context.Context, subject string) (int64, error) {
	tag, err := s.q(ctx).Exec(ctx, `DELETE FROM login_sessions WHERE subject = $1`, subject)
	if err != nil {
		return 0, classify("postgres: delete login sessions", err)
	}
	return tag.RowsAffected(), nil
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
