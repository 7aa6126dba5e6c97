package memory

import (
	"context"
	"fmt"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// tokenKind names one of the fosite session tables.
type tokenKind int

const (
	kindCode tokenKind = iota
	kindAccess
	kindRefresh
	kindPKCE
	kindOIDC
	kindPAR
)

var allKinds = []tokenKind{kindCode, kindAccess, kindRefresh, kindPKCE, kindOIDC, kindPAR}

// tokenRow is an immutable stored session; updates replace the row.
type tokenRow struct {
	rec storage.TokenRecord
	// accessKey links a refresh token to the access token issued with it.
	accessKey string
}

// createToken stores r under HashKey(key). tt selects the session expiry that
// bounds the row; without one the row lives storage.FallbackLifetime(tt),
// like in every backend.
func (s *Store) createToken(ctx context.Context, kind tokenKind, key string, r fosite.Requester, tt fosite.TokenType, accessSig string) error {
	rec, err := storage.EncodeRequest(key, r, tt, storage.FallbackLifetime(tt))
	if err != nil {
		return err
	}
	row := &tokenRow{rec: *rec}
	if accessSig != "" {
		row.accessKey = storage.HashKey(accessSig)
	}
	tx, unlock := s.write(ctx)
	defer unlock()
	// Like the Postgres store: a mint outside a transaction is refused
	// when its client is disabled or gone by the time it is written; the
	// write lock orders it against a disable's transaction.
	if c, ok := s.clients[rec.ClientID]; tx == nil && (!ok || c.Disabled) {
		return fmt.Errorf("memory: create session: %w", errClientDisabled())
	}
	put(tx, s.tokens[kind], rec.Key, row)
	if kind == kindAccess {
		// The request's audit event, if any, is written under the same
		// lock and transaction as its token: both or neither.
		if e := storage.TakeTokenAudit(ctx); e != nil {
			s.appendAudit(tx, e)
		}
	}
	return nil
}

// errClientDisabled is invalid_client (RFC 6749 §5.2): a token endpoint
// answers 401, never 500.
// It is built per call: fosite's errors cache their description in
// place, so one shared value would be written by concurrent requests.
func errClientDisabled() error { return fosite.ErrInvalidClient.WithHint("The client is disabled.") }

// getToken returns the stored row and a copy of its client. A row whose
// client no longer exists is reported as not found.
func (s *Store) getToken(ctx context.Context, kind tokenKind, key string) (*tokenRow, *storage.Client, error) {
	unlock := s.read(ctx)
	defer unlock()
	row, ok := s.tokens[kind][storage.HashKey(key)]
	if !ok {
		return nil, nil, fosite.ErrNotFound
	}
	c, ok := s.clients[row.rec.ClientID]
	if !ok {
		return nil, nil, fosite.ErrNotFound
	}
	return row, c.Clone(), nil
}

func (s *Store) decodeToken(ctx context.Context, kind tokenKind, key string, session fosite.Session) (fosite.Requester, bool, error) {
	row, c, err := s.getToken(ctx, kind, key)
	if err != nil {
		return nil, false, err
	}
	req, err := storage.DecodeRequest(&row.rec, c, session)
	if err != nil {
		return nil, false, err
	}
	return req, row.rec.Active, nil
}

// consumeToken removes a single-use row and returns what it held, under one
// write lock: of concurrent callers exactly one gets the row.
func (s *Store) consumeToken(ctx context.Context, kind tokenKind, key string, session fosite.Session) (fosite.Requester, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	k := storage.HashKey(key)
	row, ok := s.tokens[kind][k]
	if !ok {
		return nil, fosite.ErrNotFound
	}
	del(tx, s.tokens[kind], k)
	c, ok := s.clients[row.rec.ClientID]
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return storage.DecodeRequest(&row.rec, c.Clone(), session)
}

// deleteToken is idempotent: fosite may delete a row another request
// already removed (concurrent refresh token reuse).
func (s *Store) deleteToken(ctx context.Context, kind tokenKind, key string) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	k := storage.HashKey(key)
	r, ok := s.tokens[kind][k]
	if !ok {
		return nil
	}
	del(tx, s.tokens[kind], k)
	if kind == kindAccess && r.rec.ExpiresAt.After(s.now()) {
		s.announceRevoked(tx, []string{storage.RevokedAccessPayload(k, r.rec.ExpiresAt)})
	}
	return nil
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.createToken(ctx, kindCode, code, r, fosite.AuthorizeCode, "")
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage. An
// invalidated code returns the requester and fosite.ErrInvalidatedAuthorizeCode
// so fosite can revoke the tokens issued with it (RFC 6749 §4.1.2).
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, code string, session fosite.Session) (fosite.Requester, error) {
	req, active, err := s.decodeToken(ctx, kindCode, code, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage and
// is the one consumption point of a code (RFC 6749 §4.1.2): of concurrent
// callers exactly one finds it active; the others get
// fosite.ErrInvalidatedAuthorizeCode. The code's PKCE row is consumed with
// it (see DeletePKCERequestSession).
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	k := storage.HashKey(code)
	row, ok := s.tokens[kindCode][k]
	if !ok {
		return fosite.ErrNotFound
	}
	if !row.rec.Active {
		return fmt.Errorf("memory: invalidate code: already used: %w", fosite.ErrInvalidatedAuthorizeCode)
	}
	n := *row
	n.rec.Active = false
	put(tx, s.tokens[kindCode], k, &n)
	del(tx, s.tokens[kindPKCE], k)
	return nil
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.createToken(ctx, kindAccess, signature, r, fosite.AccessToken, "")
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.decodeToken(ctx, kindAccess, signature, session)
	return req, err
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindAccess, signature)
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, r fosite.Requester) error {
	return s.createToken(ctx, kindRefresh, signature, r, fosite.RefreshToken, accessSignature)
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage. An inactive
// (rotated or revoked) token returns the requester and fosite.ErrInactiveToken
// so fosite detects reuse and revokes the family.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, active, err := s.decodeToken(ctx, kindRefresh, signature, session)
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
// token is kept but inactive, so its reuse is detected, and the family's
// access tokens are removed. A token that is already inactive means a
// concurrent refresh with the same token won the race: that is
// fosite.ErrSerializationFailure and nothing changes, so only one of the
// two requests yields new tokens. An unknown token is fosite.ErrNotFound.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, refreshSignature string) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	k := storage.HashKey(refreshSignature)
	row, ok := s.tokens[kindRefresh][k]
	if !ok {
		return fmt.Errorf("memory: rotate refresh token: %w", fosite.ErrNotFound)
	}
	if !row.rec.Active {
		return fmt.Errorf("memory: rotate refresh token: already rotated: %w", fosite.ErrSerializationFailure)
	}
	n := *row
	n.rec.Active = false
	put(tx, s.tokens[kindRefresh], k, &n)
	s.deleteWhere(tx, kindAccess, func(r *tokenRow) bool { return r.rec.RequestID == requestID })
	return nil
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage: every refresh
// token of the request id becomes inactive.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	s.deactivateWhere(tx, kindRefresh, func(r *tokenRow) bool { return r.rec.RequestID == requestID })
	return nil
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage: every access
// token of the request id is removed.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	tx, unlock := s.write(ctx)
	defer unlock()
	s.deleteWhere(tx, kindAccess, func(r *tokenRow) bool { return r.rec.RequestID == requestID })
	return nil
}

// deleteWhere removes the rows of kind matching f; callers hold the write lock.
// Unexpired access tokens it removes are announced on
// storage.RevokedAccessChannel, like the Postgres trigger does.
func (s *Store) deleteWhere(tx *txn, kind tokenKind, f func(*tokenRow) bool) int64 {
	var n int64
	var revoked []string
	now := s.now()
	for k, r := range s.tokens[kind] {
		if f(r) {
			del(tx, s.tokens[kind], k)
			n++
			if kind == kindAccess && r.rec.ExpiresAt.After(now) {
				revoked = append(revoked, storage.RevokedAccessPayload(k, r.rec.ExpiresAt))
			}
		}
	}
	s.announceRevoked(tx, revoked)
	return n
}

// revokedListLimit keeps one announcement burst well inside a subscriber's
// buffer, since this store drops payloads a subscriber cannot take.
const revokedListLimit = min(storage.RevokedAccessListLimit, subscriberBuffer/4)

// announceRevoked publishes the payloads (or the overflow marker when there
// are too many) on commit of tx, or at once outside a transaction; callers
// hold the write lock.
func (s *Store) announceRevoked(tx *txn, payloads []string) {
	if len(payloads) > revokedListLimit {
		payloads = []string{storage.RevokedAccessOverflow}
	}
	for _, p := range payloads {
		if tx != nil {
			tx.notify = append(tx.notify, [2]string{storage.RevokedAccessChannel, p})
		} else {
			s.publish(storage.RevokedAccessChannel, p)
		}
	}
}

// deactivateWhere marks the active rows of kind matching f inactive and
// returns how many; callers hold the write lock.
func (s *Store) deactivateWhere(tx *txn, kind tokenKind, f func(*tokenRow) bool) int64 {
	var n int64
	for k, r := range s.tokens[kind] {
		if r.rec.Active && f(r) {
			c := *r
			c.rec.Active = false
			put(tx, s.tokens[kind], k, &c)
			n++
		}
	}
	return n
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.createToken(ctx, kindPKCE, signature, r, fosite.AuthorizeCode, "")
}

// GetPKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.decodeToken(ctx, kindPKCE, signature, session)
	return req, err
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage. It changes
// nothing: fosite calls it before it compares the verifier, so deleting here
// would let a wrong verifier strip the PKCE requirement from a still valid
// code. InvalidateAuthorizeCodeSession consumes the row with its code.
func (s *Store) DeletePKCERequestSession(context.Context, string) error {
	return nil
}

// CreateOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
// fosite passes the raw authorization code; it is hashed like every key.
func (s *Store) CreateOpenIDConnectSession(ctx context.Context, authorizeCode string, r fosite.Requester) error {
	return s.createToken(ctx, kindOIDC, authorizeCode, r, fosite.AuthorizeCode, "")
}

// GetOpenIDConnectSession implements openid.OpenIDConnectRequestStorage. The
// row is single use: it is read and removed under one lock. The stored
// session is decoded into the requester's session when there is one.
func (s *Store) GetOpenIDConnectSession(ctx context.Context, authorizeCode string, r fosite.Requester) (fosite.Requester, error) {
	var sess fosite.Session
	if r != nil {
		sess = r.GetSession()
	}
	return s.consumeToken(ctx, kindOIDC, authorizeCode, sess)
}

// DeleteOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (s *Store) DeleteOpenIDConnectSession(ctx context.Context, authorizeCode string) error {
	return s.deleteToken(ctx, kindOIDC, authorizeCode)
}

// CreatePARSession implements fosite.PARStorage.
func (s *Store) CreatePARSession(ctx context.Context, requestURI string, r fosite.AuthorizeRequester) error {
	return s.createToken(ctx, kindPAR, requestURI, r, fosite.PushedAuthorizeRequestContext, "")
}

// GetPARSession implements fosite.PARStorage. A request_uri is single use
// (RFC 9126 §4): it is read and removed under one lock, so of concurrent
// uses exactly one gets it.
func (s *Store) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	req, err := s.consumeToken(ctx, kindPAR, requestURI, nil)
	if err != nil {
		return nil, err
	}
	ar, ok := req.(fosite.AuthorizeRequester)
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return ar, nil
}

// DeletePARSession implements fosite.PARStorage.
func (s *Store) DeletePARSession(ctx context.Context, requestURI string) error {
	return s.deleteToken(ctx, kindPAR, requestURI)
}

// LockMint implements storage.MintLocker. The open transaction already
// holds the whole store (txMu), so containment, transactional or not,
// waits for it; only the check remains.
func (s *Store) LockMint(ctx context.Context, subject, clientID string) error {
	if s.txFrom(ctx) == nil {
		return fmt.Errorf("memory: lock mint: %w", errNoTx)
	}
	defer s.read(ctx)()
	u, uok := s.users[subject]
	c, cok := s.clients[clientID]
	if !uok || u.Disabled || !cok || c.Disabled {
		return fmt.Errorf("memory: lock mint: %w", storage.ErrOwnerDisabled)
	}
	return nil
}

// RevokeTokensByClient implements storage.TokenRevoker.
func (s *Store) RevokeTokensByClient(ctx context.Context, clientID string) (int64, error) {
	return s.revokeWhere(ctx, func(r *tokenRow) bool { return r.rec.ClientID == clientID })
}

// RevokeTokensBySubject implements storage.TokenRevoker. Client credentials
// tokens have no subject, so an empty subject matches nothing rather than
// all of them.
func (s *Store) RevokeTokensBySubject(ctx context.Context, subject string) (int64, error) {
	if subject == "" {
		return 0, nil
	}
	return s.revokeWhere(ctx, func(r *tokenRow) bool { return r.rec.Subject == subject })
}

// RevokeTokensBySubjectAndClient implements storage.TokenRevoker; an empty
// subject matches nothing, as in RevokeTokensBySubject.
func (s *Store) RevokeTokensBySubjectAndClient(ctx context.Context, subject, clientID string) (int64, error) {
	if subject == "" {
		return 0, nil
	}
	return s.revokeWhere(ctx, func(r *tokenRow) bool { return r.rec.Subject == subject && r.rec.ClientID == clientID })
}

// revokeWhere deletes matching access tokens, deactivates matching refresh
// tokens and invalidates matching authorization codes, so a code still in
// flight cannot mint new tokens after containment. The count is access
// tokens deleted plus refresh tokens deactivated; codes and already
// inactive refresh tokens are not counted.
func (s *Store) revokeWhere(ctx context.Context, f func(*tokenRow) bool) (int64, error) {
	tx, unlock := s.write(ctx)
	defer unlock()
	n := s.deleteWhere(tx, kindAccess, f)
	n += s.deactivateWhere(tx, kindRefresh, f)
	s.deactivateWhere(tx, kindCode, f)
	return n, nil
}
