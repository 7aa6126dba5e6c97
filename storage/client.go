package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
	// request objects.
	JWKS *jose.JSONWebKeySet `json:"jwks,omitempty"`
	// JWKSURI is where the client publishes its key set instead (RFC 7591
	// §2; never together with JWKS). It is fetched only through
	// server/egress, which refuses the server's own networks.
	JWKSURI string `json:"jwks_uri,omitempty"`
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
	// AllowedCORSOrigins are the browser origins (scheme://host[:port])
	// that may call the token, userinfo and revocation endpoints for this
	// client. "+" stands for every origin of the client's redirect URIs.
	AllowedCORSOrigins []string `json:"allowed_cors_origins,omitempty"`
	// DPoPBoundAccessTokens makes DPoP proofs mandatory for this client's
	// token requests (RFC 9449 §5.2).
	DPoPBoundAccessTokens bool `json:"dpop_bound_access_tokens"`
	// BackchannelLogoutURI receives logout tokens (OpenID Connect
	// Back-Channel Logout 1.0 §2.2); empty means none are sent.
	BackchannelLogoutURI string `json:"backchannel_logout_uri,omitempty"`
	// BackchannelLogoutSessionRequired asks for the sid claim in logout
	// tokens.
	BackchannelLogoutSessionRequired bool `json:"backchannel_logout_session_required"`
	// IDTokenSignedResponseAlg is the algorithm of the client's ID tokens
	// (OpenID Connect Dynamic Client Registration 1.0 §2): one of
	// SupportedIDTokenSigningAlgs, or empty for the server's default.
	IDTokenSignedResponseAlg string `json:"id_token_signed_response_alg,omitempty"`
	// Lifespans override the server defaults when non-zero.
	AccessTokenLifespan  time.Duration `json:"access_token_lifespan"`
	RefreshTokenLifespan time.Duration `json:"refresh_token_lifespan"`
	IDTokenLifespan      time.Duration `json:"id_token_lifespan"`
	// Owner is the principal that owns this client (an admin user or API
	// key id), used for object-level authorization on the admin API.
	Owner    string `json:"owner,omitempty"`
	Disabled bool   `json:"disabled"`
	// RegisteredVia says how a client registered itself (RFC 7591): "" for
	// a client an admin made, RegisteredOpen, or the id of the initial
	// access token it presented. Set by the server only.
	RegisteredVia string    `json:"registered_via,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
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

// GetJSONWebKeysURI implements fosite.OpenIDConnectClient. fosite fetches
// it with the JWKS fetcher the provider configures (server/egress rules).
func (c *Client) GetJSONWebKeysURI() string { return c.JWKSURI }

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
	out.AllowedCORSOrigins = append([]string(nil), c.AllowedCORSOrigins...)
	if c.JWKS != nil {
		ks := jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), c.JWKS.Keys...)}
		out.JWKS = &ks
	}
	return &out
}

// Default client metadata, applied by Normalize. grant_types deliberately
// differs from RFC 7591 §2 (authorization_code alone): a client that
// signs users in nearly always wants refresh tokens, which fosite issues
// only when the offline_access scope is granted anyway.
var (
	DefaultGrantTypes       = []string{"authorization_code", "refresh_token"}
	DefaultAuthMethod       = AuthMethodSecretBasic
	DefaultApplicationType  = AppTypeWeb
	defaultCodeResponseType = []string{"code"}
)

// Normalize fills the defaults of omitted metadata. It is the one place
// defaults live: the admin API, the console, the seed file and the CLI all
// reach it through ClientSpec.ApplyTo, so the same input yields the same
// stored client whichever way it arrives.
func (c *Client) Normalize() {
	if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = DefaultAuthMethod
	}
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = slices.Clone(DefaultGrantTypes)
	}
	// RFC 7591 §2.1: response_types follow the grants; "code" is the only
	// one Bulwark implements and it belongs to authorization_code.
	if len(c.ResponseTypes) == 0 && slices.Contains(c.GrantTypes, "authorization_code") {
		c.ResponseTypes = slices.Clone(defaultCodeResponseType)
	}
	if c.ApplicationType == "" {
		c.ApplicationType = DefaultApplicationType
	}
}

// ClientSpec is the client metadata an operator controls (RFC 7591 §2
// names), in the one shape the admin API, the console, the seed file and
// the CLI share. The server controls everything else on a Client:
// secrets, timestamps, version, owner and the disabled flag.
type ClientSpec struct {
	// ID is honoured on create only; empty means the server picks one.
	ID                          string              `json:"client_id" yaml:"client_id"`
	Name                        string              `json:"client_name" yaml:"client_name"`
	RedirectURIs                []string            `json:"redirect_uris" yaml:"redirect_uris"`
	GrantTypes                  []string            `json:"grant_types" yaml:"grant_types"`
	ResponseTypes               []string            `json:"response_types" yaml:"response_types"`
	Scopes                      SpaceSeparated      `json:"scope" yaml:"scope"`
	Audience                    []string            `json:"audience" yaml:"audience"`
	TokenEndpointAuthMethod     string              `json:"token_endpoint_auth_method" yaml:"token_endpoint_auth_method"`
	TokenEndpointAuthSigningAlg string              `json:"token_endpoint_auth_signing_alg,omitempty" yaml:"token_endpoint_auth_signing_alg"`
	JWKS                        *jose.JSONWebKeySet `json:"jwks,omitempty" yaml:"-"`
	JWKSURI                     string              `json:"jwks_uri,omitempty" yaml:"jwks_uri"`
	RequestObjectSigningAlg     string              `json:"request_object_signing_alg,omitempty" yaml:"request_object_signing_alg"`
	ApplicationType             string              `json:"application_type" yaml:"application_type"`
	LogoURI                     string              `json:"logo_uri,omitempty" yaml:"logo_uri"`
	ClientURI                   string              `json:"client_uri,omitempty" yaml:"client_uri"`
	Contacts                    []string            `json:"contacts,omitempty" yaml:"contacts"`
	SkipConsent                 bool                `json:"skip_consent" yaml:"skip_consent"`
	PKCEOptional                bool                `json:"pkce_optional" yaml:"pkce_optional"`
	// AllowedCORSOrigins: see Client.
	AllowedCORSOrigins               []string `json:"allowed_cors_origins,omitempty" yaml:"allowed_cors_origins"`
	DPoPBoundAccessTokens            bool     `json:"dpop_bound_access_tokens" yaml:"dpop_bound_access_tokens"`
	BackchannelLogoutURI             string   `json:"backchannel_logout_uri,omitempty" yaml:"backchannel_logout_uri"`
	BackchannelLogoutSessionRequired bool     `json:"backchannel_logout_session_required" yaml:"backchannel_logout_session_required"`
	// IDTokenSignedResponseAlg: see Client.
	IDTokenSignedResponseAlg string `json:"id_token_signed_response_alg,omitempty" yaml:"id_token_signed_response_alg"`
	// Lifespans override the server defaults when non-zero.
	AccessTokenLifespan  Duration `json:"access_token_lifespan" yaml:"access_token_lifespan"`
	RefreshTokenLifespan Duration `json:"refresh_token_lifespan" yaml:"refresh_token_lifespan"`
	IDTokenLifespan      Duration `json:"id_token_lifespan" yaml:"id_token_lifespan"`
}

// ApplyTo replaces c's operator-controlled metadata with s and fills the
// defaults (Normalize). c.ID is set only when s.ID is not empty.
func (s ClientSpec) ApplyTo(c *Client) {
	if s.ID != "" {
		c.ID = s.ID
	}
	c.Name = s.Name
	c.RedirectURIs = slices.Clone(s.RedirectURIs)
	c.GrantTypes = slices.Clone(s.GrantTypes)
	c.ResponseTypes = slices.Clone(s.ResponseTypes)
	c.Scopes = slices.Clone([]string(s.Scopes))
	c.Audience = slices.Clone(s.Audience)
	c.TokenEndpointAuthMethod = s.TokenEndpointAuthMethod
	c.TokenEndpointAuthSigningAlg = s.TokenEndpointAuthSigningAlg
	c.JWKS = cloneJWKS(s.JWKS)
	c.JWKSURI = s.JWKSURI
	c.RequestObjectSigningAlg = s.RequestObjectSigningAlg
	c.ApplicationType = s.ApplicationType
	c.LogoURI = s.LogoURI
	c.ClientURI = s.ClientURI
	c.Contacts = slices.Clone(s.Contacts)
	c.SkipConsent = s.SkipConsent
	c.PKCEOptional = s.PKCEOptional
	c.AllowedCORSOrigins = slices.Clone(s.AllowedCORSOrigins)
	c.DPoPBoundAccessTokens = s.DPoPBoundAccessTokens
	c.BackchannelLogoutURI = s.BackchannelLogoutURI
	c.BackchannelLogoutSessionRequired = s.BackchannelLogoutSessionRequired
	c.IDTokenSignedResponseAlg = s.IDTokenSignedResponseAlg
	c.AccessTokenLifespan = time.Duration(s.AccessTokenLifespan)
	c.RefreshTokenLifespan = time.Duration(s.RefreshTokenLifespan)
	c.IDTokenLifespan = time.Duration(s.IDTokenLifespan)
	c.Normalize()
}

// Spec returns the operator-controlled metadata of c, e.g. to prefill an
// edit form or to answer a GET that can be PUT back unchanged.
func (c *Client) Spec() ClientSpec {
	return ClientSpec{
		ID: c.ID, Name: c.Name,
		RedirectURIs: slices.Clone(c.RedirectURIs), GrantTypes: slices.Clone(c.GrantTypes),
		ResponseTypes: slices.Clone(c.ResponseTypes), Scopes: slices.Clone(c.Scopes),
		Audience: slices.Clone(c.Audience), TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
		TokenEndpointAuthSigningAlg: c.TokenEndpointAuthSigningAlg, JWKS: cloneJWKS(c.JWKS), JWKSURI: c.JWKSURI,
		RequestObjectSigningAlg: c.RequestObjectSigningAlg, ApplicationType: c.ApplicationType,
		LogoURI: c.LogoURI, ClientURI: c.ClientURI, Contacts: slices.Clone(c.Contacts),
		SkipConsent: c.SkipConsent, PKCEOptional: c.PKCEOptional,
		AllowedCORSOrigins: slices.Clone(c.AllowedCORSOrigins), DPoPBoundAccessTokens: c.DPoPBoundAccessTokens,
		BackchannelLogoutURI: c.BackchannelLogoutURI, BackchannelLogoutSessionRequired: c.BackchannelLogoutSessionRequired,
		IDTokenSignedResponseAlg: c.IDTokenSignedResponseAlg, AccessTokenLifespan: Duration(c.AccessTokenLifespan),
		RefreshTokenLifespan: Duration(c.RefreshTokenLifespan),
		IDTokenLifespan:      Duration(c.IDTokenLifespan),
	}
}

func cloneJWKS(ks *jose.JSONWebKeySet) *jose.JSONWebKeySet {
	if ks == nil {
		return nil
	}
	return &jose.JSONWebKeySet{Keys: slices.Clone(ks.Keys)}
}

// SpaceSeparated is a list written as one space-separated string, as
// RFC 6749 §3.3 writes scopes.
type SpaceSeparated []string

// MarshalText implements encoding.TextMarshaler.
func (l SpaceSeparated) MarshalText() ([]byte, error) { return []byte(strings.Join(l, " ")), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *SpaceSeparated) UnmarshalText(b []byte) error {
	*l = strings.Fields(string(b))
	return nil
}

// Duration is a lifespan in Go duration syntax ("15m", "720h") wherever a
// client is written: admin API JSON, seed file, console form, CLI. JSON
// also accepts a number of seconds, the first admin API's format, so
// existing scripts keep working; it is always written as a string.
type Duration time.Duration

// String returns the Go duration syntax ("0s" when unset).
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (YAML and forms).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON accepts a duration string or, for compatibility, a whole
// number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		return d.UnmarshalText([]byte(s))
	}
	secs, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || secs < 0 || secs > int64(MaxLifespan/time.Second) {
		return errors.New(`must be a duration such as "15m" or "720h"`)
	}
	*d = Duration(time.Duration(secs) * time.Second)
	return nil
}

// MaxLifespan bounds client token lifespans.
const MaxLifespan = 10 * 365 * 24 * time.Hour

// ParseDuration reads a lifespan in Go duration syntax; "" is zero (the
// server default).
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		if len(s) > 32 {
			s = s[:32] + "…"
		}
		return 0, fmt.Errorf(`%q is not a duration: use Go syntax such as "15m" or "720h"`, s)
	}
	return v, nil
}
