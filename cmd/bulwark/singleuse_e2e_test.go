package main

// Single use, over real HTTP on a real Postgres: every one-time artifact
// (authorization code, PKCE binding, pushed request, refresh token, client
// assertion jti) is redeemed by exactly one of many racers, nobody gets a
// 5xx, and what a replay revokes includes tokens minted by a racing winner.
// The interleavings of issue 9's defects 4 and 5 are forced with a second
// connection that holds a row lock, never with sleeps.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	josejwt "github.com/go-jose/go-jose/v3/jwt"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

const (
	suConfSecret = "conf-secret-0123456789-abcdefghij"
	suRedirect   = "http://127.0.0.1:9999/callback"
)

// singleUseE2E starts a replica seeded with a confidential client that
// requires PKCE ("web"), one registered with pkce_optional ("conf"), a
// private_key_jwt client ("jwt", whose key it returns), the introspecting
// "svc" and the user alice.
func singleUseE2E(t *testing.T) (*e2eServer, *pgxpool.Pool, *ecdsa.PrivateKey, string) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey, KeyID: "jwt-kid", Algorithm: "ES256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	seed := `
clients:
  - client_id: svc
    client_secret: ` + e2eSvcSecret + `
    client_name: Service
    grant_types: [client_credentials]
    scope: "api:read"
  - client_id: web
    client_secret: ` + e2eWebSecret + `
    client_name: Web
    redirect_uris: ["` + suRedirect + `"]
    grant_types: [authorization_code, refresh_token]
    scope: "openid offline_access"
    skip_consent: true
  - client_id: conf
    client_secret: ` + suConfSecret + `
    client_name: Confidential
    redirect_uris: ["` + suRedirect + `"]
    grant_types: [authorization_code, refresh_token]
    scope: "openid offline_access"
    pkce_optional: true
    skip_consent: true
  - client_id: jwt
    client_name: JWT client
    grant_types: [client_credentials]
    scope: "api:read"
    token_endpoint_auth_method: private_key_jwt
    token_endpoint_auth_signing_alg: ES256
    jwks: {"keys": [` + string(pub) + `]}
users:
  - username: alice
    password: ` + e2ePassword + `
    email: alice@example.com
`
	path := filepath.Join(t.TempDir(), "singleuse-seed.yaml")
	if err := os.WriteFile(path, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startE2E(t, dsn, func(c *config) { c.SeedFile = path })
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return s, pool, key, dsn
}

// noRedirect is an HTTP client that reports redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// suCode signs alice in for client id and returns a fresh authorization
// code; with pkce it also returns the verifier.
func suCode(t *testing.T, s *e2eServer, conf *oauth2.Config, pkce bool) (code, verifier string) {
	t.Helper()
	opts := []oauth2.AuthCodeOption{}
	if pkce {
		verifier = oauth2.GenerateVerifier()
		opts = append(opts, oauth2.S256ChallengeOption(verifier))
	}
	redirect := s.login(conf.AuthCodeURL("state-0123456789", opts...))
	code = redirect.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in %s", redirect)
	}
	return code, verifier
}

func suConfig(s *e2eServer, id, secret string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{ClientID: id, ClientSecret: secret, RedirectURL: suRedirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: s.issuer + "/oauth2/auth", TokenURL: s.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

// outcome is one racer's answer: the token on success, else the status and
// OAuth error code (x/oauth2's RetrieveError).
type outcome struct {
	tok    *oauth2.Token
	status int
	code   string
	err    error
}

func toOutcome(tok *oauth2.Token, err error) outcome {
	if err == nil {
		return outcome{tok: tok, status: http.StatusOK}
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return outcome{status: re.Response.StatusCode, code: re.ErrorCode, err: err}
	}
	return outcome{err: err}
}

// checkOneWinner asserts exactly one 200, every other answer a 400 with
// one of the allowed codes, and no 5xx; it returns the winner's token.
func checkOneWinner(t *testing.T, res []outcome, allowed ...string) *oauth2.Token {
	t.Helper()
	var win *oauth2.Token
	for i, r := range res {
		switch {
		case r.status == http.StatusOK:
			if win != nil {
				t.Fatalf("racer %d also succeeded: two winners", i)
			}
			win = r.tok
		case r.status == http.StatusBadRequest && contains(allowed, r.code):
		default:
			t.Fatalf("racer %d: status %d error %q (%v)", i, r.status, r.code, r.err)
		}
	}
	if win == nil {
		t.Fatal("no racer succeeded")
	}
	return win
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// activeIn reports the introspection verdict for token.
func activeIn(s *e2eServer, token string) bool { return s.introspect(token)["active"] == true }

func TestE2ESingleUseCodeRace(t *testing.T) {
	s, _, _, _ := singleUseE2E(t)
	ctx := context.Background()
	const racers = 20
	for _, c := range []struct {
		name string
		conf *oauth2.Config
		pkce bool
	}{
		{"case=PKCE, public-grade client", suConfig(s, "web", e2eWebSecret, "openid", "offline_access"), true},
		{"case=PKCE-optional confidential client without PKCE", suConfig(s, "conf", suConfSecret, "openid", "offline_access"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, verifier := suCode(t, s, c.conf, c.pkce)
			var opts []oauth2.AuthCodeOption
			if c.pkce {
				opts = append(opts, oauth2.VerifierOption(verifier))
			}
			res := storagetest.Together(racers, func(int) outcome { return toOutcome(c.conf.Exchange(ctx, code, opts...)) })
			win := checkOneWinner(t, res, "invalid_grant")
			if win.Extra("id_token") == nil {
				t.Fatal("the winner got no id_token")
			}
			if n := storagetest.Count(res, func(o outcome) bool { return o.code == "invalid_grant" }); n != racers-1 {
				t.Fatalf("%d invalid_grant answers, want %d", n, racers-1)
			}
			// A replayed code revokes everything it produced (RFC 6749
			// §4.1.2), the racing winner's tokens included.
			if activeIn(s, win.AccessToken) || activeIn(s, win.RefreshToken) {
				t.Fatal("the winner's tokens survived the replay of their code")
			}
			// And once more, sequentially: still invalid_grant, never 500.
			if o := toOutcome(c.conf.Exchange(ctx, code, opts...)); o.status != http.StatusBadRequest || o.code != "invalid_grant" {
				t.Fatalf("late replay: %d %q", o.status, o.code)
			}
		})
	}
}

// TestE2EPKCEStaysBoundToTheCode: a wrong code_verifier must not strip the
// PKCE requirement from the code (issue 9 defect 2).
func TestE2EPKCEStaysBoundToTheCode(t *testing.T) {
	s, _, _, _ := singleUseE2E(t)
	ctx := context.Background()
	conf := suConfig(s, "conf", suConfSecret, "openid")
	code, verifier := suCode(t, s, conf, true)
	if o := toOutcome(conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))); o.status != http.StatusBadRequest || o.code != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %q", o.status, o.code)
	}
	if o := toOutcome(conf.Exchange(ctx, code)); o.status != http.StatusBadRequest || o.code != "invalid_grant" {
		t.Fatalf("no verifier after a wrong one: %d %q", o.status, o.code)
	}
	// The code is still bound to its challenge: the right verifier works
	// once, and only once.
	if o := toOutcome(conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))); o.status != http.StatusOK {
		t.Fatalf("right verifier: %d %q", o.status, o.code)
	}
	if o := toOutcome(conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))); o.status != http.StatusBadRequest || o.code != "invalid_grant" {
		t.Fatalf("second use: %d %q", o.status, o.code)
	}
}

func TestE2EPARRequestURIRace(t *testing.T) {
	s, _, _, _ := singleUseE2E(t)
	verifier := oauth2.GenerateVerifier()
	status, out := s.post("/oauth2/par", url.Values{
		"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {suRedirect}, "scope": {"openid"},
		"state": {"state-0123456789"}, "code_challenge_method": {"S256"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)},
	}, "web", e2eWebSecret)
	uri, _ := out["request_uri"].(string)
	if status != http.StatusCreated || uri == "" {
		t.Fatalf("PAR: %d %v", status, out)
	}
	authURL := s.issuer + "/oauth2/auth?" + url.Values{"client_id": {"web"}, "request_uri": {uri}}.Encode()
	type answer struct {
		status int
		loc    string
		err    error
	}
	res := storagetest.Together(10, func(int) answer {
		r, err := noRedirect.Get(authURL)
		if err != nil {
			return answer{err: err}
		}
		_ = r.Body.Close()
		return answer{status: r.StatusCode, loc: r.Header.Get("Location")}
	})
	accepted := 0
	for i, a := range res {
		switch {
		case a.err != nil:
			t.Fatalf("racer %d: %v", i, a.err)
		case a.status >= 500:
			t.Fatalf("racer %d: %d", i, a.status)
		case (a.status == http.StatusFound || a.status == http.StatusSeeOther) && strings.HasPrefix(a.loc, "/login"):
			accepted++
		case a.status == http.StatusBadRequest:
		default:
			t.Fatalf("racer %d: unexpected %d %s", i, a.status, a.loc)
		}
	}
	if accepted != 1 {
		t.Fatalf("%d of 10 uses of one request_uri accepted, want exactly 1", accepted)
	}
}

func TestE2ERefreshRace(t *testing.T) {
	s, _, _, _ := singleUseE2E(t)
	ctx := context.Background()
	conf := suConfig(s, "conf", suConfSecret, "openid", "offline_access")
	code, _ := suCode(t, s, conf, false)
	tok, err := conf.Exchange(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	res := storagetest.Together(20, func(int) outcome {
		return toOutcome(conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token())
	})
	win := checkOneWinner(t, res, "invalid_grant", "invalid_request")
	if win.RefreshToken == "" || win.RefreshToken == tok.RefreshToken {
		t.Fatal("the winner got no new refresh token")
	}
}

// waitForLockWaiters polls until n backends of this database wait for a
// lock: the requests under test are then parked where the test wants them.
func waitForLockWaiters(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var waiting int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests reached their lock wait", waiting, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holdAccessRows starts a transaction that row-locks the family's access
// tokens, so a refresh of that family stops, uncommitted, right after it
// deactivated the old refresh token. release ends it.
func holdAccessRows(t *testing.T, pool *pgxpool.Pool) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(ctx, `WITH l AS (SELECT 1 FROM token_sessions WHERE kind = 'access' FOR UPDATE) SELECT count(*) FROM l`).Scan(&n); err != nil || n == 0 {
		t.Fatalf("lock access rows: %d %v", n, err)
	}
	return func() { _ = tx.Rollback(ctx) }
}

// TestE2EReuseWhileRefreshUncommitted forces issue 9 defect 4: a refresh
// token reuse runs while a legitimate refresh of the same family is
// uncommitted. The token that refresh mints must end revoked.
func TestE2EReuseWhileRefreshUncommitted(t *testing.T) {
	s, pool, _, _ := singleUseE2E(t)
	ctx := context.Background()
	conf := suConfig(s, "conf", suConfSecret, "openid", "offline_access")
	code, _ := suCode(t, s, conf, false)
	t0, err := conf.Exchange(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	t1, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: t0.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	release := holdAccessRows(t, pool)
	legit := make(chan outcome, 1)
	go func() {
		legit <- toOutcome(conf.TokenSource(ctx, &oauth2.Token{RefreshToken: t1.RefreshToken}).Token())
	}()
	waitForLockWaiters(t, pool, 1)
	reuse := make(chan outcome, 1)
	go func() {
		reuse <- toOutcome(conf.TokenSource(ctx, &oauth2.Token{RefreshToken: t0.RefreshToken}).Token())
	}()
	waitForLockWaiters(t, pool, 2)
	release()

	l, r := <-legit, <-reuse
	if r.status != http.StatusBadRequest || r.code != "invalid_grant" {
		t.Fatalf("reuse: %d %q (%v)", r.status, r.code, r.err)
	}
	if l.status != http.StatusOK {
		t.Fatalf("legitimate refresh: %d %q (%v)", l.status, l.code, l.err)
	}
	if activeIn(s, l.tok.RefreshToken) || activeIn(s, l.tok.AccessToken) {
		t.Fatal("a token minted while the family was being revoked survived the revocation")
	}
	if o := toOutcome(conf.TokenSource(ctx, &oauth2.Token{RefreshToken: l.tok.RefreshToken}).Token()); o.status != http.StatusBadRequest {
		t.Fatalf("the surviving refresh token refreshed again: %d", o.status)
	}
}

// parkRefresh starts a refresh of a fresh grant of the "conf" client and
// returns once it is parked, uncommitted, behind holdAccessRows: the
// grant's first tokens, the refresh's outcome (once released) and release.
func parkRefresh(t *testing.T, s *e2eServer, pool *pgxpool.Pool) (*oauth2.Token, chan outcome, func()) {
	t.Helper()
	ctx := context.Background()
	conf := suConfig(s, "conf", suConfSecret, "openid", "offline_access")
	code, _ := suCode(t, s, conf, false)
	t0, err := conf.Exchange(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	release := holdAccessRows(t, pool)
	refreshed := make(chan outcome, 1)
	go func() {
		refreshed <- toOutcome(conf.TokenSource(ctx, &oauth2.Token{RefreshToken: t0.RefreshToken}).Token())
	}()
	waitForLockWaiters(t, pool, 1)
	return t0, refreshed, release
}

// TestE2EContainmentWhileRefreshUncommitted forces issue 9 defect 5:
// disabling the user while a refresh of their grant is uncommitted. The
// admin gets 200 (no deadlock escapes as 500) and the minted tokens end
// revoked.
func TestE2EContainmentWhileRefreshUncommitted(t *testing.T) {
	s, pool, _, dsn := singleUseE2E(t)
	ctx := context.Background()
	adminKey := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:users")
	var userID string
	if err := pool.QueryRow(ctx, `SELECT id FROM users WHERE username = 'alice'`).Scan(&userID); err != nil {
		t.Fatal(err)
	}
	t0, legit, release := parkRefresh(t, s, pool)
	disabled := make(chan deviceAnswer, 1)
	go func() { disabled <- adminAnswer(s, "/admin/v1/users/"+userID+"/disable", adminKey) }()
	waitForLockWaiters(t, pool, 2)
	release()

	d, l := <-disabled, <-legit
	if d.status != http.StatusOK {
		t.Fatalf("disable user: %d %v", d.status, d.body)
	}
	if l.status >= 500 || l.err != nil && l.status == 0 {
		t.Fatalf("refresh: %d %v", l.status, l.err)
	}
	if l.tok != nil && (activeIn(s, l.tok.RefreshToken) || activeIn(s, l.tok.AccessToken)) {
		t.Fatal("a token minted during containment survived it")
	}
	if activeIn(s, t0.RefreshToken) || activeIn(s, t0.AccessToken) {
		t.Fatal("containment left the original tokens active")
	}
}

func TestE2ES256ChallengeShape(t *testing.T) {
	s, _, _, _ := singleUseE2E(t)
	valid := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	for _, c := range []struct {
		name      string
		challenge string
		ok        bool
	}{
		{"case=valid 43", valid, true},
		{"case=42 characters", valid[:42], false},
		{"case=44 characters", valid + "A", false},
		{"case=129 characters", strings.Repeat("A", 129), false},
		{"case=43 with '+' and '/'", "+/" + valid[2:], false},
		{"case=43 with padding", valid[:42] + "=", false},
		{"case=43 with a dot", valid[:42] + ".", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {suRedirect}, "scope": {"openid"},
				"state": {"state-0123456789"}, "code_challenge_method": {"S256"}, "code_challenge": {c.challenge}}
			r, err := noRedirect.Get(s.issuer + "/oauth2/auth?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			_ = r.Body.Close()
			loc, _ := url.Parse(r.Header.Get("Location"))
			switch {
			case c.ok && (loc == nil || loc.Path != "/login"):
				t.Fatalf("valid challenge: %d %s", r.StatusCode, r.Header.Get("Location"))
			case !c.ok && (loc == nil || loc.Query().Get("error") != "invalid_request"):
				t.Fatalf("malformed challenge accepted: %d %s", r.StatusCode, r.Header.Get("Location"))
			}
			// The pushed authorization request refuses it too.
			status, out := s.post("/oauth2/par", q, "web", e2eWebSecret)
			if c.ok != (status == http.StatusCreated) || (!c.ok && (status != http.StatusBadRequest || out["error"] != "invalid_request")) {
				t.Fatalf("PAR: %d %v", status, out)
			}
		})
	}
	// plain stays refused.
	q := url.Values{"response_type": {"code"}, "client_id": {"web"}, "redirect_uri": {suRedirect}, "scope": {"openid"},
		"state": {"state-0123456789"}, "code_challenge_method": {"plain"}, "code_challenge": {valid}}
	if status, out := s.post("/oauth2/par", q, "web", e2eWebSecret); status != http.StatusBadRequest {
		t.Fatalf("plain: %d %v", status, out)
	}
}

func TestE2EClientAssertionRules(t *testing.T) {
	s, _, key, _ := singleUseE2E(t)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "jwt-kid"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	assertion := func(jti string, iat *time.Time, exp time.Time) string {
		c := josejwt.Claims{Issuer: "jwt", Subject: "jwt", Audience: josejwt.Audience{s.issuer + "/oauth2/token"}, ID: jti,
			Expiry: josejwt.NewNumericDate(exp)}
		if iat != nil {
			c.IssuedAt = josejwt.NewNumericDate(*iat)
		}
		raw, err := josejwt.Signed(signer).Claims(c).CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	valid := assertion("jti-valid", at(0), now.Add(time.Minute))
	for _, c := range []struct {
		name      string
		assertion string
		ok        bool
	}{
		{"case=valid", valid, true},
		{"case=replayed jti", valid, false},
		{"case=expired", assertion("jti-expired", at(-10*time.Minute), now.Add(-5*time.Minute)), false},
		{"case=valid for a day", assertion("jti-day", at(0), now.Add(24*time.Hour)), false},
		{"case=valid for an hour without iat", assertion("jti-noiat", nil, now.Add(time.Hour)), false},
		{"case=iat in the future hides a long lifetime", assertion("jti-future", at(55*time.Minute), now.Add(time.Hour)), false},
		{"case=four minutes without iat", assertion("jti-four", nil, now.Add(4*time.Minute)), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, out := s.post("/oauth2/token", url.Values{
				"grant_type": {"client_credentials"}, "scope": {"api:read"}, "client_id": {"jwt"},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
				"client_assertion":      {c.assertion},
			}, "", "")
			if c.ok {
				if status != http.StatusOK {
					t.Fatalf("%d %v", status, out)
				}
				return
			}
			if status != http.StatusUnauthorized || out["error"] != "invalid_client" {
				t.Fatalf("want 401 invalid_client, got %d %v", status, out)
			}
		})
	}
}

// TestE2EContainmentUnderLoad: disabling the user or the client while
// their grants refresh in parallel answers 200, no refresh answers 5xx, and
// afterwards no token of any of those grants is active.
func TestE2EContainmentUnderLoad(t *testing.T) {
	for _, c := range []struct{ name, target string }{
		{"case=disable user", "user"},
		{"case=disable client", "client"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, pool, _, dsn := singleUseE2E(t)
			ctx := context.Background()
			adminKey := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:users admin:clients:write")
			path := "/admin/v1/clients/conf/disable"
			if c.target == "user" {
				var userID string
				if err := pool.QueryRow(ctx, `SELECT id FROM users WHERE username = 'alice'`).Scan(&userID); err != nil {
					t.Fatal(err)
				}
				path = "/admin/v1/users/" + userID + "/disable"
			}
			conf := suConfig(s, "conf", suConfSecret, "openid", "offline_access")
			const families = 8
			grants := make([]*oauth2.Token, families)
			for i := range grants {
				code, _ := suCode(t, s, conf, false)
				tok, err := conf.Exchange(ctx, code)
				if err != nil {
					t.Fatal(err)
				}
				grants[i] = tok
			}
			type answer struct {
				out   outcome
				admin int
			}
			res := storagetest.Together(families+1, func(i int) answer {
				if i == families {
					req, _ := http.NewRequest(http.MethodPost, s.adminURL+path, nil)
					req.Header.Set("Authorization", "Bearer "+adminKey)
					r, err := http.DefaultClient.Do(req)
					if err != nil {
						return answer{}
					}
					_ = r.Body.Close()
					return answer{admin: r.StatusCode}
				}
				return answer{out: toOutcome(conf.TokenSource(ctx, &oauth2.Token{RefreshToken: grants[i].RefreshToken}).Token())}
			})
			if res[families].admin != http.StatusOK {
				t.Fatalf("containment answered %d", res[families].admin)
			}
			for i, a := range res[:families] {
				if a.out.status >= 500 || a.out.status == 0 {
					t.Fatalf("refresh %d: %d %v", i, a.out.status, a.out.err)
				}
				toks := []string{grants[i].AccessToken, grants[i].RefreshToken}
				if a.out.tok != nil {
					toks = append(toks, a.out.tok.AccessToken, a.out.tok.RefreshToken)
				}
				for _, tok := range toks {
					if activeIn(s, tok) {
						t.Fatalf("grant %d: a token survived containment", i)
					}
				}
			}
		})
	}
}
