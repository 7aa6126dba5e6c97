package oauth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

// Token exchange (RFC 8693) identifiers. Bulwark adds one token type of its
// own so machine callers that hold an API key can obtain a short-lived JWT
// access token that resource servers verify offline through the JWKS.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange" // #nosec G101 -- a URN, not a credential
	// TokenTypeAPIKey is the subject_token_type of a Bulwark API key.
	TokenTypeAPIKey = "urn:bulwark:params:oauth:token-type:api-key" // #nosec G101 -- a URN, not a credential
	// TokenTypeAccessToken is the issued_token_type of the answer.
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token" // #nosec G101 -- a URN, not a credential
)

// APIKeys verifies API keys (keys/apikeys.Service).
type APIKeys interface {
	Verify(ctx context.Context, token string) (*apikeys.Principal, *storage.APIKey, error)
	// Usable reports whether the key is still a working credential.
	Usable(ctx context.Context, id string) (bool, error)
}

// exchangedTokenLive reports whether an access token obtained by
// exchanging an API key may still introspect active: its key must be
// usable now. Checking the key's row at introspection, rather than
// deleting the token sessions when the key is revoked, leaves no window:
// a token minted while the revocation commits is refused as well, and a
// key that merely expires takes its tokens with it. The cost is one
// indexed SELECT, for exchanged tokens only. Resource servers that verify
// the JWT offline do not see this; the token's short lifetime bounds them.
func (p *Provider) exchangedTokenLive(ctx context.Context, ar fosite.Requester) (bool, error) {
	sess, ok := ar.GetSession().(*storage.Session)
	if !ok || sess.APIKeyID == "" {
		return true, nil
	}
	if p.cfg.APIKeys == nil {
		return false, nil
	}
	return p.cfg.APIKeys.Usable(ctx, sess.APIKeyID)
}

// isAPIKey tells an API key from an OAuth token by its prefix; the key's
// checksum is verified by APIKeys.Verify before anything else.
func isAPIKey(token string) bool { return strings.HasPrefix(token, "bwk_") }

// apiKeyFailure classifies a verification error: inactive is true for the
// errors that mean "not a usable key".
func apiKeyFailure(err error) (inactive bool) {
	return errors.Is(err, apikeys.ErrMalformed) || errors.Is(err, apikeys.ErrInvalid) ||
		errors.Is(err, apikeys.ErrRevoked) || errors.Is(err, apikeys.ErrExpired)
}

// introspectAPIKey answers RFC 7662 for an API key presented as the token.
func (p *Provider) introspectAPIKey(w http.ResponseWriter, r *http.Request, token string) {
	principal, key, err := p.cfg.APIKeys.Verify(r.Context(), token)
	if err != nil {
		if apiKeyFailure(err) {
			writeIntrospection(w, map[string]any{"active": false})
			return
		}
		p.writeJSONError(w, r, err)
		return
	}
	out := map[string]any{
		"active":     true,
		"token_type": "api_key",
		"sub":        principal.Subject(),
		"api_key_id": key.ID,
		"iss":        p.cfg.Issuer,
		"iat":        key.CreatedAt.Unix(),
	}
	if len(principal.Scopes) > 0 {
		out["scope"] = strings.Join(principal.Scopes, " ")
	}
	if principal.OwnerType == apikeys.OwnerClient {
		out["client_id"] = principal.OwnerID
	}
	if !key.ExpiresAt.IsZero() {
		out["exp"] = key.ExpiresAt.Unix()
	}
	writeIntrospection(w, out)
}

// tokenExchange implements the RFC 8693 grant for API keys. The key must
// belong to a client: the access token is issued to that client, with at
// most the scopes and audience the client is registered for, and carries
// the key id in an api_key_id claim. Client authentication is optional (the
// key is the credential); when present it must be the key's owner.
type tokenExchange struct {
	p        *Provider
	keys     APIKeys
	strategy oauth2.AccessTokenStrategy
	storage  oauth2.AccessTokenStorage
}

var _ fosite.TokenEndpointHandler = (*tokenExchange)(nil)

// CanSkipClientAuth implements fosite.TokenEndpointHandler: the API key
// authenticates the caller.
func (h *tokenExchange) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return true }

// CanHandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (h *tokenExchange) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(GrantTypeTokenExchange)
}

// HandleTokenEndpointRequest validates the exchange (RFC 8693 §2.1–2.2).
func (h *tokenExchange) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	form := r.GetRequestForm()
	if form.Get("subject_token_type") != TokenTypeAPIKey {
		return fosite.ErrInvalidRequest.WithHint("subject_token_type must be " + TokenTypeAPIKey + ".")
	}
	if form.Get("actor_token") != "" {
		return fosite.ErrInvalidRequest.WithHint("Delegation with actor_token is not supported.")
	}
	if t := form.Get("requested_token_type"); t != "" && t != TokenTypeAccessToken {
		return fosite.ErrInvalidRequest.WithHint("Only access tokens can be requested.")
	}
	principal, key, err := h.keys.Verify(ctx, form.Get("subject_token"))
	if err != nil {
		if apiKeyFailure(err) {
			return fosite.ErrInvalidRequest.WithHint("The subject_token is not a valid, active API key.").WithWrap(err)
		}
		return err
	}
	if principal.OwnerType != apikeys.OwnerClient {
		return fosite.ErrInvalidRequest.WithHint("Only API keys owned by a client can be exchanged for access tokens.")
	}
	if c := r.GetClient(); c != nil && c.GetID() != "" && c.GetID() != principal.OwnerID {
		return fosite.ErrInvalidClient.WithHint("The authenticated client does not own this API key.")
	}
	client, err := h.p.cfg.Store.GetClient(ctx, principal.OwnerID)
	if err != nil {
		if errors.Is(err, fosite.ErrNotFound) {
			return fosite.ErrInvalidRequest.WithHint("The API key's client does not exist or is disabled.")
		}
		return err
	}
	if !client.GetGrantTypes().Has(GrantTypeTokenExchange) {
		return fosite.ErrUnauthorizedClient.WithHint("The client is not allowed to use the token exchange grant.")
	}
	ar, ok := r.(*fosite.AccessRequest)
	if !ok {
		return fosite.ErrServerError.WithDebug("unexpected access request type")
	}
	ar.Client = client
	strategy := h.p.fc.GetScopeStrategy(ctx)
	for _, s := range r.GetRequestedScopes() {
		if !strategy(client.GetScopes(), s) {
			return fosite.ErrInvalidScope.WithHintf("The client is not allowed to request scope '%s'.", s)
		}
		r.GrantScope(s)
	}
	if err := h.p.fc.GetAudienceStrategy(ctx)(client.GetAudience(), r.GetRequestedAudience()); err != nil {
		return err
	}
	for _, a := range r.GetRequestedAudience() {
		r.GrantAudience(a)
	}
	sess, ok := r.GetSession().(*storage.Session)
	if !ok {
		return fosite.ErrServerError.WithDebug("unexpected session type")
	}
	sess.Subject = client.GetID()
	sess.ClientID = client.GetID()
	sess.APIKeyID = key.ID
	sess.GetJWTClaims()
	sess.AccessClaims.Extra["api_key_id"] = key.ID
	lifespan := fosite.GetEffectiveLifespan(client, fosite.GrantTypeClientCredentials, fosite.AccessToken, h.p.fc.GetAccessTokenLifespan(ctx))
	sess.SetExpiresAt(fosite.AccessToken, time.Now().UTC().Add(lifespan).Round(time.Second))
	reqinfo.From(ctx).SetClientID(client.GetID())
	return nil
}

// PopulateTokenEndpointResponse issues the access token (RFC 8693 §2.2.1).
func (h *tokenExchange) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	token, signature, err := h.strategy.GenerateAccessToken(ctx, r)
	if err != nil {
		return err
	}
	if err := h.storage.CreateAccessTokenSession(ctx, signature, r.Sanitize(nil)); err != nil {
		return err
	}
	resp.SetAccessToken(token)
	resp.SetTokenType("bearer")
	resp.SetExpiresIn(time.Until(r.GetSession().GetExpiresAt(fosite.AccessToken)))
	resp.SetScopes(r.GetGrantedScopes())
	resp.SetExtra("issued_token_type", TokenTypeAccessToken)
	return nil
}
