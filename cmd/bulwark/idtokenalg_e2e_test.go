package main

// id_token_signed_response_alg (OpenID Connect Dynamic Client Registration
// 1.0 §2) end to end, on Postgres over real HTTP: clients registered for
// ES256 and EdDSA get ID tokens of that algorithm, from the code exchange,
// a refresh and the device grant, that go-oidc verifies against the JWKS
// when told to accept exactly that algorithm; a client registered for
// none keeps the server's RS256.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// idTokenAlg returns the alg of a compact JWS's protected header.
func idTokenAlg(t *testing.T, raw string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.Alg
}

// verifyIDToken checks raw with go-oidc accepting alg only, checks that
// every other algorithm is refused, and checks at_hash against access.
func verifyIDToken(t *testing.T, provider *oidc.Provider, clientID, alg, raw, access string) {
	t.Helper()
	if got := idTokenAlg(t, raw); got != alg {
		t.Fatalf("ID token of %s signed with %s, want %s", clientID, got, alg)
	}
	ctx := context.Background()
	idt, err := provider.Verifier(&oidc.Config{ClientID: clientID, SupportedSigningAlgs: []string{alg}}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc (%s only) rejects the ID token of %s: %v", alg, clientID, err)
	}
	if access != "" {
		if err := idt.VerifyAccessToken(access); err != nil {
			t.Fatalf("at_hash of %s's %s ID token: %v", clientID, alg, err)
		}
	}
	var others []string
	for _, a := range []string{oidc.RS256, oidc.ES256, oidc.EdDSA} {
		if a != alg {
			others = append(others, a)
		}
	}
	if _, err := provider.Verifier(&oidc.Config{ClientID: clientID, SupportedSigningAlgs: others}).Verify(ctx, raw); err == nil {
		t.Fatalf("a verifier without %s accepted the ID token of %s", alg, clientID)
	}
}

func TestE2EIDTokenAlgorithmPerClient(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn, func(c *config) {
		c.SigningAlgs = append(c.SigningAlgs, "EdDSA")
		c.Registration, c.RegistrationOpen = true, true
		c.RegistrationPol.Open = true
		c.RateLimits[protect.ClassRegister] = protect.Limit{Rate: 1000, Burst: 1000}
		c.ClientRateLimits[protect.ClassRegister] = protect.Limit{Rate: 1000, Burst: 1000}
	})
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := provider.Claims(&disc); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(disc.Algs, []string{"RS256", "ES256", "EdDSA"}) {
		t.Fatalf("id_token_signing_alg_values_supported = %v, want the default RS256 first, then every algorithm a client may register", disc.Algs)
	}

	adminKey := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:clients:read admin:clients:write")
	const redirect = "http://127.0.0.1:9999/callback"
	newClient := func(name, alg string) *oauth2.Config {
		t.Helper()
		spec := map[string]any{
			"client_name": name, "redirect_uris": []string{redirect}, "grant_types": []string{"authorization_code", "refresh_token"},
			"scope": "openid offline_access",
		}
		if alg != "" {
			spec["id_token_signed_response_alg"] = alg
		}
		st, out := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/clients", adminKey, mustJSON(spec))
		if st != http.StatusCreated {
			t.Fatalf("create %s: %d %v", name, st, out)
		}
		if got, _ := out["id_token_signed_response_alg"].(string); got != alg {
			t.Fatalf("create %s: id_token_signed_response_alg = %q, want %q", name, got, alg)
		}
		return &oauth2.Config{
			ClientID: out["client_id"].(string), ClientSecret: out["client_secret"].(string), RedirectURL: redirect,
			Scopes: []string{oidc.ScopeOpenID, "offline_access"}, Endpoint: provider.Endpoint(),
		}
	}

	tokens := map[string]*oauth2.Token{}
	configs := map[string]*oauth2.Config{}
	for _, tc := range []struct{ name, registered, want string }{
		{"case=default", "", "RS256"},
		{"case=ES256", "ES256", "ES256"},
		{"case=EdDSA", "EdDSA", "EdDSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newClient(tc.name, tc.registered)
			tok, err := browserSignIn(ctx, s.issuer, cfg, "alice", e2ePassword)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := tok.Extra("id_token").(string)
			verifyIDToken(t, provider, cfg.ClientID, tc.want, raw, tok.AccessToken)
			// Access tokens keep the server's algorithm.
			if got := idTokenAlg(t, tok.AccessToken); got != "ES256" {
				t.Fatalf("access token signed with %s", got)
			}
			// A refresh signs the new ID token the same way.
			tok.Expiry = time.Now().Add(-time.Minute)
			refreshed, err := cfg.TokenSource(ctx, tok).Token()
			if err != nil {
				t.Fatal(err)
			}
			raw, _ = refreshed.Extra("id_token").(string)
			verifyIDToken(t, provider, cfg.ClientID, tc.want, raw, refreshed.AccessToken)
			tokens[tc.registered], configs[tc.registered] = refreshed, cfg
		})
	}

	t.Run("case=logout accepts an ES256 id_token_hint", func(t *testing.T) {
		raw, _ := tokens["ES256"].Extra("id_token").(string)
		q := url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {redirect}, "state": {"s-1"}}
		res, err := http.Get(s.issuer + "/logout?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		body := string(b)
		if res.StatusCode != http.StatusOK || !strings.Contains(body, `action="/logout"`) {
			t.Fatalf("logout with an ES256 hint: %d %.300s", res.StatusCode, body)
		}
	})

	t.Run("case=device grant", func(t *testing.T) {
		st, out := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/clients", adminKey, mustJSON(map[string]any{
			"client_id": "tv-es", "client_name": "Living room TV", "grant_types": []string{deviceGrant, "refresh_token"},
			"scope": "openid offline_access", "token_endpoint_auth_method": "none", "application_type": "native",
			"id_token_signed_response_alg": "ES256",
		}))
		if st != http.StatusCreated {
			t.Fatalf("create device client: %d %v", st, out)
		}
		cfg := &oauth2.Config{ClientID: "tv-es", Scopes: []string{"openid", "offline_access"},
			Endpoint: oauth2.Endpoint{DeviceAuthURL: s.issuer + "/oauth2/device/auth", TokenURL: s.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
		da := deviceAuth(t, cfg)
		p := newDevicePerson(t, s)
		if status, body := p.decide(p.toDecision(da.UserCode), "approve"); status != http.StatusOK {
			t.Fatalf("approve: %d %.300s", status, body)
		}
		status, tok := s.poll("tv-es", da.DeviceCode)
		if status != http.StatusOK {
			t.Fatalf("poll: %d %v", status, tok)
		}
		raw, _ := tok["id_token"].(string)
		access, _ := tok["access_token"].(string)
		verifyIDToken(t, provider, "tv-es", "ES256", raw, access)
	})

	t.Run("case=dynamic registration", func(t *testing.T) {
		reg := s.issuer + "/oauth2/register"
		for _, tc := range []struct{ body, want string }{
			{`{"redirect_uris":["https://rp.example/cb"],"id_token_signed_response_alg":"ES256"}`, "ES256"},
			// Not registered: the response names what the client gets.
			{`{"redirect_uris":["https://rp.example/cb"]}`, "RS256"},
		} {
			st, out, _ := regCall(t, http.MethodPost, reg, "", tc.body)
			if st != http.StatusCreated || out["id_token_signed_response_alg"] != tc.want {
				t.Fatalf("register %s: %d %v", tc.body, st, out)
			}
		}
		st, out, _ := regCall(t, http.MethodPost, reg, "", `{"redirect_uris":["https://rp.example/cb"],"id_token_signed_response_alg":"HS256"}`)
		if st != http.StatusBadRequest || out["error"] != "invalid_client_metadata" || !strings.Contains(out["error_description"].(string), "id_token_signed_response_alg") {
			t.Fatalf("register HS256: %d %v", st, out)
		}
	})

	t.Run("case=an algorithm the server stopped signing with is refused, never a 500", func(t *testing.T) {
		// A replica on the same database without EdDSA keys.
		other := startE2E(t, dsn)
		cfg := *configs["EdDSA"]
		cfg.Endpoint = oauth2.Endpoint{AuthURL: other.issuer + "/oauth2/auth", TokenURL: other.issuer + "/oauth2/token"}
		c := jarClient(other.issuer)
		res, err := c.Get(cfg.AuthCodeURL("state-0123456789abcdef", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		loc, _ := url.Parse(res.Header.Get("Location"))
		if res.StatusCode != http.StatusSeeOther && res.StatusCode != http.StatusFound || loc.Query().Get("error") != "unauthorized_client" {
			t.Fatalf("authorize for an EdDSA client without EdDSA keys: %d %s", res.StatusCode, loc)
		}
		status, out := other.post("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tokens["EdDSA"].RefreshToken}}, cfg.ClientID, cfg.ClientSecret)
		if status != http.StatusBadRequest || out["error"] != "unauthorized_client" {
			t.Fatalf("refresh for an EdDSA client without EdDSA keys: %d %v", status, out)
		}
	})
}
