package storage

import (
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
)

// Token endpoint authentication methods (RFC 7591 §2).
const (
	AuthMethodSecretBasic   = "client_secret_basic"
	AuthMethodSecretPost    = "client_secret_post"
	AuthMethodPrivateKeyJWT = "private_key_jwt"
	AuthMethodNone          = "none"
)

// Application types (OpenID Connect Dynamic Client Registration §2).
const (
	AppTypeWeb    = "web"
	AppTypeNative = "native"
)

// RotatedSecret is a client secret hash that stays valid until ExpiresAt
// after the secret was rotated, so deployed clients can be updated without
// an outage.
type RotatedSecret struct {
	Hash      string    `json:"hash"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Client is an OAuth 2.0 client. Field names follow RFC 7591 where one
// exists. Secrets are only ever present as Argon2id PHC strings.
//
// *Client implements the fosite client interfaces directly, so the stores
// hand it to fosite without an adapter.
type Client struct {
	ID                      string          `json:"client_id"`
	SecretHash              string          `json:"-"`
	RotatedSecrets          []RotatedSecret `json:"-"`
	Name                    string          `json:"client_name"`
	RedirectURIs            []string        `json:"redirect_uris"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types"`
	Scopes                  []string        `json:"scope"`
	Audience                []string        `json:"audience"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	// TokenEndpointAuthSigningAlg pins the algorithm of private_key_jwt
	// assertions (RFC 7523).
	TokenEndpointAuthSigningAlg string `json:"token_endpoint_auth_signing_alg"`
	// JWKS holds the client's public keys for private_key_jwt and signed
	// request objects. JWKS URIs are not supported: Bulwark never fetches
	// URLs on a client's behalf.
	JWKS *jose.JSONWebKeySet `json:"jwks,omitempty"`
	// RequestObjectSigningAlg pins the algorithm of request objects. Empty
	// means request objects are refused for this client.
	RequestObjectSigningAlg string   `json:"request_object_signing_alg"`
	ApplicationType         string   `json:"application_type"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	Contacts                []string `json:"contacts,omitempty"`
	// SkipConsent marks a first-party client whose users are not asked for
	// consent.
	SkipConsent bool `json:"skip_consent"`
	// PKCEOptional is the per-client opt-out from mandatory PKCE, meant only
	// for legacy confidential clients.
	PKCEOptional bool `json:"pkce_optional"`
	// Lifespans override the server defaults when non-zero.
	AccessTokenLifespan  time.Duration `json:"access_token_lifespan"`
	RefreshTokenLifespan time.Duration `json:"refresh_token_lifespan"`
	IDTokenLifespan      time.Duration `json:"id_token_lifespan"`
	// Owner is the principal that owns this client (an admin user or API
	// key id), used for object-level authorization on the admin API.
	Owner     string    `json:"owner,omitempty"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Version increases on every update; it is the admin API's ETag.
	Version int64 `json:"-"`
}

var (
	_ fosite.Client                         = (*Client)(nil)
	_ fosite.ClientWithSecretRotation       = (*Client)(nil)
	_ fosite.OpenIDConnectClient            = (*Client)(nil)
	_ fosite.ClientWithCustomTokenLifespans = (*Client)(nil)
)

// GetID implements fosite.Client.
func (c *Client) GetID() string { return c.ID }

// GetHashedSecret implements fosite.Client.
func (c *Client) GetHashedSecret() []byte { return []byte(c.SecretHash) }

// GetRotatedHashes implements fosite.ClientWithSecretRotation: previous
// secrets still inside their overlap window.
func (c *Client) GetRotatedHashes() [][]byte {
	now := time.Now()
	var out [][]byte
	for _, r := range c.RotatedSecrets {
		if r.ExpiresAt.After(now) {
			out = append(out, []byte(r.Hash))
		}
	}
	return out
}

// GetRedirectURIs implements fosite.Client.
func (c *Client) GetRedirectURIs() []string { return c.RedirectURIs }

// GetGrantTypes implements fosite.Client.
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }

// GetResponseTypes implements fosite.Client.
func (c *Client) GetResponseTypes() fosite.Arguments { return c.ResponseTypes }

// GetScopes implements fosite.Client.
func (c *Client) GetScopes() fosite.Arguments { return c.Scopes }

// IsPublic implements fosite.Client: public clients authenticate with "none".
func (c *Client) IsPublic() bool { return c.TokenEndpointAuthMethod == AuthMethodNone }

// GetAudience implements fosite.Client.
func (c *Client) GetAudience() fosite.Arguments { return c.Audience }

// GetRequestURIs implements fosite.OpenIDConnectClient. Bulwark registers no
// request URIs, so fosite never fetches one.
func (c *Client) GetRequestURIs() []string { return nil }

// GetJSONWebKeys implements fosite.OpenIDConnectClient.
func (c *Client) GetJSONWebKeys() *jose.JSONWebKeySet { return c.JWKS }

// GetJSONWebKeysURI implements fosite.OpenIDConnectClient. Always empty:
// Bulwark does not fetch client key sets.
func (c *Client) GetJSONWebKeysURI() string { return "" }

// GetRequestObjectSigningAlgorithm implements fosite.OpenIDConnectClient.
func (c *Client) GetRequestObjectSigningAlgorithm() string { return c.RequestObjectSigningAlg }

// GetTokenEndpointAuthMethod implements fosite.OpenIDConnectClient.
func (c *Client) GetTokenEndpointAuthMethod() string { return c.TokenEndpointAuthMethod }

// GetTokenEndpointAuthSigningAlgorithm implements fosite.OpenIDConnectClient.
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string {
	if c.TokenEndpointAuthSigningAlg == "" {
		return "RS256"
	}
	return c.TokenEndpointAuthSigningAlg
}

// GetEffectiveLifespan implements fosite.ClientWithCustomTokenLifespans.
func (c *Client) GetEffectiveLifespan(_ fosite.GrantType, tt fosite.TokenType, fallback time.Duration) time.Duration {
	var d time.Duration
	switch tt {
	case fosite.AccessToken:
		d = c.AccessTokenLifespan
	case fosite.RefreshToken:
		d = c.RefreshTokenLifespan
	case fosite.IDToken:
		d = c.IDTokenLifespan
	}
	if d > 0 {
		return d
	}
	return fallback
}

// IsNative reports whether this is a native application, which alone gets
// RFC 8252 §7.3 loopback port flexibility on redirect URIs.
func (c *Client) IsNative() bool { return c.ApplicationType == AppTypeNative }

// Clone returns a deep copy, so stores never share slices with callers.
func (c *Client) Clone() *Client {
	if c == nil {
		return nil
	}
	out := *c
	out.RotatedSecrets = append([]RotatedSecret(nil), c.RotatedSecrets...)
	out.RedirectURIs = append([]string(nil), c.RedirectURIs...)
	out.GrantTypes = append([]string(nil), c.GrantTypes...)
	out.ResponseTypes = append([]string(nil), c.ResponseTypes...)
	out.Scopes = append([]string(nil), c.Scopes...)
	out.Audience = append([]string(nil), c.Audience...)
	out.Contacts = append([]string(nil), c.Contacts...)
	if c.JWKS != nil {
		ks := jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), c.JWKS.Keys...)}
		out.JWKS = &ks
	}
	return &out
}
