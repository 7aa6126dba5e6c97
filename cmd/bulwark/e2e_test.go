package main

// End-to-end tests of the assembled server — the same graph `bulwark serve`
// builds — on a real Postgres, over real HTTP, driven by independent client
// libraries: golang.org/x/oauth2 for the flows, coreos/go-oidc for discovery
// and ID tokens, and lestrrat-go/jwx for verifying access tokens against the
// published JWKS (the tokens are signed with go-jose).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

const (
	e2eSvcSecret = "svc-secret-0123456789-abcdefghij"
	e2eWebSecret = "web-secret-0123456789-abcdefghij"
	e2ePassword  = "alice-password-0123456789"
)

const e2eSeed = `
clients:
  - client_id: svc
    client_secret: ` + e2eSvcSecret + `
    client_name: Service
    grant_types: [client_credentials, "urn:ietf:params:oauth:grant-type:token-exchange"]
    scope: "api:read api:write"
  - client_id: web
    client_secret: ` + e2eWebSecret + `
    client_name: Web <b>App</b>
    redirect_uris: ["http://127.0.0.1:9999/callback"]
    grant_types: [authorization_code, refresh_token]
    scope: "openid profile email offline_access"
users:
  - username: alice
    password: ` + e2ePassword + `
    email: alice@example.com
`

type e2eServer struct {
	t      testing.TB
	issuer string
	app    *app
	srv    *httptest.Server
	logs   *syncBuffer
	// adminURL serves the admin listener's handler.
	adminURL string
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startE2E assembles a replica on the given Postgres database with the
// given master secret and serves its public handler on a real listener.
// Options may adjust the configuration before it is built.
func startE2E(t testing.TB, dsn string, opts ...func(*config)) *e2eServer {
	t.Helper()
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	seedPath := filepath.Join(t.TempDir(), "seed.yaml")
	if err := os.WriteFile(seedPath, []byte(e2eSeed), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config{
		Issuer: issuer, DatabaseURL: dsn, SeedFile: seedPath, Migrate: true,
		AccessTokenLifespan: 10 * time.Minute, RefreshTokenLifespan: time.Hour, IDTokenLifespan: time.Hour,
		AuthCodeLifespan: 5 * time.Minute, LoginLifespan: time.Hour, LogFormat: "json", LogLevel: "debug",
		IDTokenAlg: "RS256", AccessTokenAlg: "ES256", KeyRotation: 30 * 24 * time.Hour, KeyLeadTime: 48 * time.Hour,
		KeyRetention: 7 * 24 * time.Hour, JWKSMaxAge: 15 * time.Minute,
	}
	cfg.rateLimitsRaw, cfg.clientRateLimitsRaw, cfg.accountRateLimitsRaw = defaultRateLimits, defaultClientRateLimits, defaultAccountRateLimits
	if err := cfg.finish("e2e-master-secret-0123456789-abcdefghijklmnop", "", "ES256,RS256"); err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(&cfg)
	}
	logs := &syncBuffer{}
	log, err := newLogger("json", "debug", logs)
	if err != nil {
		t.Fatal(err)
	}
	a, err := build(ctx, cfg, log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	ts := httptest.NewUnstartedServer(a.server.PublicHandler())
	_ = ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
	adm := httptest.NewServer(a.server.AdminHandler())
	t.Cleanup(adm.Close)
	return &e2eServer{t: t, issuer: issuer, app: a, srv: ts, logs: logs, adminURL: adm.URL}
}

func (s *e2eServer) post(path string, form url.Values, user, pass string) (int, map[string]any) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func (s *e2eServer) introspect(token string) map[string]any {
	s.t.Helper()
	status, out := s.post("/oauth2/introspect", url.Values{"token": {token}}, "svc", e2eSvcSecret)
	if status != http.StatusOK {
		s.t.Fatalf("introspect: %d %v", status, out)
	}
	return out
}

// verifyAccessToken checks an RFC 9068 access token with jwx against the
// JWKS the server publishes, and returns its claims.
func (s *e2eServer) verifyAccessToken(token string) map[string]any {
	s.t.Helper()
	res, err := http.Get(s.issuer + "/.well-known/jwks.json")
	if err != nil {
		s.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	set, err := jwk.Parse(body)
	if err != nil {
		s.t.Fatalf("parse JWKS: %v", err)
	}
	if _, err := jwt.Parse([]byte(token), jwt.WithKeySet(set), jwt.WithIssuer(s.issuer), jwt.WithValidate(true)); err != nil {
		s.t.Fatalf("jwx rejects the access token: %v", err)
	}
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		s.t.Fatal(err)
	}
	hdr := msg.Signatures()[0].ProtectedHeaders()
	if typ, _ := hdr.Type(); typ != "at+jwt" {
		s.t.Fatalf("typ = %q, want at+jwt", typ)
	}
	if kid, _ := hdr.KeyID(); kid == "" {
		s.t.Fatal("no kid in access token header")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		s.t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		s.t.Fatal(err)
	}
	for _, c := range []string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"} {
		if _, ok := claims[c]; !ok {
			s.t.Fatalf("access token lacks claim %q: %v", c, claims)
		}
	}
	if _, isString := claims["scope"].(string); !isString {
		s.t.Fatalf("scope must be a space-separated string, got %T", claims["scope"])
	}
	return claims
}

var e2eHidden = regexp.MustCompile(`name="(csrf_token|return_to)" value="([^"]*)"`)

// login drives the login and consent pages like a person would and returns
// the redirect back to the client.
func (s *e2eServer) login(authURL string) *url.URL {
	s.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), s.issuer) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	res, err := c.Get(authURL)
	for i := 0; i < 6; i++ {
		if err != nil {
			s.t.Fatal(err)
		}
		if res.StatusCode == http.StatusFound || res.StatusCode == http.StatusSeeOther {
			_ = res.Body.Close()
			loc, _ := url.Parse(res.Header.Get("Location"))
			return loc
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		body := string(b)
		form := url.Values{}
		for _, m := range e2eHidden.FindAllStringSubmatch(body, -1) {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
		switch {
		case strings.Contains(body, `action="/login"`):
			form.Set("username", "alice")
			form.Set("password", e2ePassword)
			res, err = c.PostForm(s.issuer+"/login", form)
		case strings.Contains(body, `action="/consent"`):
			if strings.Contains(body, "<b>App</b>") {
				s.t.Fatal("client name rendered unescaped on the consent page")
			}
			form.Set("decision", "approve")
			res, err = c.PostForm(s.issuer+"/consent", form)
		default:
			s.t.Fatalf("unexpected page (%d): %.300s", res.StatusCode, body)
		}
	}
	s.t.Fatal("login did not finish")
	return nil
}

func TestE2EPostgresFlows(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn)
	ctx := context.Background()

	provider, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}

	t.Run("case=client credentials with x/oauth2, JWT verified by jwx", func(t *testing.T) {
		cc := clientcredentials.Config{ClientID: "svc", ClientSecret: e2eSvcSecret, TokenURL: provider.Endpoint().TokenURL, Scopes: []string{"api:read"}}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		claims := s.verifyAccessToken(tok.AccessToken)
		if claims["client_id"] != "svc" || claims["sub"] != "svc" || claims["scope"] != "api:read" {
			t.Fatalf("claims: %v", claims)
		}
		in := s.introspect(tok.AccessToken)
		if in["active"] != true || in["client_id"] != "svc" || in["scope"] != "api:read" || in["token_type"] == nil {
			t.Fatalf("introspection: %v", in)
		}
		// Revocation shows at introspection immediately, JWT or not.
		if status, out := s.post("/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, "svc", e2eSvcSecret); status != 200 {
			t.Fatalf("revoke: %d %v", status, out)
		}
		if in := s.introspect(tok.AccessToken); len(in) != 1 || in["active"] != false {
			t.Fatalf("revoked token must introspect exactly {active:false}, got %v", in)
		}
	})

	t.Run("case=code flow with PKCE, ID token by go-oidc, refresh rotation and reuse", func(t *testing.T) {
		conf := oauth2.Config{ClientID: "web", ClientSecret: e2eWebSecret, Endpoint: provider.Endpoint(),
			RedirectURL: "http://127.0.0.1:9999/callback", Scopes: []string{oidc.ScopeOpenID, "profile", "email", "offline_access"}}
		verifier := oauth2.GenerateVerifier()
		nonce := "n-0123456789abcdef"
		redirect := s.login(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)))
		if redirect.Query().Get("iss") != s.issuer || redirect.Query().Get("state") != "state-0123456789" {
			t.Fatalf("authorization response lacks iss/state: %s", redirect)
		}
		code := redirect.Query().Get("code")
		if code == "" {
			t.Fatalf("no code: %s", redirect)
		}
		tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		rawID, _ := tok.Extra("id_token").(string)
		idt, err := provider.Verifier(&oidc.Config{ClientID: "web"}).Verify(ctx, rawID)
		if err != nil {
			t.Fatalf("go-oidc rejects the ID token: %v", err)
		}
		if idt.Nonce != nonce {
			t.Fatalf("nonce %q", idt.Nonce)
		}
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Fatalf("at_hash: %v", err)
		}
		var idClaims map[string]any
		_ = idt.Claims(&idClaims)
		if idClaims["azp"] != "web" || idClaims["auth_time"] == nil {
			t.Fatalf("ID token claims: %v", idClaims)
		}
		claims := s.verifyAccessToken(tok.AccessToken)
		if claims["client_id"] != "web" {
			t.Fatalf("claims: %v", claims)
		}
		ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil || ui.Subject != idt.Subject || ui.Email != "alice@example.com" {
			t.Fatalf("userinfo: %+v %v", ui, err)
		}

		// Code replay: refused, and the tokens of the first exchange die.
		if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
			t.Fatal("second use of a code must fail")
		}
		if in := s.introspect(tok.AccessToken); in["active"] != false {
			t.Fatalf("code replay must revoke the first tokens: %v", in)
		}

		// Fresh login for the refresh checks.
		verifier = oauth2.GenerateVerifier()
		redirect = s.login(conf.AuthCodeURL("state-abcdefghij", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)))
		tok, err = conf.Exchange(ctx, redirect.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		old := tok.RefreshToken
		tok.Expiry = time.Now().Add(-time.Minute) // force a refresh
		refreshed, err := conf.TokenSource(ctx, tok).Token()
		if err != nil {
			t.Fatal(err)
		}
		if refreshed.RefreshToken == "" || refreshed.RefreshToken == old {
			t.Fatal("refresh token must rotate")
		}
		if in := s.introspect(refreshed.AccessToken); in["active"] != true {
			t.Fatalf("refreshed access token inactive: %v", in)
		}
		// Reuse of the rotated refresh token revokes the whole family.
		stale := &oauth2.Token{RefreshToken: old, Expiry: time.Now().Add(-time.Minute)}
		if _, err := conf.TokenSource(ctx, stale).Token(); err == nil {
			t.Fatal("reusing a rotated refresh token must fail")
		}
		if in := s.introspect(refreshed.AccessToken); in["active"] != false {
			t.Fatalf("reuse must revoke the family's access token: %v", in)
		}
		if in := s.introspect(refreshed.RefreshToken); in["active"] != false {
			t.Fatalf("reuse must revoke the family's refresh token: %v", in)
		}
	})

	t.Run("case=a second replica on the same database serves the same keys and tokens", func(t *testing.T) {
		other := startE2E(t, dsn)
		cc := clientcredentials.Config{ClientID: "svc", ClientSecret: e2eSvcSecret, TokenURL: s.issuer + "/oauth2/token"}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if in := other.introspect(tok.AccessToken); in["active"] != true {
			t.Fatalf("token from replica 1 not active on replica 2: %v", in)
		}
		a, _ := s.app.ring.JWKS()
		b, _ := other.app.ring.JWKS()
		if string(a) != string(b) {
			t.Fatal("replicas publish different JWKS")
		}
	})

	t.Run("case=negative token endpoint answers", func(t *testing.T) {
		cases := []struct {
			name       string
			form       url.Values
			user, pass string
			status     int
			errCode    string
		}{
			{"bad secret", url.Values{"grant_type": {"client_credentials"}}, "svc", "wrong", 401, "invalid_client"},
			{"unknown grant", url.Values{"grant_type": {"urn:example:nope"}}, "svc", e2eSvcSecret, 400, "unsupported_grant_type"},
			{"password grant", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {e2ePassword}}, "web", e2eWebSecret, 400, "unsupported_grant_type"},
			{"scope not allowed", url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, "svc", e2eSvcSecret, 400, "invalid_scope"},
			{"missing grant", url.Values{}, "svc", e2eSvcSecret, 400, "invalid_request"},
		}
		for _, tc := range cases {
			status, out := s.post("/oauth2/token", tc.form, tc.user, tc.pass)
			if status != tc.status || out["error"] != tc.errCode {
				t.Errorf("%s: got %d %v, want %d %s", tc.name, status, out, tc.status, tc.errCode)
			}
		}
	})
}

func TestServeRefusesUnmigratedDatabase(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	cfg := config{Issuer: "http://127.0.0.1:1", DatabaseURL: dsn, AccessTokenLifespan: time.Minute, RefreshTokenLifespan: time.Hour,
		IDTokenLifespan: time.Minute, AuthCodeLifespan: time.Minute, LoginLifespan: time.Hour, LogFormat: "json", LogLevel: "info",
		IDTokenAlg: "RS256", AccessTokenAlg: "ES256", KeyRotation: 30 * 24 * time.Hour, KeyLeadTime: time.Hour, KeyRetention: time.Hour}
	if err := cfg.finish(e2eMasterSecret, "", "ES256,RS256"); err != nil {
		t.Fatal(err)
	}
	log, _ := newLogger("json", "info", io.Discard)
	if _, err := build(context.Background(), cfg, log, io.Discard); err == nil || !strings.Contains(err.Error(), "pending migration") {
		t.Fatalf("want a refusal naming pending migrations, got %v", err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "--database-url", dsn, "up"}, &out, &out); err != nil {
		t.Fatalf("migrate up: %v", err)
	}
	if err := run(context.Background(), []string{"migrate", "--database-url", dsn, "status"}, &out, &out); err != nil || !strings.Contains(out.String(), "applied") {
		t.Fatalf("migrate status: %v %s", err, out.String())
	}
	a, err := build(context.Background(), cfg, log, io.Discard)
	if err != nil {
		t.Fatalf("after migrate up the server builds: %v", err)
	}
	a.Close()
}
