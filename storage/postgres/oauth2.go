package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// createToken stores one fosite request: a single INSERT.
func (s *Store) createToken(ctx context.Context, kind, key string, r fosite.Requester, tt fosite.TokenType, fallback time.Duration) error {
	rec, err := storage.EncodeRequest(key, r, tt, fallback)
	if err != nil {
		return err
	}
	if rec.RequestedAt.IsZero() {
		rec.RequestedAt = s.now()
	}
	_, err = s.q(ctx).Exec(ctx, `INSERT INTO token_sessions
		(kind, key, request_id, client_id, subject, active, requested_at, expires_at, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		kind, rec.Key, rec.RequestID, rec.ClientID, rec.Subject, rec.Active, rec.RequestedAt, rec.ExpiresAt, rec.Data)
	return classify("postgres: create "+kind+" session", err)
}

// getToken loads one fosite request and its client in one round trip. A
// token whose client no longer exists is reported as unknown: tokens are
// deleted with their client, so such a row is an orphan of a race and must
// not be honoured.
func (s *Store) getToken(ctx context.Context, kind, key string, session fosite.Session) (fosite.Requester, bool, error) {
	var (
		rec       storage.TokenRecord
		hasClient bool
		cs        clientScan
	)
	dest := append([]any{&rec.Active, &rec.Data, &hasClient}, cs.dest()...)
	err := s.q(ctx).QueryRow(ctx, `SELECT t.active, t.data, c.id IS NOT NULL, `+clientJoinSelect+`
		FROM token_sessions t LEFT JOIN clients c ON c.id = t.client_id
		WHERE t.kind = $1 AND t.key = $2`, kind, storage.HashKey(key)).Scan(dest...)
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

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage. The
// row stays so that a replayed code is recognised.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	tag, err := s.q(ctx).Exec(ctx, `UPDATE token_sessions SET active = false WHERE kind = $1 AND key = $2`,
		kindCode, storage.HashKey(code))
	if err != nil {
		return classify("postgres: invalidate code", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: invalidate code: %w", storage.ErrNotFound)
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

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindRefresh, signature)
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage: the old refresh
// token is kept but made inactive (so its reuse is detected) and the
// family's access tokens are deleted. When the token is already inactive a
// concurrent refresh with the same token won the race; that is reported as
// fosite.ErrSerializationFailure so only one of them yields new tokens.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	key := storage.HashKey(signature)
	return s.inTx(ctx, func(q querier) error {
		tag, err := q.Exec(ctx, `UPDATE token_sessions SET active = false
			WHERE kind = $1 AND key = $2 AND active`, kindRefresh, key)
		if err != nil {
			return classify("postgres: rotate refresh token", err)
		}
		if tag.RowsAffected() == 0 {
			var exists bool
			if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM token_sessions WHERE kind = $1 AND key = $2)`,
				kindRefresh, key).Scan(&exists); err != nil {
				return classify("postgres: rotate refresh token", err)
			}
			if !exists {
				return fmt.Errorf("postgres: rotate refresh token: %w", storage.ErrNotFound)
			}
			return fmt.Errorf("postgres: rotate refresh token: already rotated: %w", fosite.ErrSerializationFailure)
		}
		_, err = q.Exec(ctx, `DELETE FROM token_sessions WHERE kind = $1 AND request_id = $2`, kindAccess, requestID)
		return classify("postgres: rotate refresh token", err)
	})
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage: every refresh
// token of the request id (the family) becomes inactive.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	_, err := s.q(ctx).Exec(ctx, `UPDATE token_sessions SET active = false
		WHERE kind = $1 AND request_id = $2 AND active`, kindRefresh, requestID)
	return classify("postgres: revoke refresh tokens", err)
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage: every access
// token of the request id is deleted.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	_, err := s.q(ctx).Exec(ctx, `DELETE FROM token_sessions WHERE kind = $1 AND request_id = $2`, kindAccess, requestID)
	return classify("postgres: revoke access tokens", err)
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

// DeletePKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) DeletePKCERequestSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindPKCE, signature)
}

// CreateOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
// fosite passes the raw authorization code; it is hashed like every key.
func (s *Store) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.createToken(ctx, kindOIDC, code, r, fosite.AuthorizeCode, storage.FallbackCodeLifetime)
}

// GetOpenIDConnectSession implements openid.OpenIDConnectRequestStorage. The
// stored session is decoded into the requester's session type.
func (s *Store) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	var session fosite.Session
	if r != nil {
		session = r.GetSession()
	}
	req, _, err := s.getToken(ctx, kindOIDC, code, session)
	return req, err
}

// DeleteOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (s *Store) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	return s.deleteToken(ctx, kindOIDC, code)
}

// CreatePARSession implements fosite.PARStorage (RFC 9126), keyed by
// HashKey(request_uri).
func (s *Store) CreatePARSession(ctx context.Context, requestURI string, r fosite.AuthorizeRequester) error {
	return s.createToken(ctx, kindPAR, requestURI, r, fosite.PushedAuthorizeRequestContext, storage.FallbackPARLifetime)
}

// GetPARSession implements fosite.PARStorage.
func (s *Store) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	req, _, err := s.getToken(ctx, kindPAR, requestURI, nil)
	if err != nil {
		return nil, err
	}
	ar, ok := req.(fosite.AuthorizeRequester)
	if !ok {
		return nil, errors.New("postgres: stored PAR session is not an authorize request")
	}
	return ar, nil
}

// DeletePARSession implements fosite.PARStorage.
func (s *Store) DeletePARSession(ctx context.Context, requestURI string) error {
	return s.deleteToken(ctx, kindPAR, requestURI)
}
