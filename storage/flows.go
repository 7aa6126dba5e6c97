package storage

import (
	"context"
	"time"

	"github.com/ory/fosite"
)

// FlowStore is what the authorization endpoint and the token endpoint
// read and write for a user's grant, each in one round trip where fosite's
// storage interfaces would take several (docs/performance.md, round 4).
// Every single-use decision stays where OAuth2Store puts it: this only
// gathers reads and writes that were separate.
//
// Semantics every backend honours (checked by storagetest):
//   - ResumeLogin is GetLoginSession, UserByID, GetConsent and
//     TouchLoginSession of one signed-in browser at once; a missing or
//     expired session, one of another kind, and a missing user are
//     ErrNotFound (a disabled user is returned: the caller decides).
//   - CreateAuthorizeSessions writes the code, its PKCE request and its
//     OpenID Connect request, and joins the login session (as
//     JoinLoginSession does), all or nothing: a disabled or unknown client
//     writes nothing and is refused like a mint (fosite.ErrInvalidClient),
//     a login session gone or expired by then writes nothing and is
//     ErrNotFound.
//   - ReadGrant loads what a token request reads before it mints from an
//     authorization code or a refresh token; Get*Session of the same store
//     may then answer from the returned context, exactly as they would
//     have answered when ReadGrant ran (an invalidated code or an inactive
//     refresh token with its sentinel error). The single-use decisions
//     (InvalidateAuthorizeCodeSession, RotateRefreshToken) never use it.
//     With the raw code, a backend may consume the code's OpenID Connect
//     request in InvalidateAuthorizeCodeSession's own statement (so it
//     goes, or stays, with the code); GetOpenIDConnectSession of that code
//     in the returned context then yields it once, after the consuming
//     transaction committed, exactly as if it had consumed it itself.
type FlowStore interface {
	// ResumeLogin returns the unexpired login session of kind keyed key
	// (as GetLoginSession takes it), its user, and the user's unexpired
	// consent to clientID (nil when there is none), and records at as the
	// session's LastSeen. A backend may skip recording a LastSeen less
	// than LastSeenGranularity old: LastSeen then lags by at most that.
	ResumeLogin(ctx context.Context, kind, key, clientID string, at time.Time) (*LoginState, error)
	// CreateAuthorizeSessions stores what one authorization response
	// issues (see AuthorizeSessions).
	CreateAuthorizeSessions(ctx context.Context, s *AuthorizeSessions) error
	// ReadGrant loads the authorization code (with its PKCE request) or
	// the refresh token stored under signature, with its client, and the
	// state of the grant's user. The returned context carries what was
	// read for this store's GetAuthorizeCodeSession,
	// GetPKCERequestSession and GetRefreshTokenSession of that signature
	// (outside transactions); owner.Subject is empty when no such row
	// exists. code is the raw authorization code of a GrantCode ("" when
	// unknown or for a refresh token): see the interface comment.
	ReadGrant(ctx context.Context, kind GrantKind, signature, code string) (_ context.Context, owner GrantOwner, err error)
}

// LastSeenGranularity is how stale ResumeLogin may leave a login
// session's LastSeen: recording every pass through the authorization
// endpoint would write (and lock) the session's row on every request.
// Idle timeouts are far longer.
const LastSeenGranularity = time.Minute

// LoginState is a signed-in browser as the authorization endpoint needs
// it.
type LoginState struct {
	Session *LoginSession
	User    *User
	// Consent is the user's unexpired consent to the client, nil when
	// there is none.
	Consent *Consent
}

// AuthorizeSessions is what one authorization response stores. fosite's
// handlers produce the three requests (CreateAuthorizeCodeSession,
// CreatePKCERequestSession, CreateOpenIDConnectSession); they are written
// together.
type AuthorizeSessions struct {
	// CodeSignature keys the code and its PKCE request.
	CodeSignature string
	Code          fosite.Requester
	// PKCE is nil when the request carried no code challenge.
	PKCE fosite.Requester
	// OIDCCode keys the OpenID Connect request: the raw code, as fosite
	// passes it. OIDC is nil unless openid was granted.
	OIDCCode string
	OIDC     fosite.Requester
	// JoinLogin, when not empty, is the key (as GetLoginSession takes it)
	// of the login session the code's client joins as a relying party,
	// like JoinLoginSession: the write fails with ErrNotFound, writing
	// nothing, when that session is gone, expired or has no SID.
	JoinLogin string
}

// GrantKind names what ReadGrant reads.
type GrantKind int

// Grants ReadGrant reads.
const (
	// GrantCode is an authorization code and its PKCE request.
	GrantCode GrantKind = iota + 1
	// GrantRefresh is a refresh token.
	GrantRefresh
)

// GrantOwner is the user of a grant ReadGrant found.
type GrantOwner struct {
	// Subject is the grant's subject; empty when the grant was not found.
	Subject string
	// Active is true when the user exists and is not disabled.
	Active bool
}
