package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/gorilla/mux"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/par"
	"github.com/ory/fosite/handler/pkce"
	"github.com/ory/fosite/token/jwt"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/server/dpop"
	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/web"
)

// Store is what the provider needs from storage: everything fosite needs,
// plus users (login, userinfo), remembered consents, login sessions and
// the flows' combined reads and writes.
type Store interface {
	storage.OAuth2Store
	UserByID(ctx context.Context, id string) (*storage.User, error)
	UserByUsername(ctx context.Context, username string) (*storage.User, error)
	SaveConsent(ctx context.Context, c *storage.Consent) error
	GrantConsent(ctx context.Context, c *storage.Consent) error
	CreateLoginSession(ctx context.Context, s *storage.LoginSession) error
	GetLoginSession(ctx context.Context, key string) (*storage.LoginSession, error)
	DeleteLoginSession(ctx context.Context, key string) error
	// ResumeLogin, CreateAuthorizeSessions and ReadGrant save the flows'
	// round trips (flowstore.go).
	storage.FlowStore
	// Device authorization grant (RFC 8628, device.go).
	storage.DeviceStore
	// LockMint orders the device grant's mint against containment.
	storage.MintLocker
	// QueueLogouts ends the relying parties' sessions of a login session
	// for back-channel logout (storage.BackchannelStore); they join with
	// the authorization code (CreateAuthorizeSessions).
	QueueLogouts(ctx context.Context, m storage.LogoutMatch) (int64, error)
}

// Config is everything the provider depends on.
type Config struct {
	// Issuer is the https URL identifying this server, without a trailing
	// slash; every endpoint URL is derived from it.
	Issuer string
	Store  Store
	// AccessTokenSigner signs RFC 9068 access tokens; IDTokenSigner signs
	// ID tokens. Both are normally the key ring's signer for the algorithm.
	AccessTokenSigner jwt.Signer
	IDTokenSigner     jwt.Signer
	// IDTokenSigners, by algorithm, sign the ID tokens of clients
	// registered with an id_token_signed_response_alg (OpenID Connect
	// Dynamic Client Registration 1.0 §2); IDTokenSigner signs those of
	// every other client. Discovery advertises IDTokenAlg and these. A
	// client registered for an algorithm missing here is refused
	// (unauthorized_client) where it would get an ID token.
	IDTokenSigners map[string]jwt.Signer
	// AccessTokenAlg and IDTokenAlg are advertised in discovery.
	AccessTokenAlg, IDTokenAlg string
	// JWKS returns the current public key set and its ETag.
	JWKS       func() (body []byte, etag string)
	JWKSMaxAge time.Duration
	// Hasher verifies client secrets (fosite's ClientSecretsHasher). It may
	// cache successful verifications (keys/hash.Cached).
	Hasher fosite.Hasher
	// PasswordHasher verifies user passwords; it must not cache (a cached
	// password check would let anyone who can read process memory test
	// guesses at HMAC speed). Nil means Hasher.
	PasswordHasher fosite.Hasher
	// Defense is the optional brute-force and anomaly protection.
	Defense Defense
	// APIKeys, when set, lets introspection accept API keys (as the token,
	// and as caller authentication with the "introspect" scope) and enables
	// the token exchange grant for API keys. Nil disables both.
	APIKeys APIKeys
	// GlobalSecret (at least 32 bytes) keys the HMAC of opaque codes and
	// refresh tokens and the CSRF tokens of the pages.
	GlobalSecret []byte
	// Lifespans; zero means the default (access 10m, refresh 30 days, ID
	// token 1h, authorization code 10m, login session 12h).
	AccessTokenLifespan  time.Duration
	RefreshTokenLifespan time.Duration
	IDTokenLifespan      time.Duration
	AuthCodeLifespan     time.Duration
	LoginSessionLifespan time.Duration
	// SecureCookies is true unless running in development over plain http.
	SecureCookies bool
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger logrus.FieldLogger
	// Audit receives security events; nil discards them.
	Audit func(ctx context.Context, e storage.AuditEvent)
	// JWKSFetcher fetches the key sets of clients registered with a
	// jwks_uri (registration.JWKSFetcher, on server/egress). Nil refuses
	// to fetch any.
	JWKSFetcher fosite.JWKSFetcherStrategy
	// RegistrationEndpoint, when set, is advertised in discovery (RFC 8414
	// registration_endpoint): dynamic client registration is on.
	RegistrationEndpoint string
	// BackchannelLogout advertises OpenID Connect Back-Channel Logout 1.0
	// in discovery: set it when a server/backchannel worker delivers the
	// logouts this provider queues.
	BackchannelLogout bool
	// DPoP, when set, accepts DPoP proofs (RFC 9449) at the token
	// endpoint and binds the tokens it issues to the proof's key, and
	// makes userinfo require a proof for such tokens. Nil disables DPoP:
	// proofs are ignored and tokens are bearer tokens.
	DPoP *dpop.Verifier
	// AuditToken, when set, records the event of an issued token in the
	// same round trip as the token (audit.Sink.WithToken): the token
	// endpoint mints with the context it returns and calls issued after a
	// successful mint. Nil means Audit after the mint.
	AuditToken func(ctx context.Context, e storage.AuditEvent) (context.Context, func(context.Context))
	// MaxAssertionLifetime caps how long a private_key_jwt client
	// assertion may be valid (exp - iat, or exp - now); zero means
	// DefaultMaxAssertionLifetime.
	MaxAssertionLifetime time.Duration
}

// Defaults applied by New.
const (
	DefaultAccessTokenLifespan  = 10 * time.Minute
	DefaultRefreshTokenLifespan = 30 * 24 * time.Hour
	DefaultIDTokenLifespan      = time.Hour
	DefaultAuthCodeLifespan     = 10 * time.Minute
	DefaultLoginSessionLifespan = 12 * time.Hour
	maxAuthCodeLifespan         = 10 * time.Minute
)

// Provider serves the public OAuth 2.0 / OpenID Connect endpoints.
type Provider struct {
	cfg    Config
	oauth  fosite.OAuth2Provider
	fc     *fosite.Config
	log    logrus.FieldLogger
	pages  *template.Template
	csrf   []byte
	dummy  string
	static http.Handler

	// grants are the grant types the token endpoint serves.
	grants fosite.Arguments
	// idTokens signs ID tokens with each client's algorithm.
	idTokens *idTokenStrategy
	// access issues access tokens, codes and refresh tokens (their
	// signatures key the stored grants).
	access *accessTokenStrategy

	oidcDiscovery  []byte
	oauthDiscovery []byte
}

// validate reports every configuration problem at once.
func (c *Config) validate() error {
	var errs []error
	if c.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	} else if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		strings.HasSuffix(c.Issuer, "/") || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, errors.New("issuer must be an absolute http(s) URL without trailing slash, query or fragment"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("store is required"))
	}
	if c.AccessTokenSigner == nil {
		errs = append(errs, errors.New("access token signer is required"))
	}
	if c.IDTokenSigner == nil {
		errs = append(errs, errors.New("ID token signer is required"))
	}
	if c.AccessTokenAlg == "" || c.IDTokenAlg == "" {
		errs = append(errs, errors.New("access token and ID token algorithms are required"))
	}
	if c.JWKS == nil {
		errs = append(errs, errors.New("JWKS source is required"))
	}
	if c.Hasher == nil {
		errs = append(errs, errors.New("hasher is required"))
	}
	if len(c.GlobalSecret) < 32 {
		errs = append(errs, errors.New("global secret must be at least 32 bytes"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"access token lifespan", c.AccessTokenLifespan},
		{"refresh token lifespan", c.RefreshTokenLifespan},
		{"ID token lifespan", c.IDTokenLifespan},
		{"authorization code lifespan", c.AuthCodeLifespan},
		{"login session lifespan", c.LoginSessionLifespan},
		{"JWKS max age", c.JWKSMaxAge},
		{"client assertion lifetime", c.MaxAssertionLifetime},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative", d.name))
		}
	}
	if c.AuthCodeLifespan > maxAuthCodeLifespan {
		errs = append(errs, fmt.Errorf("authorization code lifespan must be at most %s", maxAuthCodeLifespan))
	}
	if len(errs) > 0 {
		return fmt.Errorf("oauth: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

func (c *Config) applyDefaults() {
	if c.AccessTokenLifespan == 0 {
		c.AccessTokenLifespan = DefaultAccessTokenLifespan
	}
	if c.RefreshTokenLifespan == 0 {
		c.RefreshTokenLifespan = DefaultRefreshTokenLifespan
	}
	if c.IDTokenLifespan == 0 {
		c.IDTokenLifespan = DefaultIDTokenLifespan
	}
	if c.AuthCodeLifespan == 0 {
		c.AuthCodeLifespan = DefaultAuthCodeLifespan
	}
	if c.LoginSessionLifespan == 0 {
		c.LoginSessionLifespan = DefaultLoginSessionLifespan
	}
	if c.MaxAssertionLifetime == 0 {
		c.MaxAssertionLifetime = DefaultMaxAssertionLifetime
	}
	if c.JWKSMaxAge == 0 {
		c.JWKSMaxAge = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		c.Logger = l
	}
}

// New validates cfg, composes fosite and parses the page templates.
func New(cfg Config) (*Provider, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.applyDefaults()

	fc := &fosite.Config{
		AccessTokenLifespan:   cfg.AccessTokenLifespan,
		RefreshTokenLifespan:  cfg.RefreshTokenLifespan,
		AuthorizeCodeLifespan: cfg.AuthCodeLifespan,
		IDTokenLifespan:       cfg.IDTokenLifespan,
		IDTokenIssuer:         cfg.Issuer,
		AccessTokenIssuer:     cfg.Issuer,
		// Secrets and internal details never reach clients; they go to the log.
		SendDebugMessagesToClients: false,
		ScopeStrategy:              fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:   fosite.DefaultAudienceMatchingStrategy,
		// PKCE is mandatory; pkceConfig relaxes it per request for
		// confidential clients registered with PKCEOptional.
		EnforcePKCE:                    true,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		// prompt=login and select_account need re-authentication tracking
		// that Bulwark does not implement; refusing them beats ignoring them.
		AllowedPromptValues: []string{"none", "consent"},
		// private_key_jwt assertions must name the token endpoint (RFC 7523 §3).
		TokenURL:            cfg.Issuer + pathToken,
		JWKSFetcherStrategy: noFetchJWKS{},
		TokenEntropy:        32,
		// https, http on loopback (RFC 8252 §7.3), or a private-use scheme
		// of a native app (RFC 8252 §7.1).
		RedirectSecureChecker: func(ctx context.Context, u *url.URL) bool {
			return fosite.IsRedirectURISecureStrict(ctx, u) || (u.Scheme != "http" && u.Scheme != "https")
		},
		MinParameterEntropy:             fosite.MinParameterEntropy,
		JWTScopeClaimKey:                jwt.JWTScopeFieldString,
		ClientSecretsHasher:             cfg.Hasher,
		GlobalSecret:                    cfg.GlobalSecret,
		HMACHasher:                      sha256.New,
		PushedAuthorizeRequestURIPrefix: parURIPrefix,
		PushedAuthorizeContextLifespan:  parLifespan,
	}
	if cfg.JWKSFetcher != nil {
		fc.JWKSFetcherStrategy = cfg.JWKSFetcher
	}
	p := &Provider{cfg: cfg, fc: fc, log: cfg.Logger}
	// fosite reads its handler lists from fc per request; they are appended
	// one by one in composeHandlers.
	p.oauth = fosite.NewOAuth2Provider(cfg.Store, fc)
	fc.ClientAuthenticationStrategy = p.authenticateClient
	p.composeHandlers()

	pages, err := web.ParsePublic()
	if err != nil {
		return nil, fmt.Errorf("oauth: parse templates: %w", err)
	}
	p.pages = pages
	p.static = staticHandler()

	mac := hmac.New(sha256.New, cfg.GlobalSecret)
	mac.Write([]byte("bulwark/oauth/csrf/v1"))
	p.csrf = mac.Sum(nil)

	// Unknown users are checked against a real hash so that a failed login
	// costs the same whether or not the username exists.
	dummy := make([]byte, 32)
	if _, err := rand.Read(dummy); err != nil {
		return nil, fmt.Errorf("oauth: random: %w", err)
	}
	pw := cfg.PasswordHasher
	if pw == nil {
		pw = cfg.Hasher
	}
	h, err := pw.Hash(context.Background(), dummy)
	if err != nil {
		return nil, fmt.Errorf("oauth: dummy hash: %w", err)
	}
	p.dummy = string(h)

	if err := p.renderDiscovery(); err != nil {
		return nil, err
	}
	return p, nil
}

// composeHandlers wires fosite's handlers one by one. Order matters: the
// authorization code handler comes first, OpenID Connect and PKCE after it.
func (p *Provider) composeHandlers() {
	fc, st := p.fc, p.cfg.Store
	hmacStrategy := compose.NewOAuth2HMACStrategy(fc)
	access := &accessTokenStrategy{
		DefaultJWTStrategy: &oauth2.DefaultJWTStrategy{Signer: p.cfg.AccessTokenSigner, HMACSHAStrategy: hmacStrategy, Config: fc},
		issuer:             p.cfg.Issuer,
	}
	p.access = access
	idTokens := &idTokenStrategy{defaultAlg: p.cfg.IDTokenAlg, byAlg: map[string]openid.OpenIDConnectTokenStrategy{
		p.cfg.IDTokenAlg: &openid.DefaultStrategy{Signer: p.cfg.IDTokenSigner, Config: fc},
	}}
	for alg, signer := range p.cfg.IDTokenSigners {
		if alg != p.cfg.IDTokenAlg {
			idTokens.byAlg[alg] = &openid.DefaultStrategy{Signer: signer, Config: fc}
		}
	}
	p.idTokens = idTokens
	validator := openid.NewOpenIDConnectRequestValidator(p.cfg.IDTokenSigner, fc)
	// The code, PKCE and OpenID Connect handlers write at the
	// authorization endpoint through flowStore (collected, one round
	// trip).
	fst := flowStore{st}

	authCode := &oauth2.AuthorizeExplicitGrantHandler{
		AccessTokenStrategy:    access,
		RefreshTokenStrategy:   access,
		AuthorizeCodeStrategy:  access,
		CoreStorage:            fst,
		TokenRevocationStorage: st,
		Config:                 fc,
	}
	oidcExplicit := &openid.OpenIDConnectExplicitHandler{
		OpenIDConnectRequestStorage:   fst,
		IDTokenHandleHelper:           &openid.IDTokenHandleHelper{IDTokenStrategy: idTokens},
		OpenIDConnectRequestValidator: validator,
		Config:                        fc,
	}
	pkceHandler := &pkcePolicy{inner: &pkce.Handler{
		AuthorizeCodeStrategy: access,
		Storage:               fst,
		Config:                pkceConfig{fc},
	}}
	clientCredentials := &oauth2.ClientCredentialsGrantHandler{
		HandleHelper: &oauth2.HandleHelper{AccessTokenStrategy: access, AccessTokenStorage: st, Config: fc},
		Config:       fc,
	}
	refresh := &refreshAudit{
		RefreshTokenGrantHandler: &oauth2.RefreshTokenGrantHandler{
			AccessTokenStrategy:    access,
			RefreshTokenStrategy:   access,
			TokenRevocationStorage: st,
			Config:                 fc,
		},
		p: p,
	}
	oidcRefresh := &openid.OpenIDConnectRefreshHandler{
		IDTokenHandleHelper: &openid.IDTokenHandleHelper{IDTokenStrategy: idTokens},
		Config:              fc,
	}
	// Stateful introspection: every token is looked up in the store, so a
	// revoked JWT is reported inactive.
	introspect := &oauth2.CoreValidator{CoreStrategy: access, CoreStorage: st, Config: fc}
	revoke := &oauth2.TokenRevocationHandler{
		TokenRevocationStorage: st,
		AccessTokenStrategy:    access,
		RefreshTokenStrategy:   access,
	}
	pushed := &par.PushedAuthorizeHandler{Storage: st, Config: fc}

	fc.AuthorizeEndpointHandlers.Append(authCode)
	fc.AuthorizeEndpointHandlers.Append(oidcExplicit)
	fc.AuthorizeEndpointHandlers.Append(pkceHandler)

	// skipUnknown: fosite offers each request to every handler; see
	// skip.go. Not Append, which keeps one handler per Go type: every
	// wrapper has the same type.
	fc.TokenEndpointHandlers = append(fc.TokenEndpointHandlers,
		skipUnknown{authCode}, skipUnknown{oidcExplicit}, pkceHandler,
		skipUnknown{clientCredentials}, skipUnknown{refresh}, skipUnknown{oidcRefresh})
	p.grants = fosite.Arguments{"authorization_code", "refresh_token", "client_credentials"}
	if p.cfg.APIKeys != nil {
		fc.TokenEndpointHandlers.Append(&tokenExchange{p: p, keys: p.cfg.APIKeys, strategy: access, storage: st})
		p.grants = append(p.grants, GrantTypeTokenExchange)
	}

	fc.TokenEndpointHandlers.Append(&deviceGrant{
		p:        p,
		access:   &oauth2.HandleHelper{AccessTokenStrategy: access, AccessTokenStorage: st, Config: fc},
		refresh:  access,
		store:    st,
		idTokens: &openid.IDTokenHandleHelper{IDTokenStrategy: idTokens},
	})
	p.grants = append(p.grants, GrantTypeDeviceCode)

	fc.TokenIntrospectionHandlers.Append(introspect)
	fc.RevocationHandlers.Append(revoke)
	fc.PushedAuthorizeEndpointHandlers.Append(pushed)
}

// Register mounts the public routes on r, each with its protection policy
// (the server builds the chain from it: headers, strict input, blocks,
// rate-limit class).
func (p *Provider) Register(r *mux.Router) {
	get, head, post, options := http.MethodGet, http.MethodHead, http.MethodPost, http.MethodOptions
	route := func(path string, pol protect.Policy, h http.HandlerFunc, methods ...string) {
		r.Handle(path, protect.Route(pol, h)).Methods(methods...)
	}
	route(pathOIDCDiscovery, protect.Discovery(), p.handleOIDCDiscovery, get, head)
	route(pathOAuthDiscovery, protect.Discovery(), p.handleOAuthDiscovery, get, head)
	route(pathJWKS, protect.Discovery(), p.handleJWKS, get, head)
	route(pathAuthorize, protect.Authorize(), p.handleAuthorize, get, post)
	route(pathToken, protect.BrowserOAuthEndpoint(protect.ClassToken, protect.HeaderAuthorization, protect.HeaderContentType, protect.HeaderDPoP), p.handleToken, post, options)
	route(pathIntrospect, protect.OAuthEndpoint(protect.ClassIntrospect), p.handleIntrospect, post)
	route(pathRevoke, protect.BrowserOAuthEndpoint(protect.ClassRevoke, protect.HeaderAuthorization, protect.HeaderContentType), p.handleRevoke, post, options)
	route(pathPAR, protect.OAuthEndpoint(protect.ClassPAR), p.handlePAR, post)
	route(pathUserinfo, protect.Userinfo(), p.handleUserinfo, get, post, options)
	route(pathLogin, protect.PageForm(), p.handleLoginPage, get)
	route(pathLogin, protect.PageForm(), p.handleLoginSubmit, post)
	route(pathConsent, protect.PageForm(), p.handleConsentPage, get)
	route(pathConsent, protect.PageForm(), p.handleConsentSubmit, post)
	route(pathLogout, protect.PageForm(), p.handleLogoutPage, get)
	route(pathLogout, protect.PageForm(), p.handleLogoutSubmit, post)
	// Device authorization grant (RFC 8628, device*.go).
	route(pathDeviceAuthorization, protect.OAuthEndpoint(protect.ClassToken), p.handleDeviceAuthorization, post)
	route(pathDevice, protect.PageForm(), p.handleDevicePage, get)
	route(pathDevice, protect.PageForm(), p.handleDeviceSubmit, post)
	route(pathDeviceDecision, protect.PageForm(), p.handleDeviceDecision, post)
	r.PathPrefix(pathStatic).Handler(protect.Route(protect.StaticAsset(), p.static))
}

// Public paths.
const (
	pathOIDCDiscovery  = "/.well-known/openid-configuration"
	pathOAuthDiscovery = "/.well-known/oauth-authorization-server"
	pathJWKS           = "/.well-known/jwks.json"
	pathAuthorize      = "/oauth2/auth"
	pathToken          = "/oauth2/token" // #nosec G101 -- a path, not a credential
	pathIntrospect     = "/oauth2/introspect"
	pathRevoke         = "/oauth2/revoke"
	pathPAR            = "/oauth2/par"
	pathUserinfo       = "/userinfo"
	pathLogin          = "/login"
	pathConsent        = "/consent"
	pathLogout         = "/logout"
	pathStatic         = "/static/"
)

const (
	parURIPrefix = "urn:ietf:params:oauth:request_uri:"
	parLifespan  = 90 * time.Second
	// parResumeLifespan bounds a pushed request re-stored while the user
	// signs in or answers the consent page.
	parResumeLifespan = 30 * time.Minute
)

// noFetchJWKS refuses to fetch client key sets: the default when no
// egress-bound fetcher is configured (Config.JWKSFetcher).
type noFetchJWKS struct{}

func (noFetchJWKS) Resolve(context.Context, string, bool) (*jose.JSONWebKeySet, error) {
	return nil, fosite.ErrInvalidClient.WithHint("Client key sets are not fetched from URLs.")
}
