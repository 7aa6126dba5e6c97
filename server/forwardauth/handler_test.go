package forwardauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/bulwark-auth/bulwark/storage/memory"
)

const handlerRules = `
rules:
  - name: health
    path: /healthz
    anonymous: true
  - name: api
    path: /api/**
    scopes: [introspect]
  - name: orders
    path: /orders/**
    audiences: [orders-api]
`

// do sends one check to the mounted routes over real HTTP.
func do(t *testing.T, srv *httptest.Server, method, path string, hdr map[string][]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return res
}

func serve(t *testing.T, e *env) *httptest.Server {
	r := mux.NewRouter()
	e.h.Routes(DefaultPath)(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

func TestHandlerAnswers(t *testing.T) {
	e := newEnv(t, handlerRules, nil)
	srv := serve(t, e)
	good := e.mint(t, "at+jwt", nil)
	uri := func(u string) []string { return []string{u} }
	for _, tc := range []struct {
		name      string
		method    string
		path      string
		hdr       map[string][]string
		status    int
		challenge string // substring of WWW-Authenticate
	}{
		{"case=valid JWT", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + good}, "X-Forwarded-Uri": uri("/api/x")}, 200, ""},
		{"case=POST works too", "POST", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + good}, "X-Original-URI": uri("/api/x")}, 200, ""},
		{"case=valid API key as bearer", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + e.apiKey}, "X-Forwarded-Uri": uri("/api/x")}, 200, ""},
		{"case=anonymous", "GET", "/forward-auth", map[string][]string{"X-Forwarded-Uri": uri("/healthz")}, 200, ""},
		{"case=no credential", "GET", "/forward-auth", map[string][]string{"X-Forwarded-Uri": uri("/api/x")}, 401, `Bearer realm="bulwark"`},
		{"case=ID token typ refused", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + e.mint(t, "JWT", nil)}, "X-Forwarded-Uri": uri("/api/x")}, 401, "invalid_token"},
		{"case=foreign issuer", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + e.mint(t, "at+jwt", jwt.MapClaims{"iss": "https://evil"})}, "X-Forwarded-Uri": uri("/api/x")}, 401, "invalid_token"},
		{"case=no exp", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + e.mint(t, "at+jwt", jwt.MapClaims{"exp": nil})}, "X-Forwarded-Uri": uri("/api/x")}, 401, "invalid_token"},
		{"case=garbage token", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer a.b.c"}, "X-Forwarded-Uri": uri("/api/x")}, 401, "invalid_token"},
		{"case=bad API key", "GET", "/forward-auth", map[string][]string{"X-API-Key": {"bwk_nope_nope"}, "X-Forwarded-Uri": uri("/api/x")}, 401, "invalid_token"},
		{"case=Basic scheme", "GET", "/forward-auth", map[string][]string{"Authorization": {"Basic Zm9vOmJhcg=="}, "X-Forwarded-Uri": uri("/api/x")}, 401, "invalid_request"},
		{"case=DPoP", "GET", "/forward-auth", map[string][]string{"Authorization": {"DPoP " + good}, "X-Forwarded-Uri": uri("/api/x")}, 401, "DPoP"},
		{"case=oversized token", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + strings.Repeat("a", 9000)}, "X-Forwarded-Uri": uri("/api/x")}, 401, "invalid_request"},
		{"case=two credentials", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + good}, "X-API-Key": {e.apiKey}, "X-Forwarded-Uri": uri("/api/x")}, 400, "invalid_request"},
		{"case=duplicate Authorization", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + good, "Bearer " + good}, "X-Forwarded-Uri": uri("/api/x")}, 400, "invalid_request"},
		{"case=duplicate forwarded URI", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + good}, "X-Forwarded-Uri": {"/api/x", "/admin"}}, 400, "invalid_request"},
		{"case=conflicting URIs", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + good}, "X-Forwarded-Uri": uri("/api/x"), "X-Original-URI": uri("/admin")}, 400, "invalid_request"},
		{"case=no URI", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + good}}, 400, "invalid_request"},
		{"case=bad method", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + good}, "X-Forwarded-Uri": uri("/api/x"), "X-Forwarded-Method": {"get"}}, 400, "invalid_request"},
		{"case=encoded NUL", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + good}, "X-Forwarded-Uri": uri("/api/x%00")}, 403, ""},
		{"case=invalid UTF-8", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + good}, "X-Forwarded-Uri": uri("/api/%c3%28")}, 403, ""},
		{"case=unmatched", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + good}, "X-Forwarded-Uri": uri("/nope")}, 403, ""},
		{"case=wrong audience", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + good}, "X-Forwarded-Uri": uri("/orders/1")}, 401, "invalid_token"},
		{"case=right audience", "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + e.mint(t, "at+jwt", jwt.MapClaims{"aud": []string{"orders-api"}})}, "X-Forwarded-Uri": uri("/orders/1")}, 200, ""},
		{"case=API key lacks audience", "GET", "/forward-auth", map[string][]string{"X-API-Key": {e.apiKey}, "X-Forwarded-Uri": uri("/orders/1")}, 401, "invalid_token"},
		{"case=envoy mode", "DELETE", "/forward-auth/envoy/api/x?y=1", map[string][]string{"Authorization": {"Bearer " + good}}, 200, ""},
		{"case=envoy mode unmatched", "GET", "/forward-auth/envoy/other", map[string][]string{"Authorization": {"Bearer " + good}}, 403, ""},
		{"case=envoy mode encoded slash", "GET", "/forward-auth/envoy/api%2F..%2Fother", map[string][]string{"Authorization": {"Bearer " + good}}, 403, ""},
		{"case=PUT on the plain path", "PUT", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + good}, "X-Forwarded-Uri": uri("/api/x")}, 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, srv, tc.method, tc.path, tc.hdr)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", res.StatusCode, tc.status, res.Header.Get("WWW-Authenticate"))
			}
			if got := res.Header.Get("WWW-Authenticate"); tc.challenge != "" && !strings.Contains(got, tc.challenge) {
				t.Fatalf("WWW-Authenticate %q, want it to contain %q", got, tc.challenge)
			}
			if res.StatusCode == 200 {
				for _, name := range []string{DefaultSubjectHeader, DefaultClientIDHeader, DefaultScopeHeader, DefaultTokenTypeHeader} {
					if _, ok := res.Header[http.CanonicalHeaderKey(name)]; !ok {
						t.Fatalf("200 without %s", name)
					}
				}
			}
		})
	}
}

func TestHandlerRateLimitsPerCredentialNotPerAddress(t *testing.T) {
	e := newEnv(t, handlerRules, func(c *Config) { c.Rate, c.Burst = 0.001, 2 })
	srv := serve(t, e)
	a := e.mint(t, "at+jwt", nil)
	b := e.mint(t, "at+jwt", jwt.MapClaims{"client_id": "other", "sub": "other"})
	check := func(tok string) *http.Response {
		return do(t, srv, "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + tok}, "X-Forwarded-Uri": {"/api/x"}})
	}
	for i := range 2 {
		if res := check(a); res.StatusCode != 200 {
			t.Fatalf("check %d: %d", i, res.StatusCode)
		}
	}
	if res := check(a); res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	// Same address, another client: its own bucket.
	if res := check(b); res.StatusCode != 200 {
		t.Fatalf("other client limited: %d", res.StatusCode)
	}
	// API keys: the bucket is the key's, charged once per check whether
	// or not the verification was cached.
	key := func() int {
		return do(t, srv, "GET", "/forward-auth", map[string][]string{"X-API-Key": {e.apiKey}, "X-Forwarded-Uri": {"/api/x"}}).StatusCode
	}
	if got := []int{key(), key(), key()}; got[0] != 200 || got[1] != 200 || got[2] != http.StatusTooManyRequests {
		t.Fatalf("API key checks: %v", got)
	}
}

func TestHandlerCustomHeaderNames(t *testing.T) {
	e := newEnv(t, handlerRules, func(c *Config) { c.Headers = Headers{Subject: "X-User", Scope: "X-Scopes"} })
	srv := serve(t, e)
	res := do(t, srv, "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + e.mint(t, "at+jwt", nil)}, "X-Forwarded-Uri": {"/api/x"}})
	if res.StatusCode != 200 || res.Header.Get("X-User") != "svc" || res.Header.Get("X-Scopes") != "introspect" || res.Header.Get(DefaultClientIDHeader) != "svc" || res.Header.Get(DefaultSubjectHeader) != "" {
		t.Fatalf("%d %v", res.StatusCode, res.Header)
	}
}

func TestHandlerCachedTokenDiesWithItsSigningKey(t *testing.T) {
	e := newEnv(t, handlerRules, nil)
	srv := serve(t, e)
	tok := e.mint(t, "at+jwt", nil)
	check := func() int {
		return do(t, srv, "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + tok}, "X-Forwarded-Uri": {"/api/x"}}).StatusCode
	}
	if got := check(); got != 200 {
		t.Fatalf("fresh token: %d", got)
	}
	// The header only: which key signed it.
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return nil, nil })
	kid, _ := parsed.Header["kid"].(string)
	if kid == "" {
		t.Fatalf("no kid: %v", err)
	}
	if err := e.ring.Revoke(t.Context(), kid, "test"); err != nil {
		t.Fatal(err)
	}
	if got := check(); got != http.StatusUnauthorized {
		t.Fatalf("token of a revoked signing key (cached): %d", got)
	}
}

// failingLookup is a store that is down.
type failingLookup struct{}

func (failingLookup) GetAccessTokenSession(context.Context, string, fosite.Session) (fosite.Requester, error) {
	return nil, errors.New("connection refused")
}

func TestHandlerStoreDownIs503NotOK(t *testing.T) {
	log, _ := test.NewNullLogger()
	// Never subscribed: every token needs the store, which is down.
	revs, err := NewRevocations(RevocationsConfig{Notifier: memory.New(memory.Config{}), Lookup: failingLookup{}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, handlerRules, func(c *Config) { c.Revocations = revs })
	srv := serve(t, e)
	res := do(t, srv, "GET", "/forward-auth", map[string][]string{"Authorization": {"Bearer " + e.mint(t, "at+jwt", nil)}, "X-Forwarded-Uri": {"/api/x"}})
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("store down: %d %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
}
