package oauth

import (
	"context"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// flowStore is the store as fosite's authorization code, OpenID Connect
// and PKCE handlers see it, with the round trips the flows do not need
// taken out (storage.FlowStore; docs/performance.md, round 4):
//
//   - At the authorization endpoint (a context from collectAuthorize), the
//     code, its PKCE request and its OpenID Connect request are collected
//     instead of written one by one; issueCode writes them, and the login
//     session join, with one CreateAuthorizeSessions.
//   - GetOpenIDConnectSession consumes the row (DELETE … RETURNING), so the
//     DeleteOpenIDConnectSession fosite sends right after it has nothing
//     left to delete and is not sent.
//
// Everything else is the store's.
type flowStore struct {
	Store
}

type authorizeWritesKey struct{}

// collectAuthorize returns a context in which the authorization
// handlers' writes are collected into a.
func collectAuthorize(ctx context.Context, a *storage.AuthorizeSessions) context.Context {
	return context.WithValue(ctx, authorizeWritesKey{}, a)
}

func authorizeWrites(ctx context.Context) *storage.AuthorizeSessions {
	a, _ := ctx.Value(authorizeWritesKey{}).(*storage.AuthorizeSessions)
	return a
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s flowStore) CreateAuthorizeCodeSession(ctx context.Context, signature string, r fosite.Requester) error {
	if a := authorizeWrites(ctx); a != nil {
		a.CodeSignature, a.Code = signature, r
		return nil
	}
	return s.Store.CreateAuthorizeCodeSession(ctx, signature, r)
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage. fosite
// keys it by the code's signature, like the code.
func (s flowStore) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	if a := authorizeWrites(ctx); a != nil && signature == a.CodeSignature {
		a.PKCE = r
		return nil
	}
	return s.Store.CreatePKCERequestSession(ctx, signature, r)
}

// CreateOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (s flowStore) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	if a := authorizeWrites(ctx); a != nil && a.Code != nil {
		a.OIDCCode, a.OIDC = code, r
		return nil
	}
	return s.Store.CreateOpenIDConnectSession(ctx, code, r)
}

// DeleteOpenIDConnectSession implements openid.OpenIDConnectRequestStorage:
// fosite calls it right after GetOpenIDConnectSession, which consumed the
// row already.
func (s flowStore) DeleteOpenIDConnectSession(context.Context, string) error { return nil }
