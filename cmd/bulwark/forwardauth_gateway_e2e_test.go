package main

// What every gateway the README configures in front of /forward-auth must
// do, whichever gateway it is: the back end the Caddy and Traefik tests
// share (the assembled server with forward-auth rules on a real Postgres,
// and a tiny upstream) and the cases they both run through their gateway.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// gatewayBackend is what a gateway under test sits between.
type gatewayBackend struct {
	s   *e2eServer
	dsn string
	// authHost is the server's host:port, upstream the upstream's.
	authHost, upstream string
}

// startGatewayBackend starts the server with forwardAuthRules on a fresh
// database, its deny list subscribed and its API key service running, and
// an upstream that answers with the path and identity headers it got.
func startGatewayBackend(t *testing.T, opts ...func(*config)) *gatewayBackend {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(forwardAuthRules), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startE2E(t, dsn, append([]func(*config){func(c *config) { c.ForwardAuthRules = rulesPath }}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = s.app.forwardAuth.run(ctx) }()
	go s.app.apiKeys.Run(ctx)

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(upstreamSeen{
			Path: r.URL.Path, Subject: r.Header.Get("X-Auth-Subject"), ClientID: r.Header.Get("X-Auth-Client-Id"),
			Scope: r.Header.Get("X-Auth-Scope"), TokenType: r.Header.Get("X-Auth-Token-Type"),
		})
	}))
	t.Cleanup(upstream.Close)
	issuer, err := url.Parse(s.issuer)
	if err != nil {
		t.Fatal(err)
	}
	if !eventually(s.app.forwardAuth.revocations.Ready) {
		t.Fatal("deny list never subscribed")
	}
	return &gatewayBackend{s: s, dsn: dsn, authHost: issuer.Host, upstream: strings.TrimPrefix(upstream.URL, "http://")}
}

// token is a fresh client-credentials JWT of svc with scope api:read.
func (b *gatewayBackend) token(t *testing.T) string {
	t.Helper()
	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: e2eSvcSecret, TokenURL: b.s.issuer + "/oauth2/token", Scopes: []string{"api:read"}}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

// insufficientScopeAdmin is the challenge of a valid token refused by the
// /admin rule.
const insufficientScopeAdmin = `Bearer realm="bulwark", error="insufficient_scope", error_description="The request requires scope api:admin.", scope="api:admin"`

// checkGateway runs the cases every configured gateway must pass through
// the gateway at gw: identity headers copied from the answer over forged
// ones, both API key headers, the answers' challenges relayed to the
// caller (401 and 403), path traversal judged by the rule of the path the
// upstream gets, no rule denied, and a revoked token refused within the
// polled deadline.
func checkGateway(t *testing.T, b *gatewayBackend, gw string) {
	t.Helper()
	tok := b.token(t)
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	forged := map[string]string{"Authorization": "Bearer " + tok, "X-Auth-Subject": "admin", "X-Auth-Scope": "api:admin"}
	key := cliCreateKey(t, b.dsn, "--name", "gateway key", "--owner-type", "client", "--owner-id", "svc", "--scopes", "introspect")
	svc := upstreamSeen{Path: "/public/orders", Subject: "svc", ClientID: "svc", Scope: "api:read", TokenType: "jwt"}
	keyed := upstreamSeen{Path: "/machine/jobs", ClientID: "svc", Scope: "introspect", TokenType: "api_key"}

	cases := []struct {
		name, path string
		hdr        map[string]string
		status     int
		seen       upstreamSeen
		challenge  string
	}{
		{"case=valid JWT passes with identity headers", "/public/orders", bearer, http.StatusOK, svc, ""},
		{"case=forged identity headers are overwritten", "/public/orders", forged, http.StatusOK, svc, ""},
		{"case=valid API key in X-API-Key", "/machine/jobs", map[string]string{"X-API-Key": key}, http.StatusOK, keyed, ""},
		{"case=valid API key as Bearer", "/machine/jobs", map[string]string{"Authorization": "Bearer " + key}, http.StatusOK, keyed, ""},
		{"case=no credential is a challenge relayed to the caller", "/public/orders", nil, http.StatusUnauthorized,
			upstreamSeen{}, `Bearer realm="bulwark"`},
		{"case=bad token", "/public/orders", map[string]string{"Authorization": "Bearer not-a-token"}, http.StatusUnauthorized,
			upstreamSeen{}, `error="invalid_token"`},
		{"case=missing scope is 403 naming the scope", "/admin/users", bearer, http.StatusForbidden, upstreamSeen{}, insufficientScopeAdmin},
		{"case=path traversal is normalized before matching", "/public/%2e%2e/admin/users", bearer, http.StatusForbidden,
			upstreamSeen{}, ""},
		{"case=dot dot with a path parameter is refused", "/public/..;/admin/users", bearer, http.StatusForbidden,
			upstreamSeen{}, ""},
		{"case=unmatched route is denied", "/elsewhere", bearer, http.StatusForbidden, upstreamSeen{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, seen, hdr := gatewayGet(t, gw+tc.path, tc.hdr)
			if status != tc.status {
				t.Fatalf("got %d %+v, want %d", status, seen, tc.status)
			}
			if tc.seen.TokenType == "api_key" {
				if !strings.HasPrefix(seen.Subject, "apikey:") {
					t.Fatalf("subject %q", seen.Subject)
				}
				seen.Subject = ""
			}
			if seen != tc.seen {
				t.Fatalf("upstream saw %+v, want %+v", seen, tc.seen)
			}
			if !strings.Contains(hdr.Get("WWW-Authenticate"), tc.challenge) {
				t.Fatalf("WWW-Authenticate %q, want it to contain %q", hdr.Get("WWW-Authenticate"), tc.challenge)
			}
		})
	}

	t.Run("case=anonymous route: forged headers do not reach the upstream", func(t *testing.T) {
		status, seen, _ := gatewayGet(t, gw+"/healthz", map[string]string{"X-Auth-Subject": "admin", "X-Auth-Token-Type": "jwt"})
		if status != http.StatusOK || seen.Subject != "" || seen.TokenType != "" {
			t.Fatalf("forged headers reached the upstream of an anonymous route: %d %+v", status, seen)
		}
	})

	t.Run("case=revoked JWT is denied", func(t *testing.T) {
		if status, out := b.s.post("/oauth2/revoke", url.Values{"token": {tok}}, "svc", e2eSvcSecret); status != http.StatusOK {
			t.Fatalf("revoke: %d %v", status, out)
		}
		if !eventually(func() bool {
			status, _, _ := gatewayGet(t, gw+"/public/orders", bearer)
			return status == http.StatusUnauthorized
		}) {
			t.Fatal("revoked token still accepted")
		}
	})
}
