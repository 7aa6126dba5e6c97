package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// Token session kinds, the token_sessions.kind column.
const (
	kindCode    = "code"
	kindAccess  = "access"
	kindRefresh = "refresh"
	kindPKCE    = "pkce"
	kindOIDC    = "oidc"
	kindPAR     = "par"
)

// GetClient implements fosite.ClientManager. A disabled client is reported
// as unknown, so fosite refuses it as invalid_client everywhere.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.ClientByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.Disabled {
		return nil, fmt.Errorf("postgres: client disabled: %w", storage.ErrNotFound)
	}
	return c, nil
}

// ClientAssertionJWTValid implements fosite.ClientManager: fosite.ErrJTIKnown
// while an unexpired assertion with this JTI has been seen.
func (s *Store) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	var known bool
	err := s.q(ctx).QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM client_assertion_jtis WHERE jti_hash = $1 AND expires_at > $2)`,
		storage.HashKey(jti), s.now()).Scan(&known)
	if err != nil {
		return classify("postgres: check jti", err)
	}
	if known {
		return fosite.ErrJTIKnown
	}
	return nil
}

// SetClientAssertionJWT implements fosite.ClientManager. One statement: the
// insert replaces an expired row with the same JTI and refuses a live one.
// Expired rows are otherwise left to the janitor.
func (s *Store) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	tag, err := s.q(ctx).Exec(ctx, `INSERT INTO client_assertion_jtis (jti_hash, expires_at) VALUES ($1, $2)
		ON CONFLICT (jti_hash) DO UPDATE SET expires_at = EXCLUDED.expires_at
		WHERE client_assertion_jtis.expires_at <= $3`,
		storage.HashKey(jti), exp, s.now())
	if err != nil {
		return classify("postgres: set jti", err)
	}
	if tag.RowsAffected() == 0 {
		return fosite.ErrJTIKnown
	}
	return nil
}

// errClientDisabled refuses a mint for a client that is disabled (or
// deleted) by the time the INSERT runs: invalid_client (RFC 6749 §5.2), so
// the token endpoint answers 401, never 500.
// It is built per call: fosite's errors cache their description in
// place, so one shared value would be written by concurrent requests.
func errClientDisabled() error { return fosite.ErrInvalidClient.WithHint("The client is disabled.") }

// createToken stores one fosite request: a single INSERT.
//
// A mint outside a transaction (client credentials, token exchange, a code
// issued at the authorization endpoint) holds no grant lock, so it is
// serialised with containment by the INSERT itself: it selects the client
// row FOR SHARE and only when it is not disabled. An uncommitted disable
// holds that row; READ COMMITTED re-checks it once the disable commits,
// and the INSERT then writes nothing. A mint that commits first is seen by
// the disable's RevokeTokensByClient. Mints inside a transaction (code
// exchange, refresh rotation) took the shared client lock in lockGrant and
// must not lock the client row after it (doc.go, lock order); their rows
// are queued and written with the transaction's next statement or its
// commit (txn), in one INSERT.
//
// An access token carries the request's audit event when the audit sink
// attached one (storage.TokenAudit): the INSERT then becomes a
// data-modifying CTE whose outer INSERT writes the audit row once per token
// row, in the same statement. A refused mint writes neither; a rolled-back
// transaction keeps neither.
func (s *Store) createToken(ctx context.Context, kind, key string, r fosite.Requester, tt fosite.TokenType, fallback time.Duration) error {
	rec, err := storage.EncodeRequest(key, r, tt, fallback)
	if err != nil {
		return err
	}
	if rec.RequestedAt.IsZero() {
		rec.RequestedAt = s.now()
	}
	var event *storage.AuditEvent
	if kind == kindAccess {
		event = storage.TakeTokenAudit(ctx)
	}
	if t := txFrom(ctx); t != nil {
		t.queue(kind, rec, event)
		return nil
	}
	args := []any{kind, rec.Key, rec.RequestID, rec.ClientID, rec.Subject, rec.Active, rec.RequestedAt, rec.ExpiresAt, rec.Data}
	sql, returnsID := insertTokenGuarded, false
	if event != nil {
		audit, err := s.auditArgs(event)
		if err != nil {
			return err
		}
		sql, returnsID = insertTokenGuardedAudited, true
		args = append(args, audit...)
	}
	// Outside a transaction the write joins a batch (tokenwriter.go).
	id, rows, err := s.writer.write(ctx, sql, args, returnsID)
	if err != nil {
		return classify("postgres: create "+kind+" session", err)
	}
	if rows == 0 {
		return fmt.Errorf("postgres: create %s session: %w", kind, errClientDisabled())
	}
	if event != nil {
		event.ID = id
	}
	return nil
}

// insertTokenGuarded is createToken's INSERT outside a transaction,
// guarded by the client row.
const insertTokenGuarded = `INSERT INTO token_sessions
	(kind, key, request_id, client_id, subject, active, requested_at, expires_at, data)
	SELECT $1::text, $2::text, $3::text, c.id, $5::text, $6::boolean, $7::timestamptz, $8::timestamptz, $9::jsonb
	FROM clients c WHERE c.id = $4::text AND NOT c.disabled FOR SHARE OF c`

// insertTokenGuardedAudited is insertTokenGuarded as a data-modifying CTE
// whose outer INSERT writes the request's audit row (parameters 10 on)
// once per token row, returning its id.
var insertTokenGuardedAudited = `WITH t AS (` + insertTokenGuarded + ` RETURNING 1)
	INSERT INTO audit_events ` + auditColumns + ` SELECT ` + auditParams(10) + ` FROM t RETURNING id`

// getToken loads one fosite request and its client in one round trip. A
// token whose client no longer exists is reported as unknown: tokens are
// deleted with their client, so such a row is an orphan of a race and must
// not be honoured. Outside a transaction, a code, its PKCE request or a
// refresh token that ReadGrant read for this request is answered from the
// context.
func (s *Store) getToken(ctx context.Context, kind, key string, session fosite.Session) (fosite.Requester, bool, error) {
	if g := aheadFrom(ctx, s); g != nil && !s.hasTx(ctx) {
		if req, active, held, err := g.get(kind, key, session); held {
			return req, active, err
		}
	}
	return s.loadToken(ctx, `SELECT active, data, client_id FROM token_sessions WHERE kind = $1 AND key = $2`,
		kind, key, session)
}

// consumeToken deletes one single-use row (OIDC session, pushed request)
// and returns what it held, in one statement: of several concurrent callers
// exactly one gets the row, the others fosite.ErrNotFound.
func (s *Store) consumeToken(ctx context.Context, kind, key string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.loadToken(ctx, `DELETE FROM token_sessions WHERE kind = $1 AND key = $2 RETURNING active, data, client_id`,
		kind, key, session)
	return req, err
}

// loadToken runs rowSQL (which yields active, data and client_id of one
// row) and decodes the row with its client.
func (s *Store) loadToken(ctx context.Context, rowSQL, kind, key string, session fosite.Session) (fosite.Requester, bool, error) {
	var (
		rec       storage.TokenRecord
		hasClient bool
		cs        clientScan
	)
	dest := append([]any{&rec.Active, &rec.Data, &hasClient}, cs.dest()...)
	err := s.q(ctx).QueryRow(ctx, `WITH t AS (`+rowSQL+`)
		SELECT t.active, t.data, c.id IS NOT NULL, `+clientJoinSelect+`
		FROM t LEFT JOIN clients c ON c.id = t.client_id`, kind, storage.HashKey(key)).Scan(dest...)
	if err != nil {
		return nil, false, classify("postgres: get "+kind+" session", err)
	}
	if !hasClient {
		return nil, false, fmt.Errorf("postgres: get %s session: client gone: %w", kind, storage.ErrNotFound)
	}
	client, err := cs.client()
	if err != nil {
		return nil, false, err
	}
	req, err := storage.DecodeRequest(&rec, client, session)
	if err != nil {
		return nil, false, err
	}
	return req, rec.Active, nil
}

func (s *Store) deleteToken(ctx context.Context, kind, key string) error {
	_, err := s.q(ctx).Exec(ctx, `DELETE FROM token_sessions WHERE kind = $1 AND key = $2`, kind, storage.HashKey(key))
	return classify("postgres: delete "+kind+" session", err)
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.createToken(ctx, kindCode, code, r, fosite.AuthorizeCode, storage.FallbackCodeLifetime)
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage. An
// invalidated code returns the requester together with
// fosite.ErrInvalidatedAuthorizeCode, so fosite can revoke what the code
// already produced (RFC 6749 §4.1.2).
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, code string, session fosite.Session) (fosite.Requester, error) {
	req, active, err := s.getToken(ctx, kindCode, code, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage
// and is the one consumption point of a code (RFC 6749 §4.1.2): under the
// grant's locks (see doc.go), UPDATE … AND active decides the single
// winner; every other caller gets fosite.ErrInvalidatedAuthorizeCode. The
// row stays so that a replayed code is recognised. The code's PKCE row is
// consumed together with it, so the PKCE requirement stays bound to the
// code until the code is used (a failed verifier leaves both in place).
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	key := storage.HashKey(code)
	// When ReadGrant was given the raw code, the code's OpenID Connect
	// request goes in the same statement (GetOpenIDConnectSession then
	// hands it out, once this transaction committed).
	g := aheadFrom(ctx, s)
	if g != nil && (g.kind != kindCode || g.key != key || g.oidcKey == "") {
		g = nil
	}
	oidcKey := ""
	if g != nil {
		oidcKey = g.oidcKey
	}
	var oidc []byte
	err := s.inTx(ctx, func(q querier) error {
		var used int
		b := &pgx.Batch{}
		queueLockGrant(b, kindCode, key)
		b.Queue(`WITH c AS (
				UPDATE token_sessions SET active = false WHERE kind = 'code' AND key = $1 AND active RETURNING key
			), p AS (
				DELETE FROM token_sessions WHERE kind = 'pkce' AND key IN (SELECT key FROM c)
			), o AS (
				DELETE FROM token_sessions WHERE kind = 'oidc' AND key = $2 AND EXISTS (SELECT 1 FROM c) RETURNING data
			)
			SELECT (SELECT count(*) FROM c), (SELECT data FROM o)`, key, oidcKey).QueryRow(func(row pgx.Row) error {
			return row.Scan(&used, &oidc)
		})
		if err := sendBatch(ctx, q, b); err != nil {
			return classify("postgres: invalidate code", err)
		}
		if used == 0 {
			return fmt.Errorf("postgres: invalidate code: already used: %w", fosite.ErrInvalidatedAuthorizeCode)
		}
		return nil
	})
	if err != nil || g == nil {
		return err
	}
	taken := func() { g.takeOIDC(oidc) }
	if t := txFrom(ctx); t != nil {
		t.onCommit(taken)
	} else {
		taken()
	}
	return nil
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage: one INSERT.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.createToken(ctx, kindAccess, signature, r, fosite.AccessToken, storage.FallbackAccessLifetime)
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.getToken(ctx, kindAccess, signature, session)
	return req, err
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindAccess, signature)
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage. The access
// token is found again through the shared request id, so its signature is
// not stored.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, _ string, r fosite.Requester) error {
	return s.createToken(ctx, kindRefresh, signature, r, fosite.RefreshToken, storage.FallbackRefreshLifetime)
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage. An inactive
// (rotated or revoked) token returns the requester together with
// fosite.ErrInactiveToken: fosite treats that as reuse and revokes the
// family.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, active, err := s.getToken(ctx, kindRefresh, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage. fosite
// calls it when it detected reuse, before it revokes the family; it takes
// the grant's locks first so the lock order of doc.go holds.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	key := storage.HashKey(signature)
	return s.inTx(ctx, func(q querier) error {
		if err := lockGrant(ctx, q, kindRefresh, key); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			return fmt.Errorf("postgres: delete refresh session: %w", err)
		}
		_, err := q.Exec(ctx, `DELETE FROM token_sessions WHERE kind = $1 AND key = $2`, kindRefresh, key)
		return classify("postgres: delete refresh session", err)
	})
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage: under the
// grant's locks (see doc.go) the old refresh token is kept but made
// inactive (so its reuse is detected) and the family's access tokens are
// deleted. When the token is already inactive a concurrent refresh with the
// same token won the race; that is reported as
// fosite.ErrSerializationFailure so only one of them yields new tokens.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	key := storage.HashKey(signature)
	return s.retryTx(ctx, func(q querier) error {
		var rotated int
		b := &pgx.Batch{}
		queueLockGrant(b, kindRefresh, key)
		b.Queue(rotateRefreshSQL, key, requestID).QueryRow(func(row pgx.Row) error {
			return row.Scan(&rotated)
		})
		if err := sendBatch(ctx, q, b); err != nil {
			return classify("postgres: rotate refresh token", err)
		}
		if rotated == 0 {
			return fmt.Errorf("postgres: rotate refresh token: already rotated: %w", fosite.ErrSerializationFailure)
		}
		return nil
	})
}

// The statements that find a grant's rows by request id; each names the
// kind, and the (request_id, kind) index answers it (migration 0014).
const (
	// rotateRefreshSQL makes refresh token $1 inactive and deletes the
	// family's ($2) access tokens, in one statement; it yields 1 for the
	// one caller that rotated, 0 for the others.
	rotateRefreshSQL = `WITH r AS (
				UPDATE token_sessions SET active = false WHERE kind = 'refresh' AND key = $1 AND active RETURNING 1
			), a AS (
				DELETE FROM token_sessions WHERE kind = 'access' AND request_id = $2 AND EXISTS (SELECT 1 FROM r)
			)
			SELECT count(*) FROM r`
	revokeRefreshFamilySQL = `UPDATE token_sessions SET active = false WHERE kind = 'refresh' AND request_id = $1 AND active`
	revokeAccessFamilySQL  = `DELETE FROM token_sessions WHERE kind = 'access' AND request_id = $1`
)

// RevokeRefreshToken implements oauth2.TokenRevocationStorage: every refresh
// token of the request id (the family) becomes inactive. The family lock
// makes it wait for a rotation or code exchange in flight, so the token
// that one mints is revoked too.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.inTx(ctx, func(q querier) error {
		if err := lockFamily(ctx, q, requestID); err != nil {
			return fmt.Errorf("postgres: revoke refresh tokens: %w", err)
		}
		_, err := q.Exec(ctx, revokeRefreshFamilySQL, requestID)
		return classify("postgres: revoke refresh tokens", err)
	})
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage: every access
// token of the request id is deleted, under the family lock like
// RevokeRefreshToken.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.inTx(ctx, func(q querier) error {
		if err := lockFamily(ctx, q, requestID); err != nil {
			return fmt.Errorf("postgres: revoke access tokens: %w", err)
		}
		_, err := q.Exec(ctx, revokeAccessFamilySQL, requestID)
		return classify("postgres: revoke access tokens", err)
	})
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.createToken(ctx, kindPKCE, signature, r, fosite.AuthorizeCode, storage.FallbackCodeLifetime)
}

// GetPKCERequestSession implements pkce.PKCERequestStorage; a missing row is
// fosite.ErrNotFound, which fosite reads as "no PKCE was used".
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.getToken(ctx, kindPKCE, signature, session)
	return req, err
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage. It changes
// nothing: fosite calls it before it compares the verifier, so deleting here
// would let a request with a wrong verifier strip the PKCE requirement from
// a still valid code. The row is consumed with its code instead, in
// InvalidateAuthorizeCodeSession (RFC 7636 §4.6).
func (s *Store) DeletePKCERequestSession(context.Context, string) error {
	return nil
}

// CreateOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
// fosite passes the raw authorization code; it is hashed like every key.
func (s *Store) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.createToken(ctx, kindOIDC, code, r, fosite.AuthorizeCode, storage.FallbackCodeLifetime)
}

// GetOpenIDConnectSession implements openid.OpenIDConnectRequestStorage. The
// row is single use: it is read and deleted in one statement (DELETE …
// RETURNING), so it is never lost between a read and a delete. fosite asks
// for it only after the code was consumed, that is, in the one winner. The
// stored session is decoded into the requester's session type.
func (s *Store) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	var session fosite.Session
	if r != nil {
		session = r.GetSession()
	}
	if g := aheadFrom(ctx, s); g != nil {
		if req, held, err := g.oidcSession(code, session); held {
			return req, err
		}
	}
	return s.consumeToken(ctx, kindOIDC, code, session)
}

// DeleteOpenIDConnectSession implements openid.OpenIDConnectRequestStorage;
// after GetOpenIDConnectSession there is nothing left to delete.
func (s *Store) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	return s.deleteToken(ctx, kindOIDC, code)
}

// CreatePARSession implements fosite.PARStorage (RFC 9126), keyed by
// HashKey(request_uri).
func (s *Store) CreatePARSession(ctx context.Context, requestURI string, r fosite.AuthorizeRequester) error {
	return s.createToken(ctx, kindPAR, requestURI, r, fosite.PushedAuthorizeRequestContext, storage.FallbackPARLifetime)
}

// GetPARSession implements fosite.PARStorage. A request_uri is single use
// (RFC 9126 §4): the row is read and deleted in one statement, so of
// concurrent uses exactly one gets it and the others fosite.ErrNotFound.
func (s *Store) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	req, err := s.consumeToken(ctx, kindPAR, requestURI, nil)
	if err != nil {
		return nil, err
	}
	ar, ok := req.(fosite.AuthorizeRequester)
	if !ok {
		return nil, errors.New("postgres: stored PAR session is not an authorize request")
	}
	return ar, nil
}

// DeletePARSession implements fosite.PARStorage; GetPARSession already
// consumed the row.
func (s *Store) DeletePARSession(ctx context.Context, requestURI string) error {
	return s.deleteToken(ctx, kindPAR, requestURI)
}

// Advisory lock classes (the first key of the two-key form, which never
// collides with the one-key locks of TryLock and the migration lock's
// class). The second key is hashtext of the request id, subject or client
// id; a hash collision only serialises two unrelated grants.
const (
	lockClassFamily  = 0x62770001
	lockClassSubject = 0x62770002
	lockClassClient  = 0x62770003
)

// lockFamily takes the transaction-scoped lock of one grant family (request
// id). It must be its own statement: under READ COMMITTED the statements
// after it see everything the previous holder committed.
func lockFamily(ctx context.Context, q querier, requestID string) error {
	_, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, hashtext($2))`, lockClassFamily, requestID)
	return classify("lock family", err)
}

// lockGrant takes, before any row lock, the locks a token-minting
// transaction holds (doc.go): its family exclusively, then its subject and
// its client shared, so containment of that subject or client (which takes
// them exclusively) either waits for the mint to commit and then revokes
// what it minted, or runs first and leaves nothing active to mint from.
// One statement reads the row's request id, subject and client (which
// never change) and takes the three locks, in that order; the statements
// after it see whatever the previous holders committed. ErrNotFound when
// the row of (kind, key) does not exist.
func lockGrant(ctx context.Context, q querier, kind, key string) error {
	tag, err := q.Exec(ctx, lockGrantSQL, lockClassFamily, lockClassSubject, lockClassClient, kind, key)
	if err != nil {
		return classify("lock grant", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("lock grant: %w", storage.ErrNotFound)
	}
	return nil
}

// queueLockGrant queues lockGrant's statement on b, before the statement
// that decides under the locks. Pipelined, the server still runs that
// statement only after this one took its locks, with a snapshot of its
// own: the same as sending it after the answer, one round trip sooner.
// A missing row fails the batch with ErrNotFound (the statement after it
// finds nothing either).
func queueLockGrant(b *pgx.Batch, kind, key string) {
	b.Queue(lockGrantSQL, lockClassFamily, lockClassSubject, lockClassClient, kind, key).Exec(func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("lock grant: %w", storage.ErrNotFound)
		}
		return nil
	})
}

const lockGrantSQL = `SELECT pg_advisory_xact_lock($1::int4, hashtext(request_id)),
	pg_advisory_xact_lock_shared($2::int4, hashtext(subject)), pg_advisory_xact_lock_shared($3::int4, hashtext(client_id))
	FROM token_sessions WHERE kind = $4 AND key = $5`

// LockMint implements storage.MintLocker: the subject's and the client's
// locks shared, as lockGrant takes them after a family (doc.go, lock
// order), in a statement of their own so that the check after it, under
// READ COMMITTED, sees whatever a containment that held them committed.
// The check locks no row: a disable holds the user or client row while it
// waits for the lock taken here.
func (s *Store) LockMint(ctx context.Context, subject, clientID string) error {
	if !s.hasTx(ctx) {
		return errors.New("postgres: lock mint: no transaction in context")
	}
	q := s.q(ctx)
	if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock_shared($1::int4, hashtext($2)),
		pg_advisory_xact_lock_shared($3::int4, hashtext($4))`,
		lockClassSubject, subject, lockClassClient, clientID); err != nil {
		return classify("postgres: lock mint", err)
	}
	var active bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND NOT disabled)
		AND EXISTS (SELECT 1 FROM clients WHERE id = $2 AND NOT disabled)`, subject, clientID).Scan(&active); err != nil {
		return classify("postgres: lock mint", err)
	}
	if !active {
		return fmt.Errorf("postgres: lock mint: %w", storage.ErrOwnerDisabled)
	}
	return nil
}
