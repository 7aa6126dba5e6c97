package main

// Dynamic client registration (RFC 7591, RFC 7592) end to end, on
// Postgres over real HTTP. No Go RFC 7591 client library exists among the
// modules available here, so the registrant speaks raw HTTP + JSON, as the
// RFCs define it; the registered clients then run their flows through
// golang.org/x/oauth2, and access tokens are verified with jwx against the
// published JWKS.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

// offsetClock is a clock tests can move forward.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// regCall sends a registration request with an optional bearer token and
// JSON body, and returns status, decoded JSON and headers.
func regCall(t *testing.T, method, u, token, body string) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, u, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return doJSON(t, req)
}

// issueInitialToken issues an initial access token through the admin API.
func issueInitialToken(t *testing.T, s *e2eServer, adminKey string, spec map[string]any) (id, token string) {
	t.Helper()
	st, out := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/registration/tokens", adminKey, mustJSON(spec))
	if st != http.StatusCreated {
		t.Fatalf("issue initial access token: %d %v", st, out)
	}
	return out["id"].(string), out["token"].(string)
}

func registeredCount(t *testing.T, s *e2eServer, adminKey, id string) int {
	t.Helper()
	st, out := adminDo(t, http.MethodGet, s.adminURL+"/admin/v1/registration/tokens/"+id, adminKey, "")
	if st != http.StatusOK {
		t.Fatalf("get initial access token: %d %v", st, out)
	}
	return int(out["registered"].(float64))
}

func startRegistrationServer(t *testing.T, dsn string, clock *offsetClock, open bool, opts ...func(*config)) *e2eServer {
	return startE2E(t, dsn, append([]func(*config){func(c *config) {
		c.Registration, c.RegistrationOpen = true, open
		c.RegistrationPol.Open = open
		// Public clients (none) are not allowed here, to test the method
		// policy.
		c.RegistrationPol.AuthMethods = []string{storage.AuthMethodSecretBasic, storage.AuthMethodSecretPost, storage.AuthMethodPrivateKeyJWT}
		if clock != nil {
			c.now = clock.now
		}
		// These tests send many refusals from one address with one token;
		// TestE2ERegistrationRateLimits runs the default limits.
		c.RateLimits[protect.ClassRegister] = protect.Limit{Rate: 1000, Burst: 1000}
		c.ClientRateLimits[protect.ClassRegister] = protect.Limit{Rate: 1000, Burst: 1000}
	}}, opts...)...)
}

// TestE2EDynamicClientRegistration: a registrant with an initial access
// token registers a confidential service and a web app, both then work
// with x/oauth2; the registration is read, updated (token rotated) and
// deleted through RFC 7592; the token stops at max_clients.
func TestE2EDynamicClientRegistration(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	clock := &offsetClock{}
	s := startRegistrationServer(t, dsn, clock, false)
	ctx := context.Background()
	adminKey := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:clients:read admin:clients:write admin:audit:read")
	reg := s.issuer + "/oauth2/register"

	// Discovery advertises the endpoint.
	res, err := http.Get(s.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc map[string]any
	_ = json.NewDecoder(res.Body).Decode(&disc)
	_ = res.Body.Close()
	if disc["registration_endpoint"] != reg {
		t.Fatalf("registration_endpoint = %v", disc["registration_endpoint"])
	}

	// No token, or a token that is not one: 401 per RFC 6750.
	st, out, hdr := regCall(t, http.MethodPost, reg, "", `{"grant_types":["client_credentials"]}`)
	if st != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: %d %v %q", st, out, hdr.Get("WWW-Authenticate"))
	}
	st, out, hdr = regCall(t, http.MethodPost, reg, "bwi_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", `{"grant_types":["client_credentials"]}`)
	if st != http.StatusUnauthorized || out["error"] != "invalid_token" || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("unknown token: %d %v %q", st, out, hdr.Get("WWW-Authenticate"))
	}

	tokID, initial := issueInitialToken(t, s, adminKey, map[string]any{"description": "partner", "max_clients": 2, "expires_in": "1h"})

	// 1. A confidential service: client_credentials with a secret.
	st, svc, _ := regCall(t, http.MethodPost, reg, initial,
		`{"client_name":"Partner reports","grant_types":["client_credentials"],"scope":"profile","token_endpoint_auth_method":"client_secret_basic","contacts":["ops@partner.example"]}`)
	if st != http.StatusCreated {
		t.Fatalf("register service: %d %v", st, svc)
	}
	svcID, _ := svc["client_id"].(string)
	svcSecret, _ := svc["client_secret"].(string)
	svcRegToken, _ := svc["registration_access_token"].(string)
	if svcID == "" || svcSecret == "" || !strings.HasPrefix(svcRegToken, "bwr_") ||
		svc["registration_client_uri"] != reg+"/"+svcID || svc["client_secret_expires_at"] != float64(0) ||
		svc["client_id_issued_at"] == nil || svc["client_name"] != "Partner reports" || svc["scope"] != "profile" {
		t.Fatalf("RFC 7591 §3.2.1 response incomplete: %v", svc)
	}
	for _, k := range []string{"skip_consent", "pkce_optional", "audience", "access_token_lifespan"} {
		if _, ok := svc[k]; ok {
			t.Fatalf("response shows admin-only field %s", k)
		}
	}
	cc := clientcredentials.Config{ClientID: svcID, ClientSecret: svcSecret, TokenURL: s.issuer + "/oauth2/token", Scopes: []string{"profile"}}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("x/oauth2 client_credentials with the registered client: %v", err)
	}
	if claims := s.verifyAccessToken(tok.AccessToken); claims["client_id"] != svcID {
		t.Fatalf("access token client_id = %v", claims["client_id"])
	}

	// 2. A web app: authorization code with PKCE, then refresh.
	st, web, _ := regCall(t, http.MethodPost, reg, initial,
		`{"client_name":"Partner web","redirect_uris":["https://app.partner.example/cb"],"grant_types":["authorization_code","refresh_token"],"scope":"openid offline_access"}`)
	if st != http.StatusCreated {
		t.Fatalf("register web app: %d %v", st, web)
	}
	webCfg := &oauth2.Config{
		ClientID: web["client_id"].(string), ClientSecret: web["client_secret"].(string), RedirectURL: "https://app.partner.example/cb",
		Scopes:   []string{"openid", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: s.issuer + "/oauth2/auth", TokenURL: s.issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader},
	}
	wtok, err := browserSignIn(ctx, s.issuer, webCfg, "alice", e2ePassword)
	if err != nil {
		t.Fatalf("authorization code flow with the registered client: %v", err)
	}
	if wtok.RefreshToken == "" || wtok.Extra("id_token") == nil {
		t.Fatalf("token response lacks refresh or ID token: %+v", wtok)
	}
	if _, err := webCfg.TokenSource(ctx, &oauth2.Token{RefreshToken: wtok.RefreshToken}).Token(); err != nil {
		t.Fatalf("refresh with the registered client: %v", err)
	}

	// max_clients 2: the third registration is refused, and counted nowhere.
	st, out, _ = regCall(t, http.MethodPost, reg, initial, `{"grant_types":["client_credentials"],"scope":"profile"}`)
	if st != http.StatusUnauthorized || out["error"] != "invalid_token" {
		t.Fatalf("used-up token: %d %v", st, out)
	}
	if n := registeredCount(t, s, adminKey, tokID); n != 2 {
		t.Fatalf("registered = %d", n)
	}

	// The admin sees both clients as dynamically registered with this token.
	st, got := adminDo(t, http.MethodGet, s.adminURL+"/admin/v1/clients/"+svcID, adminKey, "")
	if st != http.StatusOK || got["registered_via"] != tokID {
		t.Fatalf("admin view of the registered client: %d %v", st, got)
	}

	// RFC 7592 read: the metadata, never the secret.
	uri := svc["registration_client_uri"].(string)
	st, read, _ := regCall(t, http.MethodGet, uri, svcRegToken, "")
	if st != http.StatusOK || read["client_id"] != svcID || read["client_secret"] != nil || read["registration_access_token"] != nil {
		t.Fatalf("read: %d %v", st, read)
	}
	// Another client's registration token, an initial token, or none: 401.
	for _, bad := range []string{web["registration_access_token"].(string), initial, ""} {
		if st, _, _ := regCall(t, http.MethodGet, uri, bad, ""); st != http.StatusUnauthorized {
			t.Fatalf("read with a wrong token: %d", st)
		}
	}

	// RFC 7592 update rotates the registration access token.
	update := fmt.Sprintf(`{"client_id":%q,"client_name":"Partner reports v2","grant_types":["client_credentials"],"scope":"profile","token_endpoint_auth_method":"client_secret_basic","client_secret":%q,"registration_client_uri":%q}`,
		svcID, svcSecret, uri)
	st, upd, _ := regCall(t, http.MethodPut, uri, svcRegToken, update)
	if st != http.StatusOK || upd["client_name"] != "Partner reports v2" {
		t.Fatalf("update: %d %v", st, upd)
	}
	rotated, _ := upd["registration_access_token"].(string)
	if rotated == "" || rotated == svcRegToken {
		t.Fatalf("registration access token not rotated: %q", rotated)
	}
	if st, _, _ := regCall(t, http.MethodGet, uri, svcRegToken, ""); st != http.StatusUnauthorized {
		t.Fatalf("the old registration token still reads: %d", st)
	}
	if st, _, _ := regCall(t, http.MethodGet, uri, rotated, ""); st != http.StatusOK {
		t.Fatalf("the new registration token does not read: %d", st)
	}
	// The secret stayed: the client keeps working.
	if _, err := (&clientcredentials.Config{ClientID: svcID, ClientSecret: svcSecret, TokenURL: s.issuer + "/oauth2/token"}).Token(ctx); err != nil {
		t.Fatalf("token after update: %v", err)
	}
	// A client_secret that is not the issued one, a foreign client_id, an
	// escalation: refused, and the token is not rotated by a refusal.
	for _, body := range []string{
		strings.Replace(update, svcSecret, "not-the-secret", 1),
		strings.Replace(update, `"client_id":"`+svcID+`"`, `"client_id":"other"`, 1),
		strings.Replace(update, `"scope":"profile"`, `"scope":"profile","skip_consent":true`, 1),
	} {
		if st, out, _ := regCall(t, http.MethodPut, uri, rotated, body); st != http.StatusBadRequest || out["error"] != "invalid_client_metadata" {
			t.Fatalf("bad update: %d %v", st, out)
		}
	}
	if st, _, _ := regCall(t, http.MethodGet, uri, rotated, ""); st != http.StatusOK {
		t.Fatalf("a refused update rotated the token: %d", st)
	}

	// RFC 7592 delete: the client is gone and so are its credentials.
	if st, out, _ := regCall(t, http.MethodDelete, uri, rotated, ""); st != http.StatusNoContent {
		t.Fatalf("delete: %d %v", st, out)
	}
	if _, err := (&clientcredentials.Config{ClientID: svcID, ClientSecret: svcSecret, TokenURL: s.issuer + "/oauth2/token"}).Token(ctx); err == nil {
		t.Fatal("a deleted client still gets tokens")
	}
	if st, _, _ := regCall(t, http.MethodGet, uri, rotated, ""); st != http.StatusUnauthorized {
		t.Fatalf("read after delete: %d", st)
	}

	// An admin disabling a registered client (console or API) also ends
	// its registration access token's use.
	webURI := web["registration_client_uri"].(string)
	if st, _ := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/clients/"+web["client_id"].(string)+"/disable", adminKey, ""); st != http.StatusOK {
		t.Fatalf("disable: %d", st)
	}
	if st, _, _ := regCall(t, http.MethodGet, webURI, web["registration_access_token"].(string), ""); st != http.StatusUnauthorized {
		t.Fatalf("read of a disabled client: %d", st)
	}

	// Expired and revoked initial tokens.
	_, expiring := issueInitialToken(t, s, adminKey, map[string]any{"max_clients": 5, "expires_in": "2m"})
	revID, revoked := issueInitialToken(t, s, adminKey, map[string]any{"max_clients": 5, "expires_in": "1h"})
	if st, _ := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/registration/tokens/"+revID+"/revoke", adminKey, ""); st != http.StatusOK {
		t.Fatalf("revoke: %d", st)
	}
	if st, out, _ := regCall(t, http.MethodPost, reg, revoked, `{"grant_types":["client_credentials"],"scope":"profile"}`); st != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d %v", st, out)
	}
	clock.advance(3 * time.Minute)
	if st, out, _ := regCall(t, http.MethodPost, reg, expiring, `{"grant_types":["client_credentials"],"scope":"profile"}`); st != http.StatusUnauthorized {
		t.Fatalf("expired token: %d %v", st, out)
	}

	// Every registration, update and deletion is audited.
	if n := auditCount(t, s, "client.registered", map[string]string{"registered_via": tokID}); n != 2 {
		t.Fatalf("client.registered events: %d", n)
	}
	if auditCount(t, s, "client.updated", nil) < 1 || auditCount(t, s, "client.deleted", nil) < 1 || auditCount(t, s, "registration.refused", nil) < 5 {
		t.Fatal("update, delete or refusals not audited")
	}
	// Tokens never reach the log.
	for _, secret := range []string{initial, svcRegToken, rotated, svcSecret} {
		if strings.Contains(s.logs.String(), secret) {
			t.Fatal("a token or secret was logged")
		}
	}
}

// TestE2ERegistrationRefusals: what the policy refuses, SSRF attempts and
// bad input are 4xx, register nothing and use none of the token.
func TestE2ERegistrationRefusals(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startRegistrationServer(t, dsn, nil, false)
	adminKey := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:clients:read admin:clients:write")
	reg := s.issuer + "/oauth2/register"
	tokID, initial := issueInitialToken(t, s, adminKey, map[string]any{"max_clients": 100, "expires_in": "1h", "scope": "openid profile"})

	const jwk = `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`
	cases := []struct {
		name, body, wantErr string
	}{
		{"case=http redirect for a web app", `{"redirect_uris":["http://app.example/cb"]}`, "invalid_redirect_uri"},
		{"case=loopback http redirect for a web app", `{"redirect_uris":["http://127.0.0.1:8080/cb"]}`, "invalid_redirect_uri"},
		{"case=redirect with fragment", `{"redirect_uris":["https://app.example/cb#x"]}`, "invalid_redirect_uri"},
		{"case=relative redirect", `{"redirect_uris":["/cb"]}`, "invalid_redirect_uri"},
		{"case=scope outside the policy", `{"grant_types":["client_credentials"],"scope":"admin"}`, "invalid_client_metadata"},
		{"case=scope outside the token", `{"grant_types":["client_credentials"],"scope":"email"}`, "invalid_client_metadata"},
		{"case=grant outside the policy", `{"grant_types":["urn:ietf:params:oauth:grant-type:token-exchange"]}`, "invalid_client_metadata"},
		{"case=unknown grant", `{"grant_types":["password"]}`, "invalid_client_metadata"},
		{"case=auth method outside the policy", `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"none"}`, "invalid_client_metadata"},
		{"case=skip_consent", `{"redirect_uris":["https://app.example/cb"],"skip_consent":true}`, "invalid_client_metadata"},
		{"case=audience", `{"grant_types":["client_credentials"],"scope":"profile","audience":["https://billing"]}`, "invalid_client_metadata"},
		{"case=client_id chosen", `{"client_id":"admin","grant_types":["client_credentials"]}`, "invalid_client_metadata"},
		{"case=jwks and jwks_uri", `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt","jwks":` + jwk + `,"jwks_uri":"https://keys.example/jwks"}`, "invalid_client_metadata"},
		{"case=wrong type", `{"redirect_uris":"https://app.example/cb"}`, "invalid_client_metadata"},
		{"case=duplicate member", `{"scope":"openid","scope":"profile","grant_types":["client_credentials"]}`, "invalid_client_metadata"},
		{"case=array body", `[{"grant_types":["client_credentials"]}]`, "invalid_client_metadata"},
		{"case=two objects", `{"grant_types":["client_credentials"]}{}`, "invalid_client_metadata"},
		{"case=escaped NUL", `{"client_name":"a\u0000b","grant_types":["client_credentials"]}`, "invalid_request"},
	}
	// SSRF: every spelling of the server's own network, for jwks_uri and
	// logo_uri, refused at registration before any request is made.
	for _, host := range []string{"127.0.0.1", "[::1]", "169.254.169.254", "2130706433", "0x7f000001", "0x7f.0.0.1", "127.1", "localhost", "[::ffff:127.0.0.1]", "10.0.0.1"} {
		cases = append(cases,
			struct{ name, body, wantErr string }{"case=jwks_uri " + host,
				`{"grant_types":["client_credentials"],"scope":"profile","token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://` + host + `/jwks.json"}`, "invalid_client_metadata"},
			struct{ name, body, wantErr string }{"case=logo_uri " + host,
				`{"grant_types":["client_credentials"],"scope":"profile","logo_uri":"https://` + host + `/logo.png"}`, "invalid_client_metadata"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, out, _ := regCall(t, http.MethodPost, reg, initial, tc.body)
			if st != http.StatusBadRequest || out["error"] != tc.wantErr {
				t.Fatalf("%s: %d %v, want 400 %s", tc.body, st, out, tc.wantErr)
			}
		})
	}
	// Bytes that are not text, a body too large, the wrong media type.
	for _, raw := range []struct {
		name, ctype string
		body        string
		want        int
	}{
		{"invalid UTF-8", "application/json", "{\"client_name\":\"\xff\"}", http.StatusBadRequest},
		{"raw NUL", "application/json", "{\"client_name\":\"a\x00\"}", http.StatusBadRequest},
		{"form body", "application/x-www-form-urlencoded", "grant_types=client_credentials", http.StatusBadRequest},
		{"oversized", "application/json", `{"client_name":"` + strings.Repeat("a", 70<<10) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		req, _ := http.NewRequest(http.MethodPost, reg, strings.NewReader(raw.body))
		req.Header.Set("Content-Type", raw.ctype)
		req.Header.Set("Authorization", "Bearer "+initial)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != raw.want {
			t.Fatalf("%s: %d, want %d", raw.name, res.StatusCode, raw.want)
		}
	}
	if n := registeredCount(t, s, adminKey, tokID); n != 0 {
		t.Fatalf("refusals used the token %d times", n)
	}
	cs, err := s.app.store.ListClients(context.Background(), storage.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.RegisteredVia != "" {
			t.Fatalf("a refused registration created client %s", c.ID)
		}
	}
	// A token that is not usable (here: revoked) is refused before any
	// registered URL is looked at, so a caller without a valid token
	// cannot make the server resolve names: 401, not the URL refusal.
	revID, revoked := issueInitialToken(t, s, adminKey, map[string]any{"max_clients": 5, "expires_in": "1h"})
	if st, _ := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/registration/tokens/"+revID+"/revoke", adminKey, ""); st != http.StatusOK {
		t.Fatalf("revoke: %d", st)
	}
	if st, out, _ := regCall(t, http.MethodPost, reg, revoked, `{"grant_types":["client_credentials"],"scope":"profile","logo_uri":"https://localhost/logo.png"}`); st != http.StatusUnauthorized || out["error"] != "invalid_token" {
		t.Fatalf("unusable token with a forbidden URL: %d %v, want 401 invalid_token", st, out)
	}
	// A valid registration still works.
	if st, out, _ := regCall(t, http.MethodPost, reg, initial, `{"grant_types":["client_credentials"],"scope":"profile"}`); st != http.StatusCreated {
		t.Fatalf("valid registration after refusals: %d %v", st, out)
	}
}

// TestE2ERegistrationRaces: a single-use initial access token released to
// many registrations at once registers exactly one client; a registration
// access token presented by many updates at once is rotated by exactly one.
// No request answers 5xx.
func TestE2ERegistrationRaces(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startRegistrationServer(t, dsn, nil, false)
	adminKey := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:clients:read admin:clients:write")
	reg := s.issuer + "/oauth2/register"
	tokID, single := issueInitialToken(t, s, adminKey, map[string]any{"max_clients": 1, "expires_in": "1h"})

	const n = 10
	statuses := storagetest.Together(n, func(i int) int {
		st, _, _ := regCall(t, http.MethodPost, reg, single, fmt.Sprintf(`{"client_name":"racer %d","grant_types":["client_credentials"],"scope":"profile"}`, i))
		return st
	})
	if won := storagetest.Count(statuses, func(st int) bool { return st == http.StatusCreated }); won != 1 {
		t.Fatalf("%d registrations with a single-use token succeeded: %v", won, statuses)
	}
	if lost := storagetest.Count(statuses, func(st int) bool { return st == http.StatusUnauthorized }); lost != n-1 {
		t.Fatalf("losers did not all get 401: %v", statuses)
	}
	cs, err := s.app.store.ListClients(context.Background(), storage.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if got := storagetest.Count(cs, func(c *storage.Client) bool { return c.RegisteredVia == tokID }); got != 1 {
		t.Fatalf("%d clients registered with the single-use token", got)
	}

	// Rotation race.
	_, multi := issueInitialToken(t, s, adminKey, map[string]any{"max_clients": 1, "expires_in": "1h"})
	st, c, _ := regCall(t, http.MethodPost, reg, multi, `{"client_name":"rotating","grant_types":["client_credentials"],"scope":"profile"}`)
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, c)
	}
	uri, regTok, id := c["registration_client_uri"].(string), c["registration_access_token"].(string), c["client_id"].(string)
	type result struct {
		status int
		token  string
	}
	results := storagetest.Together(n, func(i int) result {
		st, out, _ := regCall(t, http.MethodPut, uri, regTok,
			fmt.Sprintf(`{"client_id":%q,"client_name":"rotated %d","grant_types":["client_credentials"],"scope":"profile"}`, id, i))
		tok, _ := out["registration_access_token"].(string)
		return result{st, tok}
	})
	var winner string
	for _, r := range results {
		switch r.status {
		case http.StatusOK:
			if winner != "" {
				t.Fatalf("two updates rotated the same token: %v", results)
			}
			winner = r.token
		case http.StatusUnauthorized:
		default:
			t.Fatalf("an update answered %d: %v", r.status, results)
		}
	}
	if winner == "" {
		t.Fatalf("no update won: %v", results)
	}
	if st, _, _ := regCall(t, http.MethodGet, uri, regTok, ""); st != http.StatusUnauthorized {
		t.Fatalf("the old token still works: %d", st)
	}
	if st, _, _ := regCall(t, http.MethodGet, uri, winner, ""); st != http.StatusOK {
		t.Fatalf("the winner's token does not work: %d", st)
	}
}

// TestE2ERegistrationOpenAndOff: registration is off unless enabled (404,
// not in discovery); open registration needs no token and is marked so.
func TestE2ERegistrationOpenAndOff(t *testing.T) {
	off := startE2E(t, pgtest.NewDatabase(t))
	if st, _, _ := regCall(t, http.MethodPost, off.issuer+"/oauth2/register", "", `{"grant_types":["client_credentials"]}`); st != http.StatusNotFound {
		t.Fatalf("registration answered %d with the feature off", st)
	}
	res, err := http.Get(off.issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if strings.Contains(string(b), "registration_endpoint") {
		t.Fatal("discovery advertises registration while it is off")
	}

	open := startRegistrationServer(t, pgtest.NewDatabase(t), nil, true)
	st, out, _ := regCall(t, http.MethodPost, open.issuer+"/oauth2/register", "", `{"grant_types":["client_credentials"],"scope":"profile"}`)
	if st != http.StatusCreated {
		t.Fatalf("open registration: %d %v", st, out)
	}
	c, err := open.app.store.ClientByID(context.Background(), out["client_id"].(string))
	if err != nil || c.RegisteredVia != storage.RegisteredOpen {
		t.Fatalf("open client: %v %v", c, err)
	}
	tok, err := (&clientcredentials.Config{ClientID: c.ID, ClientSecret: out["client_secret"].(string), TokenURL: open.issuer + "/oauth2/token"}).Token(context.Background())
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("openly registered client: %v", err)
	}
}

// TestE2ERegistrationRateLimits runs the default limits: successful
// registrations never spend the address's budget (a NAT shares it), one
// initial access token is limited on its own (burst 20), and failures
// from one address are what the address budget counts.
func TestE2ERegistrationRateLimits(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn, func(c *config) { c.Registration = true })
	adminKey := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:clients:read admin:clients:write")
	reg := s.issuer + "/oauth2/register"
	_, busy := issueInitialToken(t, s, adminKey, map[string]any{"max_clients": 50, "expires_in": "1h"})
	_, other := issueInitialToken(t, s, adminKey, map[string]any{"max_clients": 5, "expires_in": "1h"})
	body := `{"grant_types":["client_credentials"],"scope":"profile"}`

	created, limited := 0, 0
	for range 30 {
		switch st, _, _ := regCall(t, http.MethodPost, reg, busy, body); st {
		case http.StatusCreated:
			created++
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("registration answered %d", st)
		}
	}
	if created < 20 || limited == 0 {
		t.Fatalf("one token: %d created, %d limited; want the burst of 20 then 429", created, limited)
	}
	// The same address with another token is not limited: successes
	// spent nothing of the address's budget.
	if st, out, _ := regCall(t, http.MethodPost, reg, other, body); st != http.StatusCreated {
		t.Fatalf("another token from the same address: %d %v", st, out)
	}
	// Failures are counted per address: after the burst, 429.
	failures := 0
	for range 25 {
		st, _, _ := regCall(t, http.MethodPost, reg, "bwi_guess", body)
		if st == http.StatusTooManyRequests {
			break
		}
		if st != http.StatusUnauthorized {
			t.Fatalf("bad token answered %d", st)
		}
		failures++
	}
	if failures == 25 {
		t.Fatal("25 failed registrations from one address were never limited")
	}
}
