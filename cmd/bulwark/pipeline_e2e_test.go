package main

// The request pipeline and its defaults, on the assembled server (Postgres,
// real HTTP, default settings unless a test says otherwise), everything from
// 127.0.0.1 like the users behind one NAT or an undeclared load balancer:
// ordinary traffic is never throttled or blocked, anomaly responses target
// the offender, bad bytes are refused at the door on every route.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	josejwt "github.com/go-jose/go-jose/v3/jwt"
	"golang.org/x/oauth2"

	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/server/oauth"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

// cheapHash returns an Argon2id PHC string made with test parameters. The
// parameters travel inside the string, so verifying it is cheap too, which
// keeps hundreds of sign-ins fast on a loaded two-core machine.
func cheapHash(t testing.TB, secret string) string {
	t.Helper()
	h, err := hash.New(hash.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Hash(context.Background(), []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const pipelineRedirect = "http://127.0.0.1:9999/callback"

// addUsers creates n users user-000 … with password "pw-<name>-0123456789".
func addUsers(t testing.TB, s *e2eServer, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		name := fmt.Sprintf("%s-%03d", prefix, i)
		if err := s.app.store.CreateUser(ctx, &storage.User{ID: "id-" + name, Username: name, Email: name + "@example.com", PasswordHash: cheapHash(t, userPassword(name))}); err != nil {
			t.Fatal(err)
		}
	}
}

func userPassword(name string) string { return "pw-" + name + "-0123456789" }

// addCodeClient registers a confidential authorization-code client with
// refresh tokens and returns its oauth2 configuration.
func addCodeClient(t testing.TB, s *e2eServer, id string) *oauth2.Config {
	t.Helper()
	secret := "secret-" + id + "-0123456789abcdef"
	err := s.app.store.CreateClient(context.Background(), &storage.Client{
		ID: id, Name: id, SecretHash: cheapHash(t, secret),
		RedirectURIs: []string{pipelineRedirect}, GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		Scopes: []string{"openid", "offline_access"}, TokenEndpointAuthMethod: storage.AuthMethodSecretBasic, ApplicationType: storage.AppTypeWeb,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &oauth2.Config{
		ClientID: id, ClientSecret: secret, RedirectURL: pipelineRedirect, Scopes: []string{"openid", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: s.issuer + "/oauth2/auth", TokenURL: s.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader},
	}
}

// browserSignIn drives /oauth2/auth → login → consent → code → token like
// a person with a browser. It returns errors (never t.Fatal) so it can run
// on many goroutines.
func browserSignIn(ctx context.Context, issuer string, cfg *oauth2.Config, user, pass string) (*oauth2.Token, error) {
	return signInWith(ctx, jarClient(issuer), issuer, cfg, user, pass)
}

// jarClient is a browser: it keeps cookies and follows redirects within
// the issuer only.
func jarClient(issuer string) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: time.Minute, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), issuer) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

// signInWith is browserSignIn in browser c, whose cookies (the login
// session) stay for later requests.
func signInWith(ctx context.Context, c *http.Client, issuer string, cfg *oauth2.Config, user, pass string) (*oauth2.Token, error) {
	verifier := oauth2.GenerateVerifier()
	res, err := c.Get(cfg.AuthCodeURL("state-0123456789abcdef", oauth2.S256ChallengeOption(verifier)))
	for range 6 {
		if err != nil {
			return nil, err
		}
		if res.StatusCode == http.StatusFound || res.StatusCode == http.StatusSeeOther {
			_ = res.Body.Close()
			loc, err := url.Parse(res.Header.Get("Location"))
			if err != nil {
				return nil, err
			}
			code := loc.Query().Get("code")
			if code == "" {
				return nil, fmt.Errorf("redirect without a code: %s", loc.Query().Encode())
			}
			return cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, c), code, oauth2.VerifierOption(verifier))
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("page answered %d: %.200s", res.StatusCode, b)
		}
		body := string(b)
		form := url.Values{}
		for _, m := range e2eHidden.FindAllStringSubmatch(body, -1) {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
		switch {
		case strings.Contains(body, `action="/login"`):
			form.Set("username", user)
			form.Set("password", pass)
			res, err = c.PostForm(issuer+"/login", form)
		case strings.Contains(body, `action="/consent"`):
			form.Set("decision", "approve")
			res, err = c.PostForm(issuer+"/consent", form)
		default:
			return nil, fmt.Errorf("unexpected page: %.200s", body)
		}
	}
	return nil, errors.New("sign-in did not finish")
}

// runPool runs fn(0..n-1) on workers goroutines and returns the errors.
func runPool(n, workers int, fn func(i int) error) []error {
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				errs[i] = fn(i)
			}
		}()
	}
	wg.Wait()
	return errs
}

func firstErrors(errs []error) (int, []error) {
	var out []error
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
			if len(out) < 5 {
				out = append(out, err)
			}
		}
	}
	return n, out
}

// TestE2EFiveHundredUsersSignInFromOneAddress: at default settings, 500
// distinct users behind one address each sign in through the browser flow
// and obtain tokens, all successfully, within two minutes.
func TestE2EFiveHundredUsersSignInFromOneAddress(t *testing.T) {
	s := startE2E(t, pgtest.NewDatabase(t))
	addUsers(t, s, "user", 500)
	cfg := addCodeClient(t, s, "portal")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	errs := runPool(500, 8, func(i int) error {
		name := fmt.Sprintf("user-%03d", i)
		tok, err := browserSignIn(ctx, s.issuer, cfg, name, userPassword(name))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Extra("id_token") == nil {
			return fmt.Errorf("%s: incomplete token set", name)
		}
		return nil
	})
	if n, some := firstErrors(errs); n > 0 {
		t.Fatalf("%d of 500 sign-ins failed, e.g. %v", n, some)
	}
	if took := time.Since(start); took > 2*time.Minute {
		t.Fatalf("500 sign-ins took %s, the issue asks for 2 minutes", took)
	}
	if bs, err := s.app.detector.List(context.Background()); err != nil || len(bs) != 0 {
		t.Fatalf("ordinary sign-ins placed blocks: %v %v", bs, err)
	}
}

// TestE2ERefreshReuseTargetsTheClientNotTheAddress: 50 clients each replay
// a rotated refresh token (released together); each replay is refused and
// its family revoked, but every other client and user behind the same
// address keeps working: no address block, no client block by default.
func TestE2ERefreshReuseTargetsTheClientNotTheAddress(t *testing.T) {
	s := startE2E(t, pgtest.NewDatabase(t))
	addUsers(t, s, "reuser", 50)
	ctx := context.Background()
	type pair struct {
		cfg      *oauth2.Config
		old, cur *oauth2.Token
	}
	pairs := make([]pair, 50)
	errs := runPool(50, 8, func(i int) error {
		cfg := addCodeClient(t, s, fmt.Sprintf("buggy-%02d", i))
		name := fmt.Sprintf("reuser-%03d", i)
		tok, err := browserSignIn(ctx, s.issuer, cfg, name, userPassword(name))
		if err != nil {
			return err
		}
		cur, err := refresh(ctx, cfg, tok.RefreshToken)
		if err != nil {
			return fmt.Errorf("first refresh: %w", err)
		}
		pairs[i] = pair{cfg: cfg, old: tok, cur: cur}
		return nil
	})
	if n, some := firstErrors(errs); n > 0 {
		t.Fatalf("setup: %d failed: %v", n, some)
	}
	// Every client replays its rotated (old) refresh token at once.
	statuses := storagetest.Together(50, func(i int) int {
		status, _ := s.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {pairs[i].old.RefreshToken}},
			pairs[i].cfg.ClientID, pairs[i].cfg.ClientSecret)
		return status
	})
	if n := storagetest.Count(statuses, func(st int) bool { return st == http.StatusBadRequest }); n != 50 {
		t.Fatalf("replays: %v, want 50 × 400 invalid_grant", statuses)
	}
	// The family is revoked: the current refresh token of a replaying
	// client no longer works.
	if _, err := refresh(ctx, pairs[0].cfg, pairs[0].cur.RefreshToken); err == nil {
		t.Fatal("the family of a replayed refresh token must be revoked")
	}
	// Everyone else from the same address is unaffected.
	if status, out := s.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, "svc", e2eSvcSecret); status != 200 {
		t.Fatalf("another client after 50 replays: %d %v", status, out)
	}
	fresh := addCodeClient(t, s, "healthy")
	if _, err := browserSignIn(ctx, s.issuer, fresh, "alice", e2ePassword); err != nil {
		t.Fatalf("another user after 50 replays: %v", err)
	}
	// A replaying client itself may still start over (no client block by
	// default; the alert threshold is per client and none crossed it).
	if _, err := browserSignIn(ctx, s.issuer, pairs[1].cfg, "reuser-001", userPassword("reuser-001")); err != nil {
		t.Fatalf("a replaying client signing in again: %v", err)
	}
	if bs, err := s.app.detector.List(ctx); err != nil || len(bs) != 0 {
		t.Fatalf("refresh reuse placed blocks at default settings: %v %v", bs, err)
	}
	events, err := s.app.store.ListAudit(ctx, storage.AuditFilter{Event: oauth.EventRefreshReuse, Limit: 100})
	// 50 replays, plus the revoked current token presented above.
	if err != nil || len(events) != 51 {
		t.Fatalf("every replay must be audited: %d events, %v", len(events), err)
	}
}

func refresh(ctx context.Context, cfg *oauth2.Config, rt string) (*oauth2.Token, error) {
	return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt, Expiry: time.Now().Add(-time.Hour)}).Token()
}

// TestE2EOrdinaryTrafficInThirtySeconds: twenty sign-in+consent flows, then
// refreshes, introspections and revocations, within 30 seconds, all
// succeed at default settings.
func TestE2EOrdinaryTrafficInThirtySeconds(t *testing.T) {
	s := startE2E(t, pgtest.NewDatabase(t))
	addUsers(t, s, "daily", 20)
	cfg := addCodeClient(t, s, "daily-app")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	toks := make([]*oauth2.Token, 20)
	errs := runPool(20, 4, func(i int) error {
		name := fmt.Sprintf("daily-%03d", i)
		tok, err := browserSignIn(ctx, s.issuer, cfg, name, userPassword(name))
		toks[i] = tok
		return err
	})
	if n, some := firstErrors(errs); n > 0 {
		t.Fatalf("%d sign-ins failed: %v", n, some)
	}
	errs = runPool(20, 4, func(i int) error {
		tok, err := refresh(ctx, cfg, toks[i].RefreshToken)
		if err != nil {
			return fmt.Errorf("refresh: %w", err)
		}
		for range 3 {
			status, out := s.post("/oauth2/introspect", url.Values{"token": {tok.AccessToken}}, "svc", e2eSvcSecret)
			if status != 200 || out["active"] != true {
				return fmt.Errorf("introspect: %d %v", status, out)
			}
		}
		status, out := s.post("/oauth2/revoke", url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}, cfg.ClientID, cfg.ClientSecret)
		if status != 200 {
			return fmt.Errorf("revoke: %d %v", status, out)
		}
		status, out = s.post("/oauth2/introspect", url.Values{"token": {tok.AccessToken}}, "svc", e2eSvcSecret)
		if status != 200 || out["active"] != false {
			return fmt.Errorf("introspect after revoke: %d %v", status, out)
		}
		return nil
	})
	if n, some := firstErrors(errs); n > 0 {
		t.Fatalf("%d token lifecycles failed: %v", n, some)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("took %s, want within 30s", took)
	}
}

// failLogin posts one wrong password for user with a fresh CSRF token and
// returns the status.
func failLogin(t *testing.T, s *e2eServer, user string) int {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	st, _, _ := loginAttempt(t, s, &http.Client{Jar: jar}, user, "wrong-password-0123")
	return st
}

// TestE2ECredentialStuffingBlocksTheAddress: failed sign-ins across many
// accounts from one address block it (audited, counted); a never-block
// network is not blocked by the same traffic.
func TestE2ECredentialStuffingBlocksTheAddress(t *testing.T) {
	t.Run("case=default", func(t *testing.T) {
		s := startE2E(t, pgtest.NewDatabase(t))
		// Each account fails once: a user mistyping looks nothing like this.
		for i := range defaultStuffingAccounts {
			if st := failLogin(t, s, fmt.Sprintf("victim-%02d", i)); st != http.StatusUnauthorized {
				t.Fatalf("attempt %d: %d, want 401", i, st)
			}
		}
		jar, _ := cookiejar.New(nil)
		res, err := (&http.Client{Jar: jar}).Get(s.issuer + "/login")
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("after stuffing across %d accounts the address must be blocked: %d", defaultStuffingAccounts, res.StatusCode)
		}
		ctx := context.Background()
		bs, err := s.app.detector.List(ctx)
		if err != nil || len(bs) != 1 || bs[0].Kind != "ip" || bs[0].Value != "127.0.0.1" {
			t.Fatalf("blocks = %+v %v", bs, err)
		}
		events, err := s.app.store.ListAudit(ctx, storage.AuditFilter{Event: "block.placed"})
		if err != nil || len(events) != 1 || events[0].SourceIP != "127.0.0.1" {
			t.Fatalf("block audit = %+v %v", events, err)
		}
		if m := scrapeMetrics(t, s); !strings.Contains(m, `bulwark_blocks_placed_total{kind="ip",signal="failed_login"} 1`) {
			t.Fatal("the block must be counted in bulwark_blocks_placed_total")
		}
	})
	t.Run("case=never-block network", func(t *testing.T) {
		s := startE2E(t, pgtest.NewDatabase(t), func(c *config) { c.NeverBlock = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
		for i := range defaultStuffingAccounts + 2 {
			if st := failLogin(t, s, fmt.Sprintf("victim-%02d", i)); st != http.StatusUnauthorized {
				t.Fatalf("attempt %d: %d, want 401", i, st)
			}
		}
		if bs, err := s.app.detector.List(context.Background()); err != nil || len(bs) != 0 {
			t.Fatalf("a never-block network was blocked: %+v %v", bs, err)
		}
		if _, err := browserSignIn(context.Background(), s.issuer, addCodeClient(t, s, "office-app"), "alice", e2ePassword); err != nil {
			t.Fatalf("sign-in from the never-block network: %v", err)
		}
	})
}

func scrapeMetrics(t *testing.T, s *e2eServer) string {
	t.Helper()
	res, err := http.Get(s.adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	return string(b)
}

// TestE2EProxyWarningOnce: forwarded headers from a peer that is not a
// trusted proxy are ignored, warned about once (naming --trusted-proxies)
// and counted every time.
func TestE2EProxyWarningOnce(t *testing.T) {
	s := startE2E(t, pgtest.NewDatabase(t))
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodGet, s.issuer+"/.well-known/openid-configuration", nil)
		if i == 2 {
			req.Header.Set("Forwarded", "for=203.0.113.7")
		} else {
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("discovery: %d", res.StatusCode)
		}
	}
	if n := strings.Count(s.logs.String(), "--trusted-proxies"); n != 1 {
		t.Fatalf("the proxy warning appeared %d times, want exactly once", n)
	}
	if strings.Contains(s.logs.String(), `"remote_ip":"203.0.113.7"`) {
		t.Fatal("an untrusted forwarded address was believed")
	}
	if m := scrapeMetrics(t, s); !strings.Contains(m, "bulwark_untrusted_forwarded_requests_total 3") {
		t.Fatal("every untrusted forwarded request must be counted")
	}
}

var consoleCSRF = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)

// TestE2ECrossSiteFormPostsRefused: a cross-site POST carrying a valid CSRF
// token is refused at /login and in the console; the same POST from the
// site itself proceeds, so the token was valid.
func TestE2ECrossSiteFormPostsRefused(t *testing.T) {
	s := startE2E(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	if err := s.app.store.CreateUser(ctx, &storage.User{ID: "id-root", Username: "root", PasswordHash: cheapHash(t, "root-password-0123456789"), AdminScopes: []string{"users"}}); err != nil {
		t.Fatal(err)
	}
	page := func(c *http.Client, u string) string {
		res, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		m := consoleCSRF.FindStringSubmatch(string(b))
		if m == nil {
			t.Fatalf("%s: no CSRF token on the page (%d): %.200s", u, res.StatusCode, b)
		}
		return html.UnescapeString(m[1])
	}
	post := func(c *http.Client, u string, form url.Values, hdr map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return res.StatusCode
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	crossSite := []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Origin": "https://evil.example"},
	}

	t.Run("case=login page", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, CheckRedirect: noRedirect}
		token := page(c, s.issuer+"/login")
		form := url.Values{"csrf_token": {token}, "username": {"alice"}, "password": {e2ePassword}}
		for _, h := range crossSite {
			if st := post(c, s.issuer+"/login", form, h); st != http.StatusForbidden {
				t.Fatalf("cross-site /login with a valid token (%v): %d, want 403", h, st)
			}
		}
		if st := post(c, s.issuer+"/login", form, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": s.issuer}); st != http.StatusOK {
			t.Fatalf("same-origin /login with the same token: %d, want 200 (signed in)", st)
		}
	})
	t.Run("case=console", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, CheckRedirect: noRedirect}
		token := page(c, s.adminURL+"/admin/login")
		if st := post(c, s.adminURL+"/admin/login", url.Values{"csrf_token": {token}, "username": {"root"}, "password": {"root-password-0123456789"}}, nil); st != http.StatusSeeOther {
			t.Fatalf("console sign-in: %d", st)
		}
		token = page(c, s.adminURL+"/admin/")
		for _, h := range crossSite {
			if st := post(c, s.adminURL+"/admin/logout", url.Values{"csrf_token": {token}}, h); st != http.StatusForbidden {
				t.Fatalf("cross-site console POST with a valid token (%v): %d, want 403", h, st)
			}
		}
		// Still signed in: the refused POST changed nothing.
		res, err := c.Get(s.adminURL + "/admin/")
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("the session must survive a refused cross-site logout: %d", res.StatusCode)
		}
		if st := post(c, s.adminURL+"/admin/logout", url.Values{"csrf_token": {token}}, map[string]string{"Sec-Fetch-Site": "same-origin"}); st != http.StatusSeeOther {
			t.Fatalf("same-origin logout with the same token: %d", st)
		}
	})
}

// TestE2EClientSecretGuardEveryAuthMethod: brute-forcing a client's
// credentials engages the client-secret guard whichever way the client
// authenticates, because the claimed client id is read once by the
// pipeline for every method. Past the per-client limit (10 attempts in 15
// minutes, shared by every replica) further guesses get 429 slow_down: a
// secret guess is counted before Argon2id runs and then not compared at
// all; a private_key_jwt failure (no secret to guess) is counted after its
// check. The real client, whose credentials already verified, keeps
// working: junk sent in its name cannot lock it out.
func TestE2EClientSecretGuardEveryAuthMethod(t *testing.T) {
	s := startE2E(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	const secret = "guarded-secret-0123456789abcdef"
	cc := []string{"client_credentials"}
	must(s.app.store.CreateClient(ctx, &storage.Client{ID: "basic-c", Name: "b", SecretHash: cheapHash(t, secret), GrantTypes: cc, Scopes: []string{"api:read"}, TokenEndpointAuthMethod: storage.AuthMethodSecretBasic}))
	must(s.app.store.CreateClient(ctx, &storage.Client{ID: "post-c", Name: "p", SecretHash: cheapHash(t, secret), GrantTypes: cc, Scopes: []string{"api:read"}, TokenEndpointAuthMethod: storage.AuthMethodSecretPost}))
	must(s.app.store.CreateClient(ctx, &storage.Client{ID: "jwt-c", Name: "j", GrantTypes: cc, Scopes: []string{"api:read"},
		TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT, TokenEndpointAuthSigningAlg: "ES256",
		JWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}}))

	assertion := func(k *ecdsa.PrivateKey) string {
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		must(err)
		now := time.Now()
		raw, err := josejwt.Signed(sig).Claims(josejwt.Claims{
			Issuer: "jwt-c", Subject: "jwt-c", Audience: josejwt.Audience{s.issuer + "/oauth2/token"},
			ID: rand.Text(), IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(time.Minute)),
		}).CompactSerialize()
		must(err)
		return raw
	}
	cases := []struct {
		name          string
		attempt       func(right bool) (int, map[string]any)
		wrongStatuses []int
	}{
		{"case=client_secret_basic", func(right bool) (int, map[string]any) {
			pw := "wrong-secret"
			if right {
				pw = secret
			}
			return s.post("/oauth2/token", url.Values{"grant_type": cc}, "basic-c", pw)
		}, []int{401}},
		{"case=client_secret_post", func(right bool) (int, map[string]any) {
			pw := "wrong-secret"
			if right {
				pw = secret
			}
			return s.post("/oauth2/token", url.Values{"grant_type": cc, "client_id": {"post-c"}, "client_secret": {pw}}, "", "")
		}, []int{401}},
		{"case=private_key_jwt", func(right bool) (int, map[string]any) {
			k := wrongKey
			if right {
				k = key
			}
			return s.post("/oauth2/token", url.Values{"grant_type": cc,
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion(k)}}, "", "")
		}, []int{401, 400}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if st, out := tc.attempt(true); st != 200 {
				t.Fatalf("right credentials before any failure: %d %v", st, out)
			}
			for i := range 11 {
				st, out := tc.attempt(false)
				if st == http.StatusTooManyRequests {
					break
				}
				ok := false
				for _, w := range tc.wrongStatuses {
					ok = ok || st == w
				}
				if !ok {
					t.Fatalf("wrong credentials %d: %d %v", i, st, out)
				}
			}
			st, out := tc.attempt(false)
			if st != http.StatusTooManyRequests || out["error"] != "slow_down" {
				t.Fatalf("after 11 failures a further guess must get 429 slow_down: %d %v", st, out)
			}
			if st, out := tc.attempt(true); st != 200 {
				t.Fatalf("the real client must keep working while guesses in its name are refused: %d %v", st, out)
			}
		})
	}
}

// TestE2EBadBytesAtTheDoor sends NUL bytes and invalid UTF-8 in the
// query, a header, the Basic credentials and the body to every route of
// both listeners — enumerated from the routers, so a new route is covered
// without touching this test — and expects 400 everywhere, never a 5xx,
// and nothing stored.
func TestE2EBadBytesAtTheDoor(t *testing.T) {
	// Limits off, so every refusal shows as the door's 400 and not a 429.
	// Optional endpoints on, so their routes are enumerated too.
	s := startE2E(t, pgtest.NewDatabase(t), func(c *config) {
		c.RateLimits, c.ClientRateLimits = nil, nil
		c.Registration, c.RegistrationPol.Open = true, true
	})
	ctx := context.Background()
	before, err := s.app.store.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	clientsBefore := countClients(t, s)
	vars := regexp.MustCompile(`\{[^}]*\}`)
	type variant struct {
		name   string
		query  string
		header [2]string
		basic  bool
		body   string
	}
	variants := []variant{
		{name: "NUL in query", query: "x=a%00b"},
		{name: "invalid UTF-8 in query", query: "client_id=%ff%fe"},
		{name: "invalid UTF-8 in User-Agent", header: [2]string{"User-Agent", "agent-\xff"}},
		{name: "NUL in Basic credentials", basic: true},
		{name: "NUL in form body", body: "client_id=a%00b&username=x"},
		{name: "invalid UTF-8 in form body", body: "username=%c3%28"},
		{name: "NUL in JSON body", body: `{"name":"a\u0000b"}`},
	}
	routes := s.app.server.Routes()
	if len(routes) < 40 {
		t.Fatalf("only %d routes enumerated", len(routes))
	}
	checked := 0
	for _, rt := range routes {
		base := s.issuer
		if rt.Listener == "admin" {
			base = s.adminURL
		}
		path := vars.ReplaceAllString(rt.Template, "x")
		methods := rt.Methods
		if len(methods) == 0 {
			methods = []string{http.MethodGet}
		}
		for _, m := range methods {
			for _, v := range variants {
				if v.body != "" && (m == http.MethodGet || m == http.MethodHead) {
					continue
				}
				var body io.Reader
				if v.body != "" {
					body = strings.NewReader(v.body)
				}
				u := base + path
				if v.query != "" {
					u += "?" + v.query
				}
				req, err := http.NewRequest(m, u, body)
				if err != nil {
					t.Fatal(err)
				}
				if v.body != "" {
					ct := "application/x-www-form-urlencoded"
					if strings.HasPrefix(v.body, "{") {
						ct = "application/json"
					}
					req.Header.Set("Content-Type", ct)
				}
				if v.header[0] != "" {
					req.Header.Set(v.header[0], v.header[1])
				}
				if v.basic {
					req.SetBasicAuth("svc\x00", "pw")
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("%s %s (%s): %v", m, rt.Template, v.name, err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				checked++
				// A JSON body on a form route, or a form body on the
				// JSON admin API, is refused for its content type: also
				// 400 at the door.
				if res.StatusCode != http.StatusBadRequest {
					t.Errorf("%s %s (%s): %d, want 400", m, rt.Template, v.name, res.StatusCode)
				}
			}
		}
	}
	after, err := s.app.store.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || countClients(t, s) != clientsBefore {
		t.Fatalf("refused requests stored something: audit %d → %d, clients %d → %d", len(before), len(after), clientsBefore, countClients(t, s))
	}
	t.Logf("%d bad-byte requests over %d routes, all refused at the door", checked, len(routes))
}

func countClients(t *testing.T, s *e2eServer) int {
	t.Helper()
	list, err := s.app.store.ListClients(context.Background(), storage.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// TestE2ERefreshReuseAlertAndOptionalClientBlock: past the threshold, one
// client's refresh-token reuse raises an alert (audit event and metric); it
// blocks that client — never the address — only when the operator enabled
// it.
func TestE2ERefreshReuseAlertAndOptionalClientBlock(t *testing.T) {
	for _, block := range []bool{false, true} {
		t.Run(fmt.Sprintf("case=block=%v", block), func(t *testing.T) {
			s := startE2E(t, pgtest.NewDatabase(t), func(c *config) {
				c.RefreshReuseThreshold, c.BlockOnRefreshReuse = 3, block
			})
			ctx := context.Background()
			cfg := addCodeClient(t, s, "replayer")
			// Three token families, each with its rotated refresh token
			// replayed once: three reuse detections by one client.
			for i := range 3 {
				tok, err := browserSignIn(ctx, s.issuer, cfg, "alice", e2ePassword)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := refresh(ctx, cfg, tok.RefreshToken); err != nil {
					t.Fatal(err)
				}
				if status, out := s.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, cfg.ClientID, cfg.ClientSecret); status != http.StatusBadRequest {
					t.Fatalf("replay %d: %d %v", i, status, out)
				}
			}
			events, err := s.app.store.ListAudit(ctx, storage.AuditFilter{Event: "anomaly.alert", Limit: 10})
			if block {
				if err != nil || len(events) != 0 {
					t.Fatalf("with blocking enabled the threshold blocks instead of alerting: %+v %v", events, err)
				}
				bs, err := s.app.detector.List(ctx)
				if err != nil || len(bs) != 1 || bs[0].Kind != "client" || bs[0].Value != "replayer" {
					t.Fatalf("blocks = %+v %v, want the client only", bs, err)
				}
				if status, _ := s.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, cfg.ClientID, cfg.ClientSecret); status != http.StatusForbidden {
					t.Fatalf("the blocked client: %d, want 403", status)
				}
			} else {
				if err != nil || len(events) != 1 || events[0].ClientID != "replayer" {
					t.Fatalf("alert audit = %+v %v", events, err)
				}
				if m := scrapeMetrics(t, s); !strings.Contains(m, `bulwark_anomaly_alerts_total{kind="client",signal="refresh_reuse"} 1`) {
					t.Fatal("the alert must be counted")
				}
				if bs, err := s.app.detector.List(ctx); err != nil || len(bs) != 0 {
					t.Fatalf("alert-only placed blocks: %+v %v", bs, err)
				}
			}
			// Everyone else from the same address is unaffected either way.
			if status, out := s.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, "svc", e2eSvcSecret); status != 200 {
				t.Fatalf("another client: %d %v", status, out)
			}
		})
	}
}
