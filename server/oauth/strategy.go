package oauth

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"hash"
	"net/netip"
	"time"

	"github.com/bulwark-auth/bulwark/server/protect"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/token/jwt"

	"github.com/bulwark-auth/bulwark/storage"
)

// accessTokenStrategy issues RFC 9068 JWT access tokens and keeps codes and
// refresh tokens opaque (the embedded strategy delegates those to HMAC).
//
// fosite copies the stored session when it refreshes a token, so without
// this wrapper a refreshed access token would repeat the previous token's
// jti and iat. Every token gets fresh ones here, plus the claims fosite does
// not set: iss, sub, client_id and a default audience.
type accessTokenStrategy struct {
	*oauth2.DefaultJWTStrategy
	issuer string
}

// GenerateAccessToken implements oauth2.AccessTokenStrategy (RFC 9068 §2.2).
func (s *accessTokenStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	sess, ok := r.GetSession().(*storage.Session)
	if !ok {
		return "", "", fosite.ErrServerError.WithDebug("unexpected session type")
	}
	clientID := r.GetClient().GetID()
	if sess.AccessClaims == nil {
		sess.AccessClaims = &jwt.JWTClaims{}
	}
	if sess.AccessClaims.Extra == nil {
		sess.AccessClaims.Extra = map[string]interface{}{}
	}
	c := sess.AccessClaims
	c.Issuer = s.issuer
	c.Subject = sess.GetSubject()
	c.JTI = uuid.NewString()
	c.IssuedAt = time.Now().UTC()
	c.NotBefore = time.Time{}
	c.Extra["client_id"] = clientID
	sess.ClientID = clientID
	// A DPoP-bound token names its key (RFC 9449 §6.1); the session may
	// carry a cnf from the token it refreshes, so it is set or removed.
	if sess.DPoPJKT != "" {
		c.Extra["cnf"] = map[string]any{"jkt": sess.DPoPJKT}
	} else {
		delete(c.Extra, "cnf")
	}

	// Same steps as fosite's DefaultJWTStrategy, plus the audience default.
	claims, ok := sess.GetJWTClaims().
		With(sess.GetExpiresAt(fosite.AccessToken), r.GetGrantedScopes(), r.GetGrantedAudience()).
		WithScopeField(s.Config.GetJWTScopeField(ctx)).(*jwt.JWTClaims)
	if !ok {
		return "", "", fosite.ErrServerError.WithDebug("unexpected claims type")
	}
	// aud: the audience granted for the request; when none was granted the
	// token is meant for the client's own API, so aud is the client id
	// (RFC 9068 §2.2 requires aud). It is set on the token only, not granted,
	// so a refresh does not see an audience the client never registered.
	if len(claims.Audience) == 0 {
		claims.Audience = []string{clientID}
	}
	token, sig, err := s.Signer.Generate(ctx, claims.ToMapClaims(), sess.GetJWTHeader())
	if m := mintFrom(ctx); m != nil && err == nil {
		m.accessToken = token
	}
	return token, sig, err
}

// idTokenStrategy signs each client's ID tokens with the algorithm it
// registered (id_token_signed_response_alg, OpenID Connect Dynamic Client
// Registration 1.0 §2), the server's default otherwise.
//
// It also clears the expiry a refreshed session carries over from the
// previous ID token, so each ID token lives for the configured lifespan
// from its own issue time instead of failing once the first one expired.
type idTokenStrategy struct {
	defaultAlg string
	// byAlg holds a strategy per algorithm the server signs ID tokens
	// with, the default's included.
	byAlg map[string]openid.OpenIDConnectTokenStrategy
}

// alg is the algorithm of c's ID tokens.
func (s *idTokenStrategy) alg(c fosite.Client) string {
	if bc, ok := c.(*storage.Client); ok && bc.IDTokenSignedResponseAlg != "" {
		return bc.IDTokenSignedResponseAlg
	}
	return s.defaultAlg
}

// check refuses a client registered for an algorithm this server does not
// sign with (its keys were dropped from --signing-algs after it
// registered): such a client can get no ID token, and must be told so
// rather than fail with a server error where the token would be signed.
func (s *idTokenStrategy) check(c fosite.Client) error {
	if _, ok := s.byAlg[s.alg(c)]; !ok {
		return fosite.ErrUnauthorizedClient.WithHint("The client is registered for ID tokens signed with an algorithm this server does not sign with.")
	}
	return nil
}

// GenerateIDToken implements openid.OpenIDConnectTokenStrategy.
func (s *idTokenStrategy) GenerateIDToken(ctx context.Context, lifespan time.Duration, r fosite.Requester) (string, error) {
	alg := s.alg(r.GetClient())
	inner, ok := s.byAlg[alg]
	if !ok {
		return "", s.check(r.GetClient())
	}
	if sess, ok := r.GetSession().(openid.Session); ok && sess.IDTokenClaims() != nil {
		claims := sess.IDTokenClaims()
		claims.ExpiresAt = time.Time{}
		// fosite computed at_hash with SHA-256; for EdDSA (Ed25519) the
		// hash is SHA-512 (OpenID Connect Core 1.0 errata 2, §3.1.3.6).
		if m := mintFrom(ctx); alg == algEdDSA && claims.AccessTokenHash != "" && m != nil && m.accessToken != "" {
			claims.AccessTokenHash = halfHash(sha512.New(), m.accessToken)
		}
	}
	return inner.GenerateIDToken(ctx, lifespan, r)
}

// algEdDSA is the JWA name of EdDSA signatures (RFC 8037 §3.1).
const algEdDSA = "EdDSA"

// halfHash is base64url(left half of h(token)): at_hash and c_hash.
func halfHash(h hash.Hash, token string) string {
	h.Write([]byte(token))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// mint is what one token request issues, shared by the strategies that
// produce its tokens: the ID token's at_hash needs the access token.
type mint struct {
	accessToken string
}

type mintKey struct{}

// withMint returns a context whose token strategies record into a new mint.
func withMint(ctx context.Context) context.Context {
	return context.WithValue(ctx, mintKey{}, &mint{})
}

func mintFrom(ctx context.Context) *mint {
	m, _ := ctx.Value(mintKey{}).(*mint)
	return m
}

type pkceOptionalKey struct{}

// pkceConfig makes PKCE mandatory except for requests that pkcePolicy marked
// as coming from a confidential client registered with PKCEOptional.
type pkceConfig struct{ *fosite.Config }

// GetEnforcePKCE implements fosite.EnforcePKCEProvider.
func (c pkceConfig) GetEnforcePKCE(ctx context.Context) bool {
	optional, _ := ctx.Value(pkceOptionalKey{}).(bool)
	return !optional
}

// GetEnforcePKCEForPublicClients implements
// fosite.EnforcePKCEForPublicClientsProvider. Public clients never skip PKCE.
func (c pkceConfig) GetEnforcePKCEForPublicClients(context.Context) bool { return true }

// GetEnablePKCEPlainChallengeMethod implements
// fosite.EnablePKCEPlainChallengeMethodProvider: S256 only (RFC 9700 §2.1.1).
func (c pkceConfig) GetEnablePKCEPlainChallengeMethod(context.Context) bool { return false }

// pkcePolicy wraps fosite's PKCE handler and tells pkceConfig, through the
// context, whether the request's client may skip PKCE. fosite's config
// hooks see only the context, not the client, hence the wrapper.
type pkcePolicy struct {
	inner *pkce.Handler
}

var (
	_ fosite.AuthorizeEndpointHandler = (*pkcePolicy)(nil)
	_ fosite.TokenEndpointHandler     = (*pkcePolicy)(nil)
)

func withPKCEPolicy(ctx context.Context, c fosite.Client) context.Context {
	bc, ok := c.(*storage.Client)
	optional := ok && bc.PKCEOptional && !bc.IsPublic()
	return context.WithValue(ctx, pkceOptionalKey{}, optional)
}

// HandleAuthorizeEndpointRequest implements fosite.AuthorizeEndpointHandler.
func (h *pkcePolicy) HandleAuthorizeEndpointRequest(ctx context.Context, ar fosite.AuthorizeRequester, resp fosite.AuthorizeResponder) error {
	return h.inner.HandleAuthorizeEndpointRequest(withPKCEPolicy(ctx, ar.GetClient()), ar, resp)
}

// HandleTokenEndpointRequest implements fosite.TokenEndpointHandler. The
// authorization code handler, which runs first, has already checked that
// the authenticated client is the one the code was issued to.
func (h *pkcePolicy) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.inner.CanHandleTokenEndpointRequest(ctx, r) {
		// The inner handler would decline with a stack trace; see skip.go.
		return fosite.ErrUnknownRequest
	}
	return h.inner.HandleTokenEndpointRequest(withPKCEPolicy(ctx, r.GetClient()), r)
}

// PopulateTokenEndpointResponse implements fosite.TokenEndpointHandler.
func (h *pkcePolicy) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	return h.inner.PopulateTokenEndpointResponse(ctx, r, resp)
}

// CanSkipClientAuth implements fosite.TokenEndpointHandler.
func (h *pkcePolicy) CanSkipClientAuth(ctx context.Context, r fosite.AccessRequester) bool {
	return h.inner.CanSkipClientAuth(ctx, r)
}

// CanHandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (h *pkcePolicy) CanHandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) bool {
	return h.inner.CanHandleTokenEndpointRequest(ctx, r)
}

// refreshAudit records refresh token reuse. fosite detects it (the store
// returns fosite.ErrInactiveToken for a rotated token) and revokes the whole
// family; the wrapper only adds the audit event.
type refreshAudit struct {
	*oauth2.RefreshTokenGrantHandler
	p *Provider
}

// HandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (h *refreshAudit) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	err := h.RefreshTokenGrantHandler.HandleTokenEndpointRequest(ctx, r)
	if err != nil && errors.Is(err, fosite.ErrInactiveToken) {
		clientID := ""
		if r.GetClient() != nil {
			clientID = r.GetClient().GetID()
		}
		if sig := h.p.cfg.Defense.Signals; sig != nil {
			// Counted against the client that replayed, never the
			// address: one buggy client must not take a network down.
			sig.Observe(ctx, protect.SignalRefreshReuse, netip.Addr{}, clientID)
		}
		h.p.audit(ctx, storage.AuditEvent{
			Event:    EventRefreshReuse,
			ClientID: clientID,
			Outcome:  OutcomeFailure,
			Details:  map[string]string{"action": "token family revoked"},
		})
	}
	return err
}
