package storage

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
)

func TestValidateRedirectURI(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw     string
		native  bool
		wantErr bool
	}{
		{"https://app.example/cb", false, false},
		{"https://app.example/cb?x=1", false, false},
		{"http://127.0.0.1/cb", true, false},
		{"http://[::1]:8080/cb", true, false},
		{"com.example.app:/cb", true, false},
		{"", false, true},
		{"/cb", false, true},
		{"https://app.example/cb#frag", false, true},
		{"https://user@app.example/cb", false, true},
		{"http://app.example/cb", false, true},
		{"http://localhost.evil.example/cb", false, true},
		{"javascript:alert(1)", true, true},
		{"data:text/html,hi", true, true},
		{"com.example.app:/cb", false, true},
		// Exact matching makes these useless at best and misleading at
		// worst: they look like patterns or hide a character.
		{"https://*.app.example/cb", false, true},
		{"https://app.example/*", false, true},
		{"https://app.example/cb ", false, true},
		{" https://app.example/cb", false, true},
		{"https://app.example:99999/cb", false, true},
		{"https://app.example:/cb", false, true},
	}
	for _, tc := range cases {
		t.Run("case="+tc.raw, func(t *testing.T) {
			t.Parallel()
			err := ValidateRedirectURI(tc.raw, tc.native)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ValidateRedirectURI(%q, native=%v) = %v, want error %v", tc.raw, tc.native, err, tc.wantErr)
			}
		})
	}
}

func TestClientValidateProblems(t *testing.T) {
	t.Parallel()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	base := func() *Client {
		return &Client{
			ID: "svc", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api:read"},
			TokenEndpointAuthMethod: AuthMethodPrivateKeyJWT, TokenEndpointAuthSigningAlg: "ES256",
			JWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}},
		}
	}
	if err := base().Validate(nil); err != nil {
		t.Fatalf("valid client refused: %v", err)
	}
	for _, alg := range SupportedIDTokenSigningAlgs {
		c := base()
		c.IDTokenSignedResponseAlg = alg
		if err := c.Validate(nil); err != nil {
			t.Fatalf("id_token_signed_response_alg %s refused: %v", alg, err)
		}
	}
	cases := []struct {
		name   string
		mutate func(*Client)
		field  string
	}{
		{"case=private key in jwks", func(c *Client) {
			c.JWKS.Keys[0] = jose.JSONWebKey{Key: priv, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
		}, "jwks"},
		{"case=symmetric key in jwks", func(c *Client) {
			c.JWKS.Keys[0] = jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "k1", Algorithm: "HS256"}
		}, "jwks"},
		{"case=auth signing alg none", func(c *Client) { c.TokenEndpointAuthSigningAlg = "none" }, "token_endpoint_auth_signing_alg"},
		{"case=auth signing alg HS256", func(c *Client) { c.TokenEndpointAuthSigningAlg = "HS256" }, "token_endpoint_auth_signing_alg"},
		{"case=empty scope", func(c *Client) { c.Scopes = []string{"api:read", ""} }, "scope"},
		{"case=scope with space", func(c *Client) { c.Scopes = []string{"api read"} }, "scope"},
		{"case=scope with quote", func(c *Client) { c.Scopes = []string{`api"read`} }, "scope"},
		{"case=empty audience", func(c *Client) { c.Audience = []string{""} }, "audience"},
		{"case=cors plus without redirect uris", func(c *Client) { c.AllowedCORSOrigins = []string{"+"} }, "allowed_cors_origins[0]"},
		{"case=cors duplicate", func(c *Client) { c.AllowedCORSOrigins = []string{"https://a.example", "https://a.example"} }, "allowed_cors_origins[1]"},
		{"case=cors bad origin", func(c *Client) { c.AllowedCORSOrigins = []string{"https://a.example/"} }, "allowed_cors_origins[0]"},
		{"case=backchannel http non-loopback", func(c *Client) { c.BackchannelLogoutURI = "http://rp.example/logout" }, "backchannel_logout_uri"},
		{"case=backchannel fragment", func(c *Client) { c.BackchannelLogoutURI = "https://rp.example/logout#x" }, "backchannel_logout_uri"},
		{"case=backchannel session required without uri", func(c *Client) { c.BackchannelLogoutSessionRequired = true }, "backchannel_logout_session_required"},
		{"case=id token alg none", func(c *Client) { c.IDTokenSignedResponseAlg = "none" }, "id_token_signed_response_alg"},
		{"case=id token alg HS256", func(c *Client) { c.IDTokenSignedResponseAlg = "HS256" }, "id_token_signed_response_alg"},
		{"case=id token alg lower case", func(c *Client) { c.IDTokenSignedResponseAlg = "es256" }, "id_token_signed_response_alg"},
		{"case=id token alg the ring cannot sign", func(c *Client) { c.IDTokenSignedResponseAlg = "PS256" }, "id_token_signed_response_alg"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := base()
			tc.mutate(c)
			err := c.Validate(nil)
			var v *ValidationError
			if !errors.As(err, &v) {
				t.Fatalf("Validate = %v, want a *ValidationError naming %s", err, tc.field)
			}
			for _, p := range v.Problems {
				if p.Field == tc.field {
					if strings.Contains(p.Problem, "0123456789abcdef") {
						t.Fatalf("key material in the problem: %s", p.Problem)
					}
					return
				}
			}
			t.Fatalf("problems %v do not name %s", v.Problems, tc.field)
		})
	}
}

// TestClientIDMustBeAddressable: every path to a client (admin API, seed
// file, console) refuses ids the admin API could not address again.
func TestClientIDMustBeAddressable(t *testing.T) {
	for _, id := range []string{"a/b", ".", "..", "a?b", "a%2Fb", "a#b", `a\b`, "a\x00b", "a\u202eb", "a\u200bb"} {
		c := &Client{ID: id, GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: AuthMethodSecretBasic}
		err := c.Validate(nil)
		if err == nil || !strings.Contains(err.Error(), "client_id") {
			t.Errorf("client_id %q accepted: %v", id, err)
		}
	}
	ok := &Client{ID: "billing-service_v2.prod", GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: AuthMethodSecretBasic}
	if err := ok.Validate(nil); err != nil {
		t.Fatalf("an ordinary id refused: %v", err)
	}
}

func TestValidateCORSOrigin(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in string
		ok bool
	}{
		{"https://app.example", true},
		{"http://127.0.0.2:9877", true},
		{"https://app.example:8443", true},
		{"http://[::1]:3000", true},
		{"https://app.example/", false},
		{"https://app.example/path", false},
		{"https://app.example?x=1", false},
		{"https://app.example#f", false},
		{"https://*.example", false},
		{"*", false},
		{"null", false},
		{"https://App.Example", false},
		{"ftp://app.example", false},
		{"https://user@app.example", false},
		{"https://app.example:", false},
		{"https://app.example:99999", false},
		{"https://app.example ", false},
		{"app.example", false},
	}
	for _, c := range cases {
		t.Run("origin="+c.in, func(t *testing.T) {
			t.Parallel()
			if err := ValidateCORSOrigin(c.in); (err == nil) != c.ok {
				t.Fatalf("ValidateCORSOrigin(%q) = %v, want ok %v", c.in, err, c.ok)
			}
		})
	}
	// "+" is valid with redirect URIs, and a loopback back-channel URI is
	// accepted like a loopback redirect URI.
	cl := &Client{
		ID: "spa", GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"},
		RedirectURIs: []string{"http://127.0.0.2:9877/cb"}, TokenEndpointAuthMethod: AuthMethodNone,
		AllowedCORSOrigins: []string{"+", "https://other.example"}, BackchannelLogoutURI: "http://127.0.0.1:9/bc",
		BackchannelLogoutSessionRequired: true,
	}
	if err := cl.Validate(nil); err != nil {
		t.Fatalf("valid client refused: %v", err)
	}
}

func TestInitialAccessTokenStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	revoked := now.Add(-time.Minute)
	cases := []struct {
		name string
		tok  InitialAccessToken
		want string
	}{
		{"case=usable", InitialAccessToken{MaxClients: 2, Registered: 1, ExpiresAt: now.Add(time.Hour)}, InitialTokenUsable},
		{"case=used up", InitialAccessToken{MaxClients: 1, Registered: 1, ExpiresAt: now.Add(time.Hour)}, InitialTokenUsedUp},
		{"case=expired at the instant", InitialAccessToken{MaxClients: 1, ExpiresAt: now}, InitialTokenExpired},
		{"case=revoked wins", InitialAccessToken{MaxClients: 1, Registered: 1, ExpiresAt: now.Add(-time.Hour), RevokedAt: &revoked}, InitialTokenRevoked},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := c.tok.Status(now); got != c.want {
				t.Fatalf("Status = %q, want %q", got, c.want)
			}
			if c.tok.Usable(now) != (c.want == InitialTokenUsable) {
				t.Fatalf("Usable disagrees with Status %q", c.want)
			}
		})
	}
}
