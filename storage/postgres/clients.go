package postgres

import (
	"context"
	"fmt"

	"github.com/bulwark-auth/bulwark/storage"
)

// CreateClient implements storage.ClientStore. Zero timestamps are set to
// now and Version starts at 1; both are written back to c.
func (s *Store) CreateClient(ctx context.Context, c *storage.Client) error {
	now := s.now()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = c.CreatedAt
	}
	c.Version = 1
	args, err := clientArgs(c)
	if err != nil {
		return err
	}
	_, err = s.q(ctx).Exec(ctx, `INSERT INTO clients (`+clientInsertCols+`) VALUES (`+clientInsertArgs+`)`, args...)
	return classify("postgres: create client", err)
}

// ClientByID implements storage.ClientStore.
func (s *Store) ClientByID(ctx context.Context, id string) (*storage.Client, error) {
	c, err := scanClient(s.q(ctx).QueryRow(ctx, `SELECT `+clientSelect+` FROM clients WHERE id = $1`, id))
	if err != nil {
		return nil, classify("postgres: get client", err)
	}
	return c, nil
}

// ListClients implements storage.ClientStore.
func (s *Store) ListClients(ctx context.Context, opts storage.ListOptions) ([]*storage.Client, error) {
	rows, err := s.q(ctx).Query(ctx, `SELECT `+clientSelect+` FROM clients
		WHERE id > $1 AND ($2 = '' OR strpos(lower(name), lower($2)) > 0)
		ORDER BY id LIMIT $3`, opts.After, opts.NameContains, limitArg(opts.Limit))
	if err != nil {
		return nil, classify("postgres: list clients", err)
	}
	defer rows.Close()
	var out []*storage.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, classify("postgres: list clients", err)
		}
		out = append(out, c)
	}
	return out, classify("postgres: list clients", rows.Err())
}

// UpdateClient implements storage.ClientStore: a conditional UPDATE on the
// version, so concurrent admins cannot overwrite each other. c.Version and
// c.UpdatedAt are set to the stored values.
func (s *Store) UpdateClient(ctx context.Context, c *storage.Client, expectVersion int64) error {
	c.UpdatedAt = s.now()
	args, err := clientUpdateArgs(c)
	if err != nil {
		return err
	}
	args = append(args, expectVersion)
	var version int64
	err = s.q(ctx).QueryRow(ctx, fmt.Sprintf(`UPDATE clients SET %s, version = version + 1
		WHERE id = $1 AND version = $%d RETURNING version, created_at`, clientUpdateSet, len(args)),
		args...).Scan(&version, &c.CreatedAt)
	if err != nil {
		return s.versionMiss(ctx, "update client", `SELECT EXISTS (SELECT 1 FROM clients WHERE id = $1)`, c.ID, err)
	}
	c.Version = version
	return nil
}

// versionMiss turns the "no row" of a conditional update into ErrNotFound
// or ErrPreconditionFailed, depending on whether the row exists.
func (s *Store) versionMiss(ctx context.Context, op, existsSQL, id string, err error) error {
	if cerr := classify("postgres: "+op, err); !isNotFound(cerr) {
		return cerr
	}
	var exists bool
	if err := s.q(ctx).QueryRow(ctx, existsSQL, id).Scan(&exists); err != nil {
		return classify("postgres: "+op, err)
	}
	if exists {
		return fmt.Errorf("postgres: %s: %w", op, storage.ErrPreconditionFailed)
	}
	return fmt.Errorf("postgres: %s: %w", op, storage.ErrNotFound)
}

// DeleteClient implements storage.ClientStore: the client, every token
// session issued to it and the consents granted to it go in one
// transaction.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.inTx(ctx, func(q querier) error {
		tag, err := q.Exec(ctx, `DELETE FROM clients WHERE id = $1`, id)
		if err != nil {
			return classify("postgres: delete client", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: delete client: %w", storage.ErrNotFound)
		}
		// Like containment (lock order in doc.go): a code exchange or
		// refresh of this client holds the client lock shared until it
		// commits, so the token rows it mints are visible to the DELETE
		// below instead of outliving the client.
		if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, hashtext($2))`, lockClassClient, id); err != nil {
			return classify("postgres: delete client: lock client", err)
		}
		if _, err := q.Exec(ctx, `DELETE FROM token_sessions WHERE client_id = $1`, id); err != nil {
			return classify("postgres: delete client tokens", err)
		}
		_, err = q.Exec(ctx, `DELETE FROM consents WHERE client_id = $1`, id)
		return classify("postgres: delete client consents", err)
	})
}

// revokeTokensWhere is incident containment. It first takes the subject
// and/or client locks exclusively (lock order in doc.go): a code exchange or
// refresh of a matching grant holds them shared from before its first row
// lock until it commits, so containment either waits for it and then sees
// the tokens it minted, or runs first and leaves it no active code or
// refresh token to mint from. It then invalidates matching authorization
// codes, deactivates refresh tokens and deletes access tokens, in that
// order (the order a mint locks rows in). It returns access tokens deleted
// plus refresh tokens deactivated.
func (s *Store) revokeTokensWhere(ctx context.Context, op string, subject, clientID *string, cond string, args ...any) (int64, error) {
	var n int64
	err := s.retryTx(ctx, func(q querier) error {
		n = 0
		if subject != nil {
			if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, hashtext($2))`, lockClassSubject, *subject); err != nil {
				return classify("postgres: "+op+": lock subject", err)
			}
		}
		if clientID != nil {
			if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, hashtext($2))`, lockClassClient, *clientID); err != nil {
				return classify("postgres: "+op+": lock client", err)
			}
		}
		if _, err := q.Exec(ctx, `UPDATE token_sessions SET active = false
			WHERE kind = 'code' AND active AND `+cond, args...); err != nil {
			return classify("postgres: "+op, err)
		}
		upd, err := q.Exec(ctx, `UPDATE token_sessions SET active = false
			WHERE kind = 'refresh' AND active AND `+cond, args...)
		if err != nil {
			return classify("postgres: "+op, err)
		}
		del, err := q.Exec(ctx, `DELETE FROM token_sessions WHERE kind = 'access' AND `+cond, args...)
		if err != nil {
			return classify("postgres: "+op, err)
		}
		n = del.RowsAffected() + upd.RowsAffected()
		return nil
	})
	return n, err
}

// RevokeTokensByClient implements storage.TokenRevoker.
func (s *Store) RevokeTokensByClient(ctx context.Context, clientID string) (int64, error) {
	return s.revokeTokensWhere(ctx, "revoke tokens by client", nil, &clientID, `client_id = $1`, clientID)
}

// RevokeTokensBySubject implements storage.TokenRevoker.
func (s *Store) RevokeTokensBySubject(ctx context.Context, subject string) (int64, error) {
	if subject == "" {
		// Client-credentials tokens have no subject; an empty subject
		// must not match all of them.
		return 0, nil
	}
	return s.revokeTokensWhere(ctx, "revoke tokens by subject", &subject, nil, `subject = $1 AND subject <> ''`, subject)
}

// RevokeTokensBySubjectAndClient implements storage.TokenRevoker.
func (s *Store) RevokeTokensBySubjectAndClient(ctx context.Context, subject, clientID string) (int64, error) {
	if subject == "" {
		return 0, nil
	}
	return s.revokeTokensWhere(ctx, "revoke tokens by subject and client", &subject, &clientID, `subject = $1 AND subject <> '' AND client_id = $2`, subject, clientID)
}
