package main

// The README's Caddy forward_auth configuration, run for real: Debian's
// caddy in front of a tiny upstream, asking the assembled server's
// /forward-auth on a real Postgres.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// caddyfile is the README's Caddy snippet on a test port: forward_auth
// sends X-Forwarded-Method and X-Forwarded-Uri itself, and copy_headers
// puts the auth answer's identity headers on the upstream request.
const caddyfile = `{
	admin off
	auto_https off
}
http://%[1]s {
	forward_auth %[2]s {
		uri /forward-auth
		copy_headers X-Auth-Subject X-Auth-Client-Id X-Auth-Scope X-Auth-Token-Type
	}
	reverse_proxy %[3]s
}
`

// startCaddy runs caddy as a child process and returns its base URL.
func startCaddy(t *testing.T, authHostPort, upstreamHostPort string) string {
	t.Helper()
	bin, err := exec.LookPath("caddy")
	if err != nil {
		t.Fatal("caddy is not installed (.ci/run installs Debian's caddy)")
	}
	dir := t.TempDir()
	addr := freePort(t)
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(caddyfile, addr, authHostPort, upstreamHostPort)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile") // #nosec G204 -- test: our own binary and config
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	return startGateway(t, cmd, "http://"+addr, func() string { return "" })
}

func TestE2EForwardAuthBehindCaddy(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(forwardAuthRules), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startE2E(t, dsn, func(c *config) { c.ForwardAuthRules = rulesPath })
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
	gw := startCaddy(t, issuer.Host, strings.TrimPrefix(upstream.URL, "http://"))
	if !eventually(s.app.forwardAuth.revocations.Ready) {
		t.Fatal("deny list never subscribed")
	}

	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: e2eSvcSecret, TokenURL: s.issuer + "/oauth2/token", Scopes: []string{"api:read"}}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bearer := map[string]string{"Authorization": "Bearer " + tok.AccessToken}
	forged := map[string]string{"Authorization": "Bearer " + tok.AccessToken, "X-Auth-Subject": "admin", "X-Auth-Scope": "api:admin"}
	key := cliCreateKey(t, dsn, "--name", "caddy key", "--owner-type", "client", "--owner-id", "svc", "--scopes", "introspect")

	cases := []struct {
		name, path string
		hdr        map[string]string
		status     int
		seen       upstreamSeen
		challenge  string
	}{
		{"case=valid JWT passes with identity headers", "/public/orders", bearer, http.StatusOK,
			upstreamSeen{Path: "/public/orders", Subject: "svc", ClientID: "svc", Scope: "api:read", TokenType: "jwt"}, ""},
		{"case=forged identity headers are overwritten", "/public/orders", forged, http.StatusOK,
			upstreamSeen{Path: "/public/orders", Subject: "svc", ClientID: "svc", Scope: "api:read", TokenType: "jwt"}, ""},
		{"case=valid API key", "/machine/jobs", map[string]string{"X-API-Key": key}, http.StatusOK,
			upstreamSeen{Path: "/machine/jobs", ClientID: "svc", Scope: "introspect", TokenType: "api_key"}, ""},
		{"case=no credential is a challenge relayed to the caller", "/public/orders", nil, http.StatusUnauthorized,
			upstreamSeen{}, `Bearer realm="bulwark"`},
		{"case=bad token", "/public/orders", map[string]string{"Authorization": "Bearer not-a-token"}, http.StatusUnauthorized,
			upstreamSeen{}, `error="invalid_token"`},
		{"case=missing scope is 403 naming the scope", "/admin/users", bearer, http.StatusForbidden,
			upstreamSeen{}, `scope="api:admin"`},
		{"case=path traversal is normalized before matching", "/public/%2e%2e/admin/users", bearer, http.StatusForbidden,
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
		if status, out := s.post("/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, "svc", e2eSvcSecret); status != http.StatusOK {
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
