package main

// The README's Traefik forwardAuth configuration, run for real: Traefik
// v3.6.12 (built by .ci/run, Debian has no package) with the file provider
// in front of a tiny upstream, asking the assembled server's /forward-auth
// on a real Postgres.

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/server/dpop"
	"github.com/bulwark-auth/bulwark/server/dpop/dpoptest"
)

// traefikVersion is the Traefik .ci/run builds from the Go module proxy
// into the user cache directory and names in BULWARK_TRAEFIK_BIN.
const traefikVersion = "v3.6.12"

// traefikDynamic is the README's Traefik dynamic configuration with the
// README's Bulwark URL (%[1]s), host (%[2]s) and upstream URL (%[3]s) as
// parameters; TestREADMETraefikConfigIsTested keeps the two equal.
// authRequestHeaders passes the caller's credentials and nothing else, so
// a caller cannot add X-Original-URI or other headers the forward-auth
// endpoint reads; Traefik sets X-Forwarded-Method, -Proto, -Host and -Uri
// itself (trustForwardHeader is false by default). authResponseHeaders
// replaces the caller's identity headers with the answer's.
const traefikDynamic = `http:
  middlewares:
    bulwark:
      forwardAuth:
        address: %[1]s/forward-auth
        authRequestHeaders: [Authorization, X-API-Key, DPoP]
        authResponseHeaders: [X-Auth-Subject, X-Auth-Client-Id, X-Auth-Scope, X-Auth-Token-Type]
        maxResponseBodySize: 65536
  routers:
    api:
      rule: Host(` + "`%[2]s`" + `)
      middlewares: [bulwark]
      service: api
  services:
    api:
      loadBalancer:
        servers:
          - url: %[3]s
`

// traefikStatic is the test's static configuration: one entry point with
// Traefik's defaults (sanitizePath on), the file provider, and nothing
// that reaches the network.
const traefikStatic = `global:
  checkNewVersion: false
  sendAnonymousUsage: false
log:
  level: WARN
entryPoints:
  web:
    address: %[1]s
providers:
  file:
    filename: %[2]s
`

// traefikBinary finds the Traefik .ci/run built: BULWARK_TRAEFIK_BIN, or
// where .ci/run puts it. It skips locally and fails in CI when there is none.
func traefikBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("BULWARK_TRAEFIK_BIN")
	if bin == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			bin = filepath.Join(dir, "bulwark-ci", "traefik-"+traefikVersion, "traefik")
		}
	}
	if _, err := os.Stat(bin); bin == "" || err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Traefik %s not found at %q; .ci/run builds it", traefikVersion, bin)
		}
		t.Skipf("Traefik %s not found at %q (run .ci/run)", traefikVersion, bin)
	}
	return bin
}

// startTraefik runs Traefik bin as a child process with the README's
// dynamic configuration and returns its base URL once the router is in
// force.
func startTraefik(t *testing.T, bin, authURL, upstreamURL string) string {
	t.Helper()
	if out, err := exec.Command(bin, "version").Output(); err == nil { // #nosec G204 -- test: our own binary
		t.Logf("%s", out)
	}
	dir := t.TempDir()
	addr := freePort(t)
	dynamic, static := filepath.Join(dir, "dynamic.yaml"), filepath.Join(dir, "traefik.yaml")
	if err := os.WriteFile(dynamic, []byte(fmt.Sprintf(traefikDynamic, authURL, "127.0.0.1", upstreamURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(static, []byte(fmt.Sprintf(traefikStatic, addr, dynamic)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--configFile="+static) // #nosec G204 -- test: our own binary and config
	cmd.Dir = dir
	gw := startGateway(t, cmd, "http://"+addr, func() string { return "" })
	// Traefik answers 404 until the file provider's router is loaded.
	if !eventually(func() bool {
		res, err := http.Get(gw + "/healthz")
		if err != nil {
			return false
		}
		_ = res.Body.Close()
		return res.StatusCode == http.StatusOK
	}) {
		t.Fatal("Traefik never routed /healthz to the upstream")
	}
	return gw
}

func TestE2EForwardAuthBehindTraefik(t *testing.T) {
	bin := traefikBinary(t)
	// Traefik relays every header of a denial, DPoP-Nonce included, so
	// proofs can be required to carry the server's nonce here too.
	b := startGatewayBackend(t, func(c *config) { c.DPoPNonce = dpop.NonceEverywhere })
	gw := startTraefik(t, bin, b.s.issuer, "http://"+b.upstream)
	checkGateway(t, b, gw)

	pathRefused := func() float64 {
		return counter(t, b.s, "bulwark_forward_auth_denied_total", "reason", "path_refused")
	}
	bearer := map[string]string{"Authorization": "Bearer " + b.token(t)}

	t.Run("case=path traversal is judged by the rule of the path Traefik routes", func(t *testing.T) {
		// Traefik cleans dot segments, decoded dots and doubled slashes
		// before routing and sends the clean path as X-Forwarded-Uri, so
		// the /admin rule decides: 403 naming api:admin, not the /public
		// rule's 200 nor a path refusal.
		for _, p := range []string{"/public/../admin/users", "/public/./../admin/users", "/public//..//admin/users",
			"/public/%2e%2e/admin/users", "/public/%2E%2E/admin/users", "/public/.%2e/admin/users"} {
			before := pathRefused()
			status, seen, hdr := gatewayGet(t, gw+p, bearer)
			if status != http.StatusForbidden || hdr.Get("WWW-Authenticate") != insufficientScopeAdmin {
				t.Fatalf("%s: got %d %+v %q", p, status, seen, hdr.Get("WWW-Authenticate"))
			}
			if after := pathRefused(); after != before {
				t.Fatalf("%s was refused as a path, not judged by the /admin rule", p)
			}
		}
		// And the other way round: what the upstream gets is what passed.
		status, seen, _ := gatewayGet(t, gw+"/admin/../public/orders", bearer)
		if status != http.StatusOK || seen.Path != "/public/orders" || seen.Subject != "svc" {
			t.Fatalf("/admin/../public/orders: got %d %+v", status, seen)
		}
	})

	t.Run("case=encoded separators are refused", func(t *testing.T) {
		// Traefik leaves encoded slashes and backslashes encoded (and
		// %2e%2e%2f becomes ..%2F); the endpoint refuses them outright.
		for _, p := range []string{"/public%2F..%2Fadmin/users", "/public/%2e%2e%2fadmin/users", "/public/..%5Cadmin", "/public/%252e%252e/admin"} {
			before := pathRefused()
			status, seen, _ := gatewayGet(t, gw+p, bearer)
			if status != http.StatusForbidden {
				t.Fatalf("%s: got %d %+v", p, status, seen)
			}
			if after := pathRefused(); after != before+1 {
				t.Fatalf("%s: not refused as a path (%v -> %v)", p, before, after)
			}
		}
	})

	t.Run("case=forged forwarded headers do not move the judged request", func(t *testing.T) {
		forged := map[string]string{"X-Forwarded-Uri": "/public/orders", "X-Original-URI": "/public/orders",
			"X-Forwarded-Method": "GET", "X-Forwarded-Host": "elsewhere.example"}
		for k, v := range bearer {
			forged[k] = v
		}
		status, _, hdr := gatewayGet(t, gw+"/admin/users", forged)
		if status != http.StatusForbidden || hdr.Get("WWW-Authenticate") != insufficientScopeAdmin {
			t.Fatalf("the caller's forwarded headers were believed: %d %q", status, hdr.Get("WWW-Authenticate"))
		}
		forged["X-Forwarded-Uri"], forged["X-Original-URI"] = "/admin/users", "/admin/users"
		if status, seen, _ := gatewayGet(t, gw+"/public/orders", forged); status != http.StatusOK || seen.Path != "/public/orders" {
			t.Fatalf("got %d %+v", status, seen)
		}
	})

	t.Run("case=DPoP-bound token, nonce learnt through Traefik", func(t *testing.T) {
		c := dpoptest.NewES256(t)
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}
		auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:"+e2eSvcSecret))
		_, _, h := dpopDo(t, "POST", b.s.issuer+"/oauth2/token", form, auth, c.Proof(t, "POST", b.s.issuer+"/oauth2/token"))
		status, out, _ := dpopDo(t, "POST", b.s.issuer+"/oauth2/token", form, auth,
			c.Proof(t, "POST", b.s.issuer+"/oauth2/token", dpoptest.WithNonce(h.Get("DPoP-Nonce"))))
		if status != http.StatusOK || out["token_type"] != "DPoP" {
			t.Fatalf("token: %d %v", status, out)
		}
		tok := out["access_token"].(string)
		dpopHdr := func(opts ...dpoptest.Option) map[string]string {
			opts = append(opts, dpoptest.WithAccessToken(tok))
			return map[string]string{"Authorization": "DPoP " + tok, "DPoP": c.Proof(t, "GET", gw+"/public/orders", opts...)}
		}

		// Without the nonce: 401 use_dpop_nonce, the nonce relayed.
		status, _, h = gatewayGet(t, gw+"/public/orders", dpopHdr())
		nonce := h.Get("DPoP-Nonce")
		if status != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) || nonce == "" {
			t.Fatalf("without nonce: %d %q nonce %q", status, h.Get("WWW-Authenticate"), nonce)
		}
		proof := dpopHdr(dpoptest.WithNonce(nonce))
		status, seen, _ := gatewayGet(t, gw+"/public/orders?page=2", proof)
		if status != http.StatusOK || seen.ClientID != "svc" || seen.TokenType != "jwt" {
			t.Fatalf("DPoP through Traefik: %d %+v", status, seen)
		}
		// Two proofs: the endpoint's 400 reaches the caller as it is.
		fresh := dpopHdr(dpoptest.WithNonce(nonce))["DPoP"]
		status, out, h = dpopDo(t, http.MethodGet, gw+"/public/orders", nil, "DPoP "+tok, fresh, fresh)
		if status != http.StatusBadRequest || out["error"] != "invalid_request" || !strings.HasPrefix(h.Get("WWW-Authenticate"), "DPoP ") {
			t.Fatalf("two proofs: %d %v %q", status, out, h.Get("WWW-Authenticate"))
		}
		for name, hdr := range map[string]map[string]string{
			"replayed proof": proof,
			"as Bearer":      {"Authorization": "Bearer " + tok},
			"other path": {"Authorization": "DPoP " + tok,
				"DPoP": c.Proof(t, "GET", gw+"/public/other", dpoptest.WithAccessToken(tok), dpoptest.WithNonce(nonce))},
		} {
			status, _, h := gatewayGet(t, gw+"/public/orders", hdr)
			if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "DPoP ") {
				t.Fatalf("%s: %d %q", name, status, h.Get("WWW-Authenticate"))
			}
		}
	})
}

// TestREADMETraefikConfigIsTested: the README's Traefik configuration is
// the one TestE2EForwardAuthBehindTraefik runs.
func TestREADMETraefikConfigIsTested(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### Traefik\n")
	if !ok {
		t.Fatal("README.md has no Traefik section")
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("README.md's Traefik section has no yaml block")
	}
	block, _, _ = strings.Cut(block, "```")
	if want := fmt.Sprintf(traefikDynamic, "http://bulwark:4444", "api.example.com", "http://app:8080"); block != want {
		t.Fatalf("README's Traefik configuration differs from the tested one:\n%s\nwant:\n%s", block, want)
	}
}
