package oauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/bulwark-auth/bulwark/server/dpop"
)

// Scopes Bulwark understands for end users. Clients may register further
// scopes (API permissions); they are shown on the consent page as-is.
var scopeDescriptions = map[string]string{
	"openid":         "sign you in",
	"profile":        "see your username",
	"email":          "see your email address",
	"offline_access": "stay connected while you are away",
}

var advertisedScopes = []string{"openid", "profile", "email", "offline_access"}

// metadata is the authorization server metadata (RFC 8414 §2) and OpenID
// Provider metadata (OpenID Connect Discovery 1.0 §3). It advertises exactly
// what the composed handlers do. end_session_endpoint (OpenID Connect
// RP-Initiated Logout 1.0 §2.1) is in the RFC 8414 document too, since the
// same clients read either.
type metadata struct {
	Issuer                                 string   `json:"issuer"`
	AuthorizationEndpoint                  string   `json:"authorization_endpoint"`
	TokenEndpoint                          string   `json:"token_endpoint"`
	JWKSURI                                string   `json:"jwks_uri"`
	UserinfoEndpoint                       string   `json:"userinfo_endpoint,omitempty"`
	IntrospectionEndpoint                  string   `json:"introspection_endpoint"`
	RevocationEndpoint                     string   `json:"revocation_endpoint"`
	EndSessionEndpoint                     string   `json:"end_session_endpoint"`
	PushedAuthorizationRequestEndpoint     string   `json:"pushed_authorization_request_endpoint"`
	DeviceAuthorizationEndpoint            string   `json:"device_authorization_endpoint"`
	RegistrationEndpoint                   string   `json:"registration_endpoint,omitempty"`
	ScopesSupported                        []string `json:"scopes_supported"`
	ResponseTypesSupported                 []string `json:"response_types_supported"`
	ResponseModesSupported                 []string `json:"response_modes_supported"`
	GrantTypesSupported                    []string `json:"grant_types_supported"`
	SubjectTypesSupported                  []string `json:"subject_types_supported,omitempty"`
	IDTokenSigningAlgValuesSupported       []string `json:"id_token_signing_alg_values_supported,omitempty"`
	TokenEndpointAuthMethodsSupported      []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs           []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	IntrospectionEndpointAuthMethods       []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethods          []string `json:"revocation_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported          []string `json:"code_challenge_methods_supported"`
	ClaimsSupported                        []string `json:"claims_supported,omitempty"`
	PromptValuesSupported                  []string `json:"prompt_values_supported,omitempty"`
	AuthorizationResponseIssParameter      bool     `json:"authorization_response_iss_parameter_supported"`
	RequestParameterSupported              bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported           bool     `json:"request_uri_parameter_supported"`
	ClaimsParameterSupported               bool     `json:"claims_parameter_supported"`
	AccessTokenSigningAlgValuesSupported   []string `json:"access_token_signing_alg_values_supported,omitempty"`
	RequirePushedAuthorizationRequests     bool     `json:"require_pushed_authorization_requests"`
	BackchannelLogoutSupported             bool     `json:"backchannel_logout_supported"`
	BackchannelLogoutSessionSupported      bool     `json:"backchannel_logout_session_supported"`
	FrontchannelLogoutSupported            bool     `json:"frontchannel_logout_supported"`
	TLSClientCertificateBoundAccessTokens  bool     `json:"tls_client_certificate_bound_access_tokens"`
	DPoPSigningAlgValuesSupported          []string `json:"dpop_signing_alg_values_supported,omitempty"`
	UserinfoSigningAlgValuesSupported      []string `json:"userinfo_signing_alg_values_supported,omitempty"`
	RequestObjectSigningAlgValuesSupported []string `json:"request_object_signing_alg_values_supported,omitempty"`
}

func (p *Provider) metadata(oidc bool) metadata {
	iss := p.cfg.Issuer
	m := metadata{
		Issuer:                             iss,
		AuthorizationEndpoint:              iss + pathAuthorize,
		TokenEndpoint:                      iss + pathToken,
		JWKSURI:                            iss + pathJWKS,
		IntrospectionEndpoint:              iss + pathIntrospect,
		RevocationEndpoint:                 iss + pathRevoke,
		EndSessionEndpoint:                 iss + pathLogout,
		PushedAuthorizationRequestEndpoint: iss + pathPAR,
		DeviceAuthorizationEndpoint:        iss + pathDeviceAuthorization,
		ScopesSupported:                    advertisedScopes,
		ResponseTypesSupported:             []string{"code"},
		ResponseModesSupported:             []string{"query"},
		GrantTypesSupported:                p.grants,
		TokenEndpointAuthMethodsSupported:  []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		TokenEndpointAuthSigningAlgs:       []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"},
		// fosite authenticates introspection callers with HTTP Basic only.
		IntrospectionEndpointAuthMethods:     []string{"client_secret_basic"},
		RevocationEndpointAuthMethods:        []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		CodeChallengeMethodsSupported:        []string{"S256"},
		AuthorizationResponseIssParameter:    true,
		RequestParameterSupported:            false,
		RequestURIParameterSupported:         false,
		ClaimsParameterSupported:             false,
		AccessTokenSigningAlgValuesSupported: []string{p.cfg.AccessTokenAlg},
		RegistrationEndpoint:                 p.cfg.RegistrationEndpoint,
		// OpenID Connect Back-Channel Logout 1.0 §2.1: logout tokens carry
		// sid, and ID tokens carry the same sid.
		BackchannelLogoutSupported:        p.cfg.BackchannelLogout,
		BackchannelLogoutSessionSupported: p.cfg.BackchannelLogout,
	}
	if p.cfg.DPoP != nil {
		m.DPoPSigningAlgValuesSupported = dpop.Algorithms()
	}
	if oidc {
		m.UserinfoEndpoint = iss + pathUserinfo
		m.SubjectTypesSupported = []string{"public"}
		m.IDTokenSigningAlgValuesSupported = p.idTokenAlgs()
		m.ClaimsSupported = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "c_hash", "email", "preferred_username", "sid"}
		m.PromptValuesSupported = []string{"none", "consent"}
	}
	return m
}

// idTokenAlgs lists every algorithm a client's ID tokens can be signed
// with: the default first, then those a client may register for.
func (p *Provider) idTokenAlgs() []string {
	out := []string{p.cfg.IDTokenAlg}
	var others []string
	for alg := range p.idTokens.byAlg {
		if alg != p.cfg.IDTokenAlg {
			others = append(others, alg)
		}
	}
	slices.Sort(others)
	return append(out, others...)
}

func (p *Provider) renderDiscovery() error {
	var err error
	if p.oidcDiscovery, err = json.Marshal(p.metadata(true)); err != nil {
		return fmt.Errorf("oauth: render discovery: %w", err)
	}
	if p.oauthDiscovery, err = json.Marshal(p.metadata(false)); err != nil {
		return fmt.Errorf("oauth: render discovery: %w", err)
	}
	return nil
}

// handleOIDCDiscovery serves OpenID Connect Discovery 1.0 §4.
func (p *Provider) handleOIDCDiscovery(w http.ResponseWriter, _ *http.Request) {
	writeStaticJSON(w, p.oidcDiscovery)
}

// handleOAuthDiscovery serves RFC 8414 §3.
func (p *Provider) handleOAuthDiscovery(w http.ResponseWriter, _ *http.Request) {
	writeStaticJSON(w, p.oauthDiscovery)
}

func writeStaticJSON(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// handleJWKS serves the public signing keys (RFC 7517 §5) with an ETag so
// resource servers can poll cheaply.
func (p *Provider) handleJWKS(w http.ResponseWriter, r *http.Request) {
	body, etag := p.cfg.JWKS()
	h := w.Header()
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(p.cfg.JWKSMaxAge.Seconds())))
	if etag != "" {
		quoted := etag
		if len(quoted) < 2 || quoted[0] != '"' && quoted[:2] != "W/" {
			quoted = `"` + etag + `"`
		}
		h.Set("ETag", quoted)
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, quoted) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// etagMatches implements the weak comparison of RFC 9110 §13.1.2.
func etagMatches(header, etag string) bool {
	strip := func(s string) string {
		if len(s) > 2 && s[:2] == "W/" {
			return s[2:]
		}
		return s
	}
	for _, part := range splitComma(header) {
		if part == "*" || strip(part) == strip(etag) {
			return true
		}
	}
	return false
}

func splitComma(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
