package main

// Issue 14 part 1 end to end: a real nginx runs auth_request against the
// assembled server's /forward-auth in front of a tiny upstream, on a real
// Postgres. Tokens come from the token endpoint through x/oauth2, are
// revoked through the revocation endpoint, API keys are made and revoked
// with the CLI.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite/token/jwt"

	"github.com/bulwark-auth/bulwark/server/dpop/dpoptest"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
	"golang.org/x/oauth2/clientcredentials"
)

const forwardAuthRules = `
rules:
  - name: health
    path: /healthz
    anonymous: true
  - name: public
    path: /public/**
    scopes: [api:read]
  - name: admin
    path: /admin/**
    scopes: [api:admin]
  - name: machine
    path: /machine/**
`

// nginxConf puts auth_request in front of upstream. The three forwarded
// headers are always set by nginx, so a caller cannot supply its own, and
// the identity headers are overwritten from the auth answer (an empty
// value removes a caller's forged header).
const nginxConf = `
daemon off;
master_process off;
worker_processes 1;
%[4]s
error_log %[1]s/error.log info;
pid %[1]s/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    server {
        listen %[2]s;
        location = /_auth {
            internal;
            proxy_pass %[3]s/forward-auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-Method $request_method;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Uri $request_uri;
            proxy_set_header X-Original-URI "";
        }
        location / {
            auth_request /_auth;
            auth_request_set $auth_subject $upstream_http_x_auth_subject;
            auth_request_set $auth_client $upstream_http_x_auth_client_id;
            auth_request_set $auth_scope $upstream_http_x_auth_scope;
            auth_request_set $auth_type $upstream_http_x_auth_token_type;
            proxy_set_header X-Auth-Subject $auth_subject;
            proxy_set_header X-Auth-Client-Id $auth_client;
            proxy_set_header X-Auth-Scope $auth_scope;
            proxy_set_header X-Auth-Token-Type $auth_type;
            proxy_pass %[5]s;
        }
    }
}
`

// startNginx runs nginx as a child process with a generated configuration
// and returns its base URL.
func startNginx(t *testing.T, authURL, upstreamURL string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			t.Fatal("nginx is not installed (.ci/run installs Debian's nginx-light)")
		}
	}
	dir := t.TempDir()
	addr := freePort(t)
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // the temp dir is root's; workers must reach it
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, addr, authURL, user, upstreamURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf) // #nosec G204 -- test: our own binary and config
	return startGateway(t, cmd, "http://"+addr, func() string {
		logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return string(logs)
	})
}

// startGateway runs a gateway process until the test ends and waits until
// base answers. logs tells what went wrong when it never does.
func startGateway(t *testing.T, cmd *exec.Cmd, base string, logs func() string) string {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if !eventually(func() bool {
		res, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		_ = res.Body.Close()
		return true
	}) {
		t.Fatalf("%s did not start: %s\n%s", filepath.Base(cmd.Path), out.String(), logs())
	}
	return base
}

// upstreamSeen is what the tiny upstream reports back.
type upstreamSeen struct {
	Path, Subject, ClientID, Scope, TokenType string
}

func gatewayGet(t *testing.T, u string, hdr map[string]string) (int, upstreamSeen, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var seen upstreamSeen
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &seen); err != nil {
			t.Fatalf("upstream answer %q: %v", body, err)
		}
	}
	return res.StatusCode, seen, res.Header
}

// counter reads a forward-auth counter from the server's registry.
func counter(t *testing.T, s *e2eServer, name, label, value string) float64 {
	t.Helper()
	res, err := http.Get(s.adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	prefix := fmt.Sprintf(`%s{%s="%s"} `, name, label, value)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not found", prefix)
	return 0
}

func TestE2EForwardAuthBehindNginx(t *testing.T) {
	b := startGatewayBackend(t, func(c *config) { c.ForwardAuthAuditSample = 1 })
	s, dsn := b.s, b.dsn
	gw := startNginx(t, s.issuer, "http://"+b.upstream)

	// The deny list vouches for tokens issued after its subscription, in a
	// later second than the one it subscribed in (startGatewayBackend
	// waited for the subscription).
	ready := time.Now().Unix()
	for time.Now().Unix() <= ready {
		time.Sleep(50 * time.Millisecond)
	}
	newToken := func() string { return b.token(t) }
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

	t.Run("case=valid JWT passes with identity headers", func(t *testing.T) {
		status, seen, _ := gatewayGet(t, gw+"/public/orders", bearer(newToken()))
		if status != http.StatusOK || seen.Subject != "svc" || seen.ClientID != "svc" || seen.Scope != "api:read" || seen.TokenType != "jwt" {
			t.Fatalf("got %d %+v", status, seen)
		}
	})

	t.Run("case=forged identity headers are overwritten", func(t *testing.T) {
		hdr := bearer(newToken())
		hdr["X-Auth-Subject"] = "admin"
		hdr["X-Auth-Scope"] = "api:admin"
		status, seen, _ := gatewayGet(t, gw+"/public/orders", hdr)
		if status != http.StatusOK || seen.Subject != "svc" || seen.Scope != "api:read" {
			t.Fatalf("forged headers reached the upstream: %d %+v", status, seen)
		}
		status, seen, _ = gatewayGet(t, gw+"/healthz", map[string]string{"X-Auth-Subject": "admin", "X-Auth-Token-Type": "jwt"})
		if status != http.StatusOK || seen.Subject != "" || seen.TokenType != "" {
			t.Fatalf("forged headers reached the upstream of an anonymous route: %d %+v", status, seen)
		}
	})

	t.Run("case=no credential is a bare challenge", func(t *testing.T) {
		status, _, hdr := gatewayGet(t, gw+"/public/orders", nil)
		if status != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") != `Bearer realm="bulwark"` {
			t.Fatalf("got %d %q", status, hdr.Get("WWW-Authenticate"))
		}
	})

	t.Run("case=missing scope is 403 naming the scope", func(t *testing.T) {
		tok := newToken()
		status, _, _ := gatewayGet(t, gw+"/admin/users", bearer(tok))
		if status != http.StatusForbidden {
			t.Fatalf("got %d %s", status, s.logs.String()[max(0, len(s.logs.String())-3000):])
		}
		// nginx does not relay a 403's headers; ask the endpoint itself.
		req, _ := http.NewRequest(http.MethodGet, s.issuer+"/forward-auth", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Forwarded-Uri", "/admin/users")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		want := `Bearer realm="bulwark", error="insufficient_scope", error_description="The request requires scope api:admin.", scope="api:admin"`
		if res.StatusCode != http.StatusForbidden || res.Header.Get("WWW-Authenticate") != want {
			t.Fatalf("got %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("case=path traversal is normalized before matching", func(t *testing.T) {
		tok := newToken()
		for _, p := range []string{"/public/../admin/users", "/public/./../admin/users", "/public//..//admin/users"} {
			status, seen, _ := gatewayGet(t, gw+p, bearer(tok))
			if status != http.StatusForbidden {
				t.Fatalf("%s: got %d %+v (the /public rule matched)", p, status, seen)
			}
		}
		for _, p := range []string{"/public/%2e%2e/admin/users", "/public%2F..%2Fadmin/users", "/public/..%5Cadmin"} {
			status, seen, _ := gatewayGet(t, gw+p, bearer(tok))
			if status != http.StatusForbidden {
				t.Fatalf("%s: got %d %+v", p, status, seen)
			}
		}
		if n := counter(t, s, "bulwark_forward_auth_denied_total", "reason", "path_refused"); n < 3 {
			t.Fatalf("encoded tricks not refused as such: %v", n)
		}
	})

	t.Run("case=unmatched route is denied", func(t *testing.T) {
		if status, _, _ := gatewayGet(t, gw+"/elsewhere", bearer(newToken())); status != http.StatusForbidden {
			t.Fatalf("got %d", status)
		}
	})

	t.Run("case=expired JWT", func(t *testing.T) {
		now := time.Now()
		claims := jwt.MapClaims{
			"iss": s.issuer, "sub": "svc", "client_id": "svc", "scope": "api:read", "aud": []string{"svc"},
			"jti": "expired-1", "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(),
		}
		hdr := jwt.NewHeaders()
		hdr.Add("typ", "at+jwt")
		tok, _, err := s.app.ring.Signer("ES256").Generate(context.Background(), claims, hdr)
		if err != nil {
			t.Fatal(err)
		}
		before := counter(t, s, "bulwark_forward_auth_denied_total", "reason", "expired")
		status, _, h := gatewayGet(t, gw+"/public/orders", bearer(tok))
		if status != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("got %d %q", status, h.Get("WWW-Authenticate"))
		}
		if after := counter(t, s, "bulwark_forward_auth_denied_total", "reason", "expired"); after != before+1 {
			t.Fatalf("not denied as expired: %v -> %v", before, after)
		}
	})

	t.Run("case=DPoP-bound token with its proof through nginx", func(t *testing.T) {
		// The proof names the URL the client called: the gateway's.
		c := dpoptest.NewES256(t)
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}
		auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:"+e2eSvcSecret))
		_, _, h := dpopDo(t, "POST", s.issuer+"/oauth2/token", form, auth, c.Proof(t, "POST", s.issuer+"/oauth2/token"))
		status, out, _ := dpopDo(t, "POST", s.issuer+"/oauth2/token", form, auth,
			c.Proof(t, "POST", s.issuer+"/oauth2/token", dpoptest.WithNonce(h.Get("DPoP-Nonce"))))
		if status != http.StatusOK || out["token_type"] != "DPoP" {
			t.Fatalf("token: %d %v", status, out)
		}
		tok := out["access_token"].(string)
		proof := c.Proof(t, "GET", gw+"/public/orders", dpoptest.WithAccessToken(tok))
		status, seen, _ := gatewayGet(t, gw+"/public/orders?page=2", map[string]string{"Authorization": "DPoP " + tok, "DPoP": proof})
		if status != http.StatusOK || seen.ClientID != "svc" {
			t.Fatalf("DPoP through nginx: %d %+v", status, seen)
		}
		for name, hdr := range map[string]map[string]string{
			"replayed proof": {"Authorization": "DPoP " + tok, "DPoP": proof},
			"as Bearer":      {"Authorization": "Bearer " + tok},
			"other path":     {"Authorization": "DPoP " + tok, "DPoP": c.Proof(t, "GET", gw+"/public/other", dpoptest.WithAccessToken(tok))},
		} {
			status, _, h := gatewayGet(t, gw+"/public/orders", hdr)
			if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "DPoP ") {
				t.Fatalf("%s: %d %q", name, status, h.Get("WWW-Authenticate"))
			}
		}
	})

	t.Run("case=revoked JWT is denied through the deny list", func(t *testing.T) {
		tok := newToken()
		if status, _, _ := gatewayGet(t, gw+"/public/orders", bearer(tok)); status != http.StatusOK {
			t.Fatalf("fresh token refused: %d", status)
		}
		lookups := counter(t, s, "bulwark_forward_auth_revocation_lookups_total", "result", "revoked") +
			counter(t, s, "bulwark_forward_auth_revocation_lookups_total", "result", "valid")
		if status, out := s.post("/oauth2/revoke", url.Values{"token": {tok}}, "svc", e2eSvcSecret); status != http.StatusOK {
			t.Fatalf("revoke: %d %v", status, out)
		}
		revokedAt := time.Now()
		if !eventually(func() bool {
			status, _, _ := gatewayGet(t, gw+"/public/orders", bearer(tok))
			return status == http.StatusUnauthorized
		}) {
			t.Fatal("revoked token still accepted")
		}
		t.Logf("revocation took effect after %s", time.Since(revokedAt))
		after := counter(t, s, "bulwark_forward_auth_revocation_lookups_total", "result", "revoked") +
			counter(t, s, "bulwark_forward_auth_revocation_lookups_total", "result", "valid")
		if after != lookups {
			t.Fatalf("the database was consulted (%v lookups): the deny list did not decide", after-lookups)
		}
		if n := counter(t, s, "bulwark_forward_auth_denied_total", "reason", "revoked"); n < 1 {
			t.Fatalf("denial not counted as revoked: %v", n)
		}
		// Every token of this test was issued after the subscription:
		// the database was never needed.
		if n := after + counter(t, s, "bulwark_forward_auth_revocation_lookups_total", "result", "error"); n != 0 {
			t.Fatalf("%v revocation lookups in the database", n)
		}
	})

	key := cliCreateKey(t, dsn, "--name", "gateway key", "--owner-type", "client", "--owner-id", "svc", "--scopes", "introspect")

	t.Run("case=valid API key, both headers", func(t *testing.T) {
		for _, hdr := range []map[string]string{{"X-API-Key": key}, bearer(key)} {
			status, seen, _ := gatewayGet(t, gw+"/machine/jobs", hdr)
			if status != http.StatusOK || seen.TokenType != "api_key" || seen.ClientID != "svc" || !strings.HasPrefix(seen.Subject, "apikey:") || seen.Scope != "introspect" {
				t.Fatalf("got %d %+v", status, seen)
			}
		}
		if status, _, _ := gatewayGet(t, gw+"/public/orders", map[string]string{"X-API-Key": key}); status != http.StatusForbidden {
			t.Fatalf("key without api:read passed /public: %d", status)
		}
	})

	t.Run("case=revoked API key", func(t *testing.T) {
		id, _ := s.introspect(key)["api_key_id"].(string)
		var out bytes.Buffer
		if err := run(context.Background(), []string{"apikeys", "--database-url", dsn, "revoke", id}, &out, &out); err != nil {
			t.Fatalf("revoke: %v %s", err, out.String())
		}
		if !eventually(func() bool {
			status, _, _ := gatewayGet(t, gw+"/machine/jobs", map[string]string{"X-API-Key": key})
			return status == http.StatusUnauthorized
		}) {
			t.Fatal("revoked API key still accepted")
		}
		if n := counter(t, s, "bulwark_forward_auth_denied_total", "reason", "api_key_revoked"); n < 1 {
			t.Fatalf("denial not counted as a revoked key: %v", n)
		}
	})

	t.Run("case=concurrent checks around a revocation", func(t *testing.T) {
		tok := newToken()
		check := func(int) int {
			req, _ := http.NewRequest(http.MethodGet, gw+"/public/orders", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return 0
			}
			_ = res.Body.Close()
			return res.StatusCode
		}
		const n = 32
		if ok := storagetest.Count(storagetest.Together(n, check), func(c int) bool { return c == http.StatusOK }); ok != n {
			t.Fatalf("%d of %d concurrent checks of a valid token passed", ok, n)
		}
		if status, out := s.post("/oauth2/revoke", url.Values{"token": {tok}}, "svc", e2eSvcSecret); status != http.StatusOK {
			t.Fatalf("revoke: %d %v", status, out)
		}
		if !eventually(func() bool { return check(0) == http.StatusUnauthorized }) {
			t.Fatal("revoked token still accepted")
		}
		if denied := storagetest.Count(storagetest.Together(n, check), func(c int) bool { return c == http.StatusUnauthorized }); denied != n {
			t.Fatalf("%d of %d concurrent checks of a revoked token denied", denied, n)
		}
	})

	t.Run("case=denials are audited when sampled", func(t *testing.T) {
		if n := counter(t, s, "bulwark_forward_auth_denied_total", "reason", "no_rule"); n < 1 {
			t.Fatalf("no_rule denial not counted: %v", n)
		}
		if !strings.Contains(s.logs.String(), "forward_auth.denied") {
			t.Fatal("no denial audit event")
		}
	})
}

// A token revoked at one replica is refused by another replica's
// forward-auth through the NOTIFY channel, without a database lookup.
func TestE2EForwardAuthRevocationReachesOtherReplica(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(forwardAuthRules), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startE2E(t, dsn, func(c *config) { c.ForwardAuthRules = rulesPath })
	// Replicas share one issuer.
	b := startE2E(t, dsn, func(c *config) { c.ForwardAuthRules = rulesPath; c.Issuer = a.issuer })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = b.app.forwardAuth.run(ctx) }()
	if !eventually(b.app.forwardAuth.revocations.Ready) {
		t.Fatal("replica b's deny list never subscribed")
	}
	for ready := time.Now().Unix(); time.Now().Unix() <= ready; {
		time.Sleep(50 * time.Millisecond)
	}
	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: e2eSvcSecret, TokenURL: a.issuer + "/oauth2/token", Scopes: []string{"api:read"}}
	tok, err := cc.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkAtB := func() int {
		req, _ := http.NewRequest(http.MethodGet, b.srv.URL+"/forward-auth", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("X-Forwarded-Uri", "/public/orders")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return res.StatusCode
	}
	if got := checkAtB(); got != http.StatusOK {
		t.Fatalf("token from replica a refused at b: %d", got)
	}
	if status, out := a.post("/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, "svc", e2eSvcSecret); status != http.StatusOK {
		t.Fatalf("revoke at a: %d %v", status, out)
	}
	revokedAt := time.Now()
	if !eventually(func() bool { return checkAtB() == http.StatusUnauthorized }) {
		t.Fatal("revocation at a never reached b")
	}
	t.Logf("revocation at a took effect at b after %s", time.Since(revokedAt))
	lookups := 0.0
	for _, r := range []string{"revoked", "valid", "error"} {
		lookups += counter(t, b, "bulwark_forward_auth_revocation_lookups_total", "result", r)
	}
	if lookups != 0 {
		t.Fatalf("replica b consulted the database %v times", lookups)
	}
}

// --forward-auth-addr moves the endpoint to a listener of its own.
func TestE2EForwardAuthOwnListener(t *testing.T) {
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(forwardAuthRules), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	s := startE2E(t, pgtest.NewDatabase(t), func(c *config) { c.ForwardAuthRules = rulesPath; c.ForwardAuthAddr = addr })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.app.forwardAuth.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("forward-auth listener: %v", err)
		}
	})
	check := func(base string) int {
		req, _ := http.NewRequest(http.MethodGet, base+"/forward-auth", nil)
		req.Header.Set("X-Forwarded-Uri", "/healthz")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		_ = res.Body.Close()
		return res.StatusCode
	}
	if !eventually(func() bool { return check("http://"+addr) == http.StatusOK }) {
		t.Fatal("own listener never answered")
	}
	if got := check(s.issuer); got != http.StatusNotFound {
		t.Fatalf("the public listener still serves forward-auth: %d", got)
	}
}
