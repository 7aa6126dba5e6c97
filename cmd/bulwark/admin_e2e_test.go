package main

// The admin API and metrics as operators reach them: on the admin listener
// only, authenticated with API keys, and able to contain an incident in one
// call.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"golang.org/x/oauth2/clientcredentials"
)

func adminDo(t *testing.T, method, u, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	st, out, _ := doJSON(t, req)
	return st, out
}

// doJSON sends req and returns the status, the decoded JSON body (nil when
// it is not JSON) and the headers.
func doJSON(t *testing.T, req *http.Request) (int, map[string]any, http.Header) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out, res.Header
}

func TestE2EAdminAPIAndContainment(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn)
	ctx := context.Background()
	adminKey := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:clients:read admin:clients:write admin:audit:read")
	readOnly := cliCreateKey(t, dsn, "--name", "viewer", "--owner-type", "service", "--owner-id", "viewer", "--scopes", "admin:clients:read")

	// The admin surface is not on the public listener.
	for _, p := range []string{"/admin/v1/clients", "/metrics"} {
		res, err := http.Get(s.issuer + p)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("%s on the public listener: %d", p, res.StatusCode)
		}
	}
	if st, _ := adminDo(t, http.MethodGet, s.adminURL+"/admin/v1/clients", "", ""); st != http.StatusUnauthorized {
		t.Fatalf("no key: %d", st)
	}
	if st, out := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/clients", readOnly, `{"client_name":"x","grant_types":["client_credentials"],"scope":"api:read"}`); st != http.StatusForbidden {
		t.Fatalf("read-only key creating a client: %d %v", st, out)
	}

	st, created := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/clients", adminKey,
		`{"client_name":"Reports job","grant_types":["client_credentials"],"scope":"api:read","token_endpoint_auth_method":"client_secret_basic"}`)
	if st != http.StatusCreated {
		t.Fatalf("create client: %d %v", st, created)
	}
	id, _ := created["client_id"].(string)
	secret, _ := created["client_secret"].(string)
	if id == "" || secret == "" {
		t.Fatalf("created client lacks id or one-time secret: %v", created)
	}
	if _, again := adminDo(t, http.MethodGet, s.adminURL+"/admin/v1/clients/"+id, adminKey, ""); again["client_secret"] != nil {
		t.Fatal("the client secret must be shown only once")
	}
	tok, err := (&clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: s.issuer + "/oauth2/token", Scopes: []string{"api:read"}}).Token(ctx)
	if err != nil {
		t.Fatalf("token for the new client: %v", err)
	}
	if in := s.introspect(tok.AccessToken); in["active"] != true {
		t.Fatalf("new client's token inactive: %v", in)
	}

	ownedKey := cliCreateKey(t, dsn, "--name", "reports key", "--owner-type", "client", "--owner-id", id, "--scopes", "introspect")
	if in := s.introspect(ownedKey); in["active"] != true {
		t.Fatalf("client-owned key inactive before containment: %v", in)
	}

	// Containment: one call disables the client and revokes its tokens
	// and the API keys it owns.
	st, out := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/clients/"+id+"/disable", adminKey, "")
	if st != http.StatusOK {
		t.Fatalf("disable: %d %v", st, out)
	}
	if in := s.introspect(tok.AccessToken); in["active"] != false {
		t.Fatalf("token of a disabled client still active: %v", in)
	}
	if _, err := (&clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: s.issuer + "/oauth2/token"}).Token(ctx); err == nil {
		t.Fatal("a disabled client must not get tokens")
	}
	if in := s.introspect(ownedKey); in["active"] != false {
		t.Fatalf("an API key owned by a disabled client must stop working: %v", in)
	}

	// The audit trail has it, and metrics count what happened.
	st, audit := adminDo(t, http.MethodGet, s.adminURL+"/admin/v1/audit?event=client.disabled", adminKey, "")
	if st != 200 || !strings.Contains(mustJSON(audit), id) {
		t.Fatalf("audit: %d %v", st, audit)
	}
	res, err := http.Get(s.adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	for _, want := range []string{"client_credentials", `route="/oauth2/token"`} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("metrics lack %q", want)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestE2EBlockAndLiftTakeEffectAtOnce(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn)
	ctx := context.Background()
	key := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:users admin:audit:read")
	token := func() int {
		st, _ := s.post("/oauth2/token", map[string][]string{"grant_type": {"client_credentials"}}, "svc", e2eSvcSecret)
		return st
	}
	if st := token(); st != 200 {
		t.Fatalf("before the block: %d", st)
	}
	if err := s.app.detector.Block(ctx, "ip", "127.0.0.1", "test", time.Hour); err != nil {
		t.Fatal(err)
	}
	if st := token(); st != http.StatusForbidden {
		t.Fatalf("a blocked source must be refused: %d", st)
	}
	st, list := adminDo(t, http.MethodGet, s.adminURL+"/admin/v1/blocks", key, "")
	if st != 200 || !strings.Contains(mustJSON(list), "127.0.0.1") {
		t.Fatalf("blocks listing: %d %v", st, list)
	}
	if st, out := adminDo(t, http.MethodDelete, s.adminURL+"/admin/v1/blocks/ip/127.0.0.1", key, ""); st != http.StatusNoContent && st != http.StatusOK {
		t.Fatalf("lift: %d %v", st, out)
	}
	if st := token(); st != 200 {
		t.Fatalf("a lifted block must stop refusing at once, got %d", st)
	}
}

func TestE2EAllowedScopesRestrictRegistration(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn, func(c *config) {
		c.AllowedScopes = []string{"openid", "profile", "email", "offline_access", "api:read", "api:write"}
	})
	key := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:clients:read admin:clients:write")
	st, out := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/clients", key, `{"client_name":"x","grant_types":["client_credentials"],"scope":"api:read root:everything"}`)
	if st != http.StatusBadRequest || !strings.Contains(mustJSON(out), "root:everything") {
		t.Fatalf("a scope outside the allowed set must be refused by name: %d %v", st, out)
	}
	if st, out := adminDo(t, http.MethodPost, s.adminURL+"/admin/v1/clients", key, `{"client_name":"x","grant_types":["client_credentials"],"scope":"api:read"}`); st != http.StatusCreated {
		t.Fatalf("an allowed scope: %d %v", st, out)
	}
}
