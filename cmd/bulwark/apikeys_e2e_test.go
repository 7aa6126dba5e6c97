package main

// Issue #4 end to end: keys made with the CLI, used at introspection (as the
// token and as the caller's credential), exchanged for a JWT (RFC 8693),
// rotated by their holder and revoked — on Postgres, over real HTTP.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"golang.org/x/oauth2/clientcredentials"
)

const e2eMasterSecret = "e2e-master-secret-0123456789-abcdefghijklmnop"

var apiKeyPattern = regexp.MustCompile(`bwk_[0-9A-Za-z]+_[0-9A-Za-z]+`)

// cliCreateKey runs `bulwark apikeys create` and returns the printed key.
func cliCreateKey(t *testing.T, dsn string, args ...string) string {
	t.Helper()
	t.Setenv("BULWARK_SECRET", e2eMasterSecret)
	var out bytes.Buffer
	all := append([]string{"apikeys", "--database-url", dsn}, args...)
	all = append(all, "create")
	if err := run(context.Background(), all, &out, &out); err != nil {
		t.Fatalf("apikeys create: %v: %s", err, out.String())
	}
	key := apiKeyPattern.FindString(out.String())
	if key == "" {
		t.Fatalf("no key printed: %s", out.String())
	}
	return key
}

func bearerPost(t *testing.T, u, bearer string, form url.Values) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out, res.Header
}

func TestE2EAPIKeys(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn)
	ctx := context.Background()

	rsKey := cliCreateKey(t, dsn, "--name", "resource server", "--owner-type", "service", "--owner-id", "orders-api", "--scopes", "introspect")
	svcKey := cliCreateKey(t, dsn, "--name", "svc machine key", "--owner-type", "client", "--owner-id", "svc", "--scopes", "admin:audit:read")

	t.Run("case=resource server introspects a JWT with its API key", func(t *testing.T) {
		tok, err := (&clientcredentials.Config{ClientID: "svc", ClientSecret: e2eSvcSecret, TokenURL: s.issuer + "/oauth2/token"}).Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		status, out, _ := bearerPost(t, s.issuer+"/oauth2/introspect", rsKey, url.Values{"token": {tok.AccessToken}})
		if status != 200 || out["active"] != true || out["client_id"] != "svc" {
			t.Fatalf("introspection by API key: %d %v", status, out)
		}
		// A key without the introspect scope may not introspect.
		status, out, _ = bearerPost(t, s.issuer+"/oauth2/introspect", svcKey, url.Values{"token": {tok.AccessToken}})
		if status != http.StatusForbidden || out["error"] != "insufficient_scope" {
			t.Fatalf("key without introspect scope: %d %v", status, out)
		}
		// A malformed key is refused before any lookup.
		status, out, hdr := bearerPost(t, s.issuer+"/oauth2/introspect", "bwk_short_x", url.Values{"token": {tok.AccessToken}})
		if status != http.StatusUnauthorized || out["error"] != "invalid_token" || hdr.Get("WWW-Authenticate") == "" {
			t.Fatalf("malformed caller key: %d %v", status, out)
		}
	})

	t.Run("case=an API key presented as the token is introspected", func(t *testing.T) {
		in := s.introspect(svcKey)
		if in["active"] != true || in["client_id"] != "svc" || in["scope"] != "admin:audit:read" || in["api_key_id"] == nil || in["sub"] == nil {
			t.Fatalf("API key introspection: %v", in)
		}
		status, out, _ := bearerPost(t, s.issuer+"/oauth2/introspect", rsKey, url.Values{"token": {svcKey}})
		if status != 200 || out["active"] != true {
			t.Fatalf("API key introspected by an API key: %d %v", status, out)
		}
		if in := s.introspect("bwk_AAAAAAAAAAAA_" + strings.Repeat("A", 49)); len(in) != 1 || in["active"] != false {
			t.Fatalf("bad-checksum key must be exactly inactive: %v", in)
		}
	})

	t.Run("case=token exchange turns the key into a JWT verified offline", func(t *testing.T) {
		status, out := s.post("/oauth2/token", url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token":      {svcKey},
			"subject_token_type": {"urn:bulwark:params:oauth:token-type:api-key"},
			"scope":              {"api:read"},
		}, "", "")
		if status != 200 || out["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" {
			t.Fatalf("exchange: %d %v", status, out)
		}
		at, _ := out["access_token"].(string)
		claims := s.verifyAccessToken(at)
		if claims["client_id"] != "svc" || claims["scope"] != "api:read" || claims["api_key_id"] == nil {
			t.Fatalf("exchanged token claims: %v", claims)
		}
		if in := s.introspect(at); in["active"] != true || in["api_key_id"] == nil {
			t.Fatalf("exchanged token introspection: %v", in)
		}
		// Scope beyond the owning client's registration is refused.
		status, out = s.post("/oauth2/token", url.Values{
			"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {svcKey},
			"subject_token_type": {"urn:bulwark:params:oauth:token-type:api-key"}, "scope": {"openid"},
		}, "", "")
		if status != 400 || out["error"] != "invalid_scope" {
			t.Fatalf("escalating exchange: %d %v", status, out)
		}
		// Presented client credentials must be right even though the key
		// alone would do.
		status, out = s.post("/oauth2/token", url.Values{
			"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {svcKey},
			"subject_token_type": {"urn:bulwark:params:oauth:token-type:api-key"},
		}, "svc", "wrong-secret-for-svc")
		if status != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Fatalf("exchange with a wrong client secret: %d %v", status, out)
		}
		// A key not owned by a client cannot be exchanged; nor can garbage.
		for _, tok := range []string{rsKey, "not-a-key"} {
			status, out = s.post("/oauth2/token", url.Values{
				"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {tok},
				"subject_token_type": {"urn:bulwark:params:oauth:token-type:api-key"},
			}, "", "")
			if status != 400 || out["error"] != "invalid_request" {
				t.Fatalf("exchange of %q: %d %v", tok[:4], status, out)
			}
		}
	})

	t.Run("case=holder rotates early and old key keeps working through grace", func(t *testing.T) {
		holder := cliCreateKey(t, dsn, "--name", "rotating", "--owner-type", "service", "--owner-id", "billing", "--scopes", "introspect")
		status, out, _ := bearerPost(t, s.issuer+"/apikeys/self/rotate", holder, nil)
		if status != 200 {
			t.Fatalf("self rotate: %d %v", status, out)
		}
		fresh, _ := out["api_key"].(string)
		if !apiKeyPattern.MatchString(fresh) || fresh == holder {
			t.Fatalf("no new key returned: %v", out)
		}
		for _, k := range []string{holder, fresh} {
			if in := s.introspect(k); in["active"] != true {
				t.Fatalf("key inactive during grace: %v", in)
			}
		}
	})

	t.Run("case=CLI revocation takes effect at once", func(t *testing.T) {
		in := s.introspect(svcKey)
		id, _ := in["api_key_id"].(string)
		var out bytes.Buffer
		if err := run(ctx, []string{"apikeys", "--database-url", dsn, "revoke", id}, &out, &out); err != nil {
			t.Fatalf("revoke: %v %s", err, out.String())
		}
		if in := s.introspect(svcKey); len(in) != 1 || in["active"] != false {
			t.Fatalf("revoked key still active: %v", in)
		}
		status, body, _ := bearerPost(t, s.issuer+"/apikeys/self/rotate", svcKey, nil)
		if status != http.StatusUnauthorized || !strings.Contains(body["error_description"].(string), "revoked") {
			t.Fatalf("revoked key at self-rotate: %d %v", status, body)
		}
	})
}
