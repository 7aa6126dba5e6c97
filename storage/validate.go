package storage

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Grant and response types Bulwark implements. Implicit, hybrid and the
// password grant are deliberately absent (RFC 9700 §2.1.2, §2.4).
var (
	SupportedGrantTypes    = []string{"authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange", GrantTypeDeviceCode}
	SupportedResponseTypes = []string{"code"}
	SupportedAuthMethods   = []string{AuthMethodSecretBasic, AuthMethodSecretPost, AuthMethodPrivateKeyJWT, AuthMethodNone}
	// SupportedAuthSigningAlgs are the private_key_jwt assertion algorithms
	// fosite verifies (RSA and ECDSA with a client's public key).
	SupportedAuthSigningAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
	// SupportedIDTokenSigningAlgs are the algorithms the key ring can sign
	// ID tokens with (keys: RS256 with RSA-3072, ES256, EdDSA with
	// Ed25519). A server signs only with those it keeps keys for
	// (--signing-algs); the admin Service checks that narrower set.
	SupportedIDTokenSigningAlgs = []string{"RS256", "ES256", "EdDSA"}
)

// ValidationError lists every problem found in a record, each naming its
// field, so an operator fixes them in one pass.
type ValidationError struct {
	Problems []FieldProblem
}

// FieldProblem is one invalid field.
type FieldProblem struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Problem
	}
	return "invalid: " + strings.Join(parts, "; ")
}

func (e *ValidationError) add(field, format string, args ...any) {
	e.Problems = append(e.Problems, FieldProblem{Field: field, Problem: fmt.Sprintf(format, args...)})
}

// IsLoopbackHost reports whether host (without port) is a loopback address
// or "localhost".
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// ValidateRedirectURI checks one redirect URI: absolute, no fragment, no
// user info; https, or http only toward loopback; private-use schemes only
// for native clients (RFC 8252 §7.1). URIs are parsed, never prefix-matched.
func ValidateRedirectURI(raw string, native bool) error {
	if strings.ContainsFunc(raw, unicode.IsSpace) {
		// url.Parse keeps trailing spaces in the path; a registered URI
		// that differs from the client's by invisible characters never
		// matches.
		return errors.New("must not contain white space")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URI")
	}
	switch {
	case !u.IsAbs():
		return errors.New("must be an absolute URI")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("must not contain a fragment")
	case u.User != nil:
		return errors.New("must not contain user information")
	case strings.Contains(u.Host, "*") || strings.Contains(u.Path, "*"):
		// Redirect URIs are compared exactly; a "*" looks like a pattern
		// to whoever registers it and would never match as one.
		return errors.New("must not contain \"*\": redirect URIs are matched exactly, without wildcards")
	}
	if strings.HasSuffix(u.Host, ":") {
		return errors.New("has an empty port")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return errors.New("has an invalid port")
		}
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return errors.New("https URI needs a host")
		}
	case "http":
		if !IsLoopbackHost(u.Hostname()) {
			return errors.New("http is only allowed for loopback redirect URIs; use https")
		}
	default:
		if !native {
			return fmt.Errorf("scheme %q is only allowed for native clients", u.Scheme)
		}
		if !strings.Contains(u.Scheme, ".") {
			return errors.New("a private-use scheme must be a reverse domain name (RFC 8252 §7.1)")
		}
	}
	return nil
}

// CORSOriginsFromRedirects is the allowed_cors_origins value that stands
// for every origin of the client's redirect URIs (Keycloak's "+").
const CORSOriginsFromRedirects = "+"

// ValidateCORSOrigin checks one allowed_cors_origins entry: a serialized
// origin (RFC 6454 §6.2) in lower case, scheme://host[:port] with http or
// https and nothing after the authority. Wildcards are refused: an origin
// list is an exact allow-list.
func ValidateCORSOrigin(raw string) error {
	if strings.Contains(raw, "*") {
		return errors.New("must not contain \"*\": origins are matched exactly")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || strings.ContainsFunc(raw, unicode.IsSpace):
		return errors.New("not a valid origin")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an http or https origin")
	case u.Host == "" || u.User != nil || u.Opaque != "":
		return errors.New("must be scheme://host[:port]")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(raw[len(u.Scheme)+3:], "/?#"):
		return errors.New("must be scheme://host[:port] with no path, query or fragment (no trailing slash)")
	case strings.HasSuffix(u.Host, ":"):
		return errors.New("has an empty port")
	case raw != strings.ToLower(raw):
		return errors.New("must be in lower case, as browsers send it")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return errors.New("has an invalid port")
		}
	}
	return nil
}

// Validate checks a client's metadata for consistency. allowedScopes, when
// non-empty, is the set of scopes the server knows. It reports every
// problem at once as a *ValidationError.
func (c *Client) Validate(allowedScopes []string) error {
	v := &ValidationError{}
	if strings.TrimSpace(c.ID) == "" {
		v.add("client_id", "is required")
	} else if len(c.ID) > 128 || strings.ContainsAny(c.ID, " \t\r\n:") {
		v.add("client_id", "must be at most 128 characters without spaces or colons")
	} else if problem := clientIDProblem(c.ID); problem != "" {
		v.add("client_id", "%s", problem)
	}
	if len(c.Name) > 200 {
		v.add("client_name", "must be at most 200 characters")
	}
	if !slices.Contains(SupportedAuthMethods, c.TokenEndpointAuthMethod) {
		v.add("token_endpoint_auth_method", "must be one of %s", strings.Join(SupportedAuthMethods, ", "))
	}
	if c.ApplicationType != "" && c.ApplicationType != AppTypeWeb && c.ApplicationType != AppTypeNative {
		v.add("application_type", "must be web or native")
	}
	if len(c.GrantTypes) == 0 {
		v.add("grant_types", "at least one grant type is required")
	}
	for _, g := range c.GrantTypes {
		if !slices.Contains(SupportedGrantTypes, g) {
			v.add("grant_types", "unsupported grant type %q (supported: %s)", g, strings.Join(SupportedGrantTypes, ", "))
		}
	}
	for _, rt := range c.ResponseTypes {
		if !slices.Contains(SupportedResponseTypes, rt) {
			v.add("response_types", "unsupported response type %q (only \"code\")", rt)
		}
	}
	usesCode := slices.Contains(c.GrantTypes, "authorization_code")
	if usesCode && !slices.Contains(c.ResponseTypes, "code") {
		v.add("response_types", "must include \"code\" for the authorization_code grant")
	}
	if !usesCode && len(c.ResponseTypes) > 0 {
		v.add("response_types", "must be empty unless the authorization_code grant is allowed")
	}
	if usesCode && len(c.RedirectURIs) == 0 {
		v.add("redirect_uris", "at least one redirect URI is required for the authorization_code grant")
	}
	for i, r := range c.RedirectURIs {
		if err := ValidateRedirectURI(r, c.IsNative()); err != nil {
			v.add(fmt.Sprintf("redirect_uris[%d]", i), "%s", err.Error())
		}
	}
	for i, o := range c.AllowedCORSOrigins {
		field := fmt.Sprintf("allowed_cors_origins[%d]", i)
		switch {
		case o == CORSOriginsFromRedirects && len(c.RedirectURIs) == 0:
			v.add(field, "\"+\" stands for the origins of the redirect URIs, and there are none")
		case o == CORSOriginsFromRedirects:
		case slices.Contains(c.AllowedCORSOrigins[:i], o):
			v.add(field, "duplicate origin %q", o)
		default:
			if err := ValidateCORSOrigin(o); err != nil {
				v.add(field, "%s", err.Error())
			}
		}
	}
	if c.BackchannelLogoutURI != "" {
		// The rules of a redirect URI (absolute, no fragment, https or
		// loopback http) are the spec's rules for this URI (§2.2).
		if err := ValidateRedirectURI(c.BackchannelLogoutURI, false); err != nil {
			v.add("backchannel_logout_uri", "%s", err.Error())
		}
	} else if c.BackchannelLogoutSessionRequired {
		v.add("backchannel_logout_session_required", "needs a backchannel_logout_uri")
	}
	if c.TokenEndpointAuthMethod == AuthMethodNone {
		if slices.Contains(c.GrantTypes, "client_credentials") {
			v.add("grant_types", "a public client (token_endpoint_auth_method none) cannot use client_credentials")
		}
		if c.PKCEOptional {
			v.add("pkce_optional", "public clients must use PKCE")
		}
	}
	hasJWKS := c.JWKS != nil && len(c.JWKS.Keys) > 0
	if c.TokenEndpointAuthMethod == AuthMethodPrivateKeyJWT && !hasJWKS && c.JWKSURI == "" {
		v.add("jwks", "private_key_jwt needs the client's public keys in jwks or jwks_uri")
	}
	if c.JWKSURI != "" {
		// RFC 7591 §2: jwks and jwks_uri MUST NOT both be present.
		if c.JWKS != nil {
			v.add("jwks_uri", "must not be given together with jwks")
		}
		// The rules of a redirect URI: absolute, no fragment, https or
		// loopback http. Where it may actually be fetched from is the
		// egress rules' decision (server/egress).
		if err := ValidateRedirectURI(c.JWKSURI, false); err != nil {
			v.add("jwks_uri", "%s", err.Error())
		} else if len(c.JWKSURI) > maxURILength {
			v.add("jwks_uri", "must be at most %d characters", maxURILength)
		}
	}
	if c.JWKS != nil {
		// The key set is returned by the admin API and console: a private
		// or symmetric key pasted here by mistake would be handed out.
		for i, k := range c.JWKS.Keys {
			if !k.Valid() || !k.IsPublic() {
				v.add("jwks", "keys[%d] must be a valid public key", i)
			} else if _, symmetric := k.Key.([]byte); symmetric {
				v.add("jwks", "keys[%d] must be a public key, not a symmetric one", i)
			}
		}
	}
	if c.TokenEndpointAuthSigningAlg != "" && !slices.Contains(SupportedAuthSigningAlgs, c.TokenEndpointAuthSigningAlg) {
		v.add("token_endpoint_auth_signing_alg", "must be one of %s", strings.Join(SupportedAuthSigningAlgs, ", "))
	}
	if c.IDTokenSignedResponseAlg != "" && !slices.Contains(SupportedIDTokenSigningAlgs, c.IDTokenSignedResponseAlg) {
		v.add("id_token_signed_response_alg", "must be one of %s (or empty for the server's default)", strings.Join(SupportedIDTokenSigningAlgs, ", "))
	}
	for _, s := range c.Scopes {
		if !validScopeToken(s) {
			v.add("scope", "%q is not a scope token (RFC 6749 §3.3: printable ASCII without space, \" or \\)", s)
		}
	}
	for _, a := range c.Audience {
		if strings.TrimSpace(a) == "" || strings.ContainsFunc(a, unicode.IsSpace) {
			v.add("audience", "entries must be non-empty and contain no white space")
			break
		}
	}
	if len(allowedScopes) > 0 {
		for _, s := range c.Scopes {
			if !slices.Contains(allowedScopes, s) {
				v.add("scope", "unknown scope %q", s)
			}
		}
	}
	for field, raw := range map[string]string{"logo_uri": c.LogoURI, "client_uri": c.ClientURI} {
		if raw == "" {
			continue
		}
		if u, err := url.Parse(raw); err != nil || u.Scheme != "https" || u.Host == "" {
			v.add(field, "must be an absolute https URI")
		}
	}
	for _, l := range []struct {
		field string
		d     time.Duration
	}{
		{"access_token_lifespan", c.AccessTokenLifespan},
		{"refresh_token_lifespan", c.RefreshTokenLifespan},
		{"id_token_lifespan", c.IDTokenLifespan},
	} {
		if l.d < 0 || l.d > MaxLifespan {
			v.add(l.field, "must be between 0s (the server default) and %s", MaxLifespan)
		}
	}
	if len(v.Problems) > 0 {
		slices.SortStableFunc(v.Problems, func(a, b FieldProblem) int { return strings.Compare(a.Field, b.Field) })
		return v
	}
	return nil
}

// maxURILength bounds a URI the server may fetch.
const maxURILength = 2048

// validScopeToken reports whether s is a scope-token of RFC 6749 §3.3:
// one or more of %x21 / %x23-5B / %x5D-7E.
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x21 || b > 0x7e || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// clientIDProblem says why id could not be addressed as one path segment
// of the admin API (/clients/{id}), or "" when it can: a client that
// cannot be addressed cannot be read, disabled or deleted there.
func clientIDProblem(id string) string {
	if id == "." || id == ".." {
		return "must not be a dot segment"
	}
	if !utf8.ValidString(id) {
		return "must be valid UTF-8"
	}
	if strings.ContainsAny(id, `/\?#%`) || strings.ContainsFunc(id, func(r rune) bool {
		return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
	}) {
		return `must not contain / \ ? # %, control or formatting characters`
	}
	return ""
}
