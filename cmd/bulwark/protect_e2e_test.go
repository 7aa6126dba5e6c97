package main

// Issue #5's controls, checked on the assembled server (Postgres, real
// HTTP): every rule must hold for endpoints as users reach them, not only in
// the middleware's own unit tests.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// fakeClock is a settable clock shared by every component of one server.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func rawPost(t *testing.T, u, contentType, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	return res, string(b)
}

// Successful traffic is limited per client (never per address).
func TestE2ERateLimitAnswers429WithRetryAfter(t *testing.T) {
	s := startE2E(t, pgtest.NewDatabase(t), func(c *config) {
		c.ClientRateLimits = map[string]protect.Limit{protect.ClassToken: {Rate: 0.01, Burst: 2}}
	})
	form := url.Values{"grant_type": {"client_credentials"}}
	var last int
	var lastBody map[string]any
	var retry string
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest(http.MethodPost, s.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", e2eSvcSecret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		last, retry = res.StatusCode, res.Header.Get("Retry-After")
		lastBody = nil
		_ = json.NewDecoder(res.Body).Decode(&lastBody)
		_ = res.Body.Close()
		if i < 2 && last != 200 {
			t.Fatalf("request %d within the burst: %d %v", i, last, lastBody)
		}
	}
	if last != http.StatusTooManyRequests || retry == "" || lastBody["error"] == nil {
		t.Fatalf("over the limit: status %d Retry-After %q body %v", last, retry, lastBody)
	}
	events, err := s.app.store.ListAudit(context.Background(), storage.AuditFilter{Event: "ratelimit.blocked"})
	if err != nil || len(events) == 0 {
		t.Fatalf("a rate-limit block must be audited: %v %v", events, err)
	}
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="[^"]*"`)

// loginAttempt posts one sign-in with a fresh CSRF token from the page.
func loginAttempt(t *testing.T, s *e2eServer, c *http.Client, user, pass string) (int, string, string) {
	t.Helper()
	res, err := c.Get(s.issuer + "/login")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	m := e2eHidden.FindAllStringSubmatch(string(b), -1)
	form := url.Values{"username": {user}, "password": {pass}}
	for _, f := range m {
		form.Set(f[1], f[2])
	}
	res, err = c.PostForm(s.issuer+"/login", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	return res.StatusCode, res.Header.Get("Retry-After"), string(body)
}

func TestE2ELoginThrottleLockAndUniformAnswers(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	s := startE2E(t, pgtest.NewDatabase(t), func(c *config) { c.now = clock.Now })
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}

	normalize := func(body, user string) string {
		body = csrfField.ReplaceAllString(body, "")
		return strings.ReplaceAll(body, user, "USER")
	}
	// A wrong password for a real user and any password for a made-up
	// user get the same status and the same page.
	st1, _, b1 := loginAttempt(t, s, c, "alice", "wrong-password-1")
	st2, _, b2 := loginAttempt(t, s, c, "mallory-does-not-exist", "wrong-password-1")
	if st1 != st2 || normalize(b1, "alice") != normalize(b2, "mallory-does-not-exist") {
		t.Fatalf("known and unknown usernames answered differently: %d vs %d", st1, st2)
	}

	// Each attempt is counted before the password is checked: after 10
	// within the window (two above, eight here) the next is refused with
	// 429 + Retry-After, even with the right password.
	for i := 0; i < 8; i++ {
		if st, _, _ := loginAttempt(t, s, c, "alice", "wrong"); st != http.StatusUnauthorized {
			t.Fatalf("attempt %d within the limit: %d", i+3, st)
		}
	}
	loginAttempt(t, s, c, "alice", "wrong") // the 10th
	st, retry, _ := loginAttempt(t, s, c, "alice", e2ePassword)
	if st != http.StatusTooManyRequests || retry == "" {
		t.Fatalf("after 10 failures the right password must get 429 + Retry-After, got %d %q", st, retry)
	}
	// Unknown usernames are locked identically.
	for i := 0; i < 9; i++ {
		loginAttempt(t, s, c, "mallory-does-not-exist", "wrong")
	}
	if st, retry, _ := loginAttempt(t, s, c, "mallory-does-not-exist", "x"); st != http.StatusTooManyRequests || retry == "" {
		t.Fatalf("unknown user must be locked the same way, got %d %q", st, retry)
	}
	// The lock expires.
	clock.Advance(16 * time.Minute)
	if st, _, body := loginAttempt(t, s, c, "alice", e2ePassword); st != http.StatusOK {
		t.Fatalf("after the lock expires the right password works, got %d: %.200s", st, body)
	}
}

func TestE2EStrictInput(t *testing.T) {
	s := startE2E(t, pgtest.NewDatabase(t))
	auth := map[string]string{"Authorization": "Basic " + basic("svc", e2eSvcSecret)}
	cases := []struct {
		name, path, ctype, body string
		status                  int
		want                    string
	}{
		{"case=duplicate parameter in form", "/oauth2/token", "application/x-www-form-urlencoded", "grant_type=client_credentials&scope=a&scope=b", 400, "duplicate parameter: scope"},
		{"case=oversized body", "/oauth2/token", "application/x-www-form-urlencoded", "grant_type=client_credentials&x=" + strings.Repeat("a", 70<<10), 413, "too large"},
		{"case=json to a form endpoint", "/oauth2/token", "application/json", `{"grant_type":"client_credentials"}`, 400, "content type"},
		{"case=malformed form", "/oauth2/introspect", "application/x-www-form-urlencoded", "token=%zz", 400, "invalid_request"},
		{"case=overlong parameter", "/oauth2/revoke", "application/x-www-form-urlencoded", "token=" + strings.Repeat("a", 3<<10), 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, body := rawPost(t, s.issuer+tc.path, tc.ctype, tc.body, auth)
			if res.StatusCode != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %s, want %d containing %q", res.StatusCode, body, tc.status, tc.want)
			}
		})
	}
	// Duplicate query parameters at the authorization endpoint.
	res, err := http.Get(s.issuer + "/oauth2/auth?client_id=web&client_id=svc&response_type=code")
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != 400 {
		t.Fatalf("duplicate query parameter: %d", res.StatusCode)
	}
}

func basic(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

func TestE2ESecurityHeadersByResponseKind(t *testing.T) {
	s := startE2E(t, pgtest.NewDatabase(t))
	common := map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
	cases := []struct {
		name, method, path string
		form               url.Values
		csp                string
		noStore            bool
	}{
		{"case=token (carries a token)", http.MethodPost, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, protect.CSPAPI, true},
		{"case=introspection", http.MethodPost, "/oauth2/introspect", url.Values{"token": {"x"}}, protect.CSPAPI, true},
		{"case=login page", http.MethodGet, "/login", nil, protect.CSPPage, true},
		{"case=discovery", http.MethodGet, "/.well-known/openid-configuration", nil, protect.CSPAPI, false},
		{"case=JWKS", http.MethodGet, "/.well-known/jwks.json", nil, protect.CSPAPI, false},
		{"case=not found", http.MethodGet, "/nope", nil, protect.CSPAPI, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var res *http.Response
			if tc.method == http.MethodPost {
				res, _ = rawPost(t, s.issuer+tc.path, "application/x-www-form-urlencoded", tc.form.Encode(), map[string]string{"Authorization": "Basic " + basic("svc", e2eSvcSecret)})
			} else {
				r, err := http.Get(s.issuer + tc.path)
				if err != nil {
					t.Fatal(err)
				}
				_ = r.Body.Close()
				res = r
			}
			for k, v := range common {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			got := res.Header.Get("Content-Security-Policy")
			switch {
			case tc.csp == protect.CSPPage:
				// Pages may tighten the policy further (the public pages
				// allow no script at all), never loosen it.
				if !strings.Contains(got, "frame-ancestors 'none'") || strings.Contains(got, "unsafe-inline") || strings.Contains(got, "unsafe-eval") {
					t.Errorf("page CSP too weak: %q", got)
				}
			case got != tc.csp:
				t.Errorf("CSP = %q, want %q", got, tc.csp)
			}
			if tc.noStore && (res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Pragma") != "no-cache") {
				t.Errorf("want Cache-Control no-store and Pragma no-cache, got %q / %q", res.Header.Get("Cache-Control"), res.Header.Get("Pragma"))
			}
			if res.Header.Get("Server") != "" {
				t.Errorf("version banner: Server %q", res.Header.Get("Server"))
			}
			if res.Header.Get("Strict-Transport-Security") != "" {
				t.Error("HSTS must only be sent over TLS")
			}
		})
	}
}

func TestServeRefusesNonLoopbackHTTPIssuer(t *testing.T) {
	err := run(context.Background(), []string{"serve", "--issuer", "http://auth.example.com", "--database-url", "postgres://unused", "--secret", strings.Repeat("s", 40)}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "https is required") {
		t.Fatalf("want a clear refusal of the http issuer, got %v", err)
	}
	// Loopback http and https are fine as far as the issuer goes.
	for _, ok := range []string{"http://127.0.0.1:4444", "https://auth.example.com"} {
		c := config{Issuer: ok, DatabaseURL: "x", AccessTokenLifespan: time.Minute, RefreshTokenLifespan: time.Hour, IDTokenLifespan: time.Minute, AuthCodeLifespan: time.Minute, LoginLifespan: time.Hour, LogFormat: "json", IDTokenAlg: "RS256", AccessTokenAlg: "ES256", KeyRetention: time.Hour}
		if err := c.finish(strings.Repeat("s", 40), "", "ES256,RS256"); err != nil {
			t.Fatalf("%s refused: %v", ok, err)
		}
	}
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	c := config{Issuer: "ftp://x", TLSCert: "a", AuthCodeLifespan: time.Hour, LogFormat: "xml", IDTokenAlg: "HS256", AccessTokenAlg: "ES256",
		DPoPWindow: time.Hour, dpopNonceRaw: "sometimes"}
	err := c.finish("short", "", "ES256")
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"at least 32", "DATABASE_URL", "must use https", "--tls-cert and --tls-key", "auth code lifespan", "log format", "HS256", "key retention",
		"--dpop-proof-window", "--dpop-nonce"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in:\n%v", want, err)
		}
	}
}

// TestE2ENoSecretInLogsOrAudit runs the flows that handle every kind of
// secret — client secrets, passwords, codes, access, refresh and ID tokens,
// session cookies — then searches every log line and audit row for them.
func TestE2ENoSecretInLogsOrAudit(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startE2E(t, dsn)
	ctx := context.Background()
	secrets := []string{e2eSvcSecret, e2eWebSecret, e2ePassword, "wrong-password-xyz", e2eMasterSecret}

	// API keys: created, used as caller credential and as the token,
	// exchanged for a JWT, rotated by the holder, then presented revoked.
	rsKey := cliCreateKey(t, dsn, "--name", "rs", "--owner-type", "service", "--owner-id", "rs", "--scopes", "introspect")
	svcKey := cliCreateKey(t, dsn, "--name", "svc", "--owner-type", "client", "--owner-id", "svc", "--scopes", "admin:audit:read")
	secrets = append(secrets, rsKey, svcKey)
	bearerPost(t, s.issuer+"/oauth2/introspect", rsKey, url.Values{"token": {svcKey}})
	_, ex := s.post("/oauth2/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token": {svcKey}, "subject_token_type": {"urn:bulwark:params:oauth:token-type:api-key"}}, "", "")
	if at, _ := ex["access_token"].(string); at != "" {
		secrets = append(secrets, at)
	} else {
		t.Fatalf("exchange failed: %v", ex)
	}
	if _, rot, _ := bearerPost(t, s.issuer+"/apikeys/self/rotate", svcKey, nil); rot["api_key"] != nil {
		secrets = append(secrets, rot["api_key"].(string))
	} else {
		t.Fatalf("self-rotate failed: %v", rot)
	}
	bearerPost(t, s.issuer+"/oauth2/introspect", "bwk_AAAAAAAAAAAA_"+strings.Repeat("B", 49), url.Values{"token": {"x"}})

	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: e2eSvcSecret, TokenURL: s.issuer + "/oauth2/token"}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, tok.AccessToken)
	s.introspect(tok.AccessToken)
	_, _ = s.post("/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, "svc", e2eSvcSecret)
	_, _ = s.post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, "svc", "wrong-client-secret-abc")
	secrets = append(secrets, "wrong-client-secret-abc")

	jar, _ := cookiejar.New(nil)
	loginAttempt(t, s, &http.Client{Jar: jar}, "alice", "wrong-password-xyz")

	conf := oauth2.Config{ClientID: "web", ClientSecret: e2eWebSecret, RedirectURL: "http://127.0.0.1:9999/callback",
		Endpoint: oauth2.Endpoint{AuthURL: s.issuer + "/oauth2/auth", TokenURL: s.issuer + "/oauth2/token"}, Scopes: []string{"openid", "offline_access"}}
	verifier := oauth2.GenerateVerifier()
	redirect := s.login(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)))
	code := redirect.Query().Get("code")
	tok, err = conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	secrets = append(secrets, code, verifier, tok.AccessToken, tok.RefreshToken, idToken)
	tok.Expiry = time.Now().Add(-time.Minute)
	refreshed, err := conf.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, refreshed.AccessToken, refreshed.RefreshToken)
	// Reuse, to log the reuse path too.
	_, _ = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()

	events, err := s.app.store.ListAudit(ctx, storage.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) < 5 {
		t.Fatalf("expected audit events for the flows, got %d", len(events))
	}
	auditJSON, _ := json.Marshal(events)
	logs := s.logs.String()
	if !strings.Contains(logs, `"route":"/oauth2/token"`) {
		t.Logf("captured log sample: %.500s", logs)
		t.Fatal("the access log was not captured; the scan would prove nothing")
	}
	for _, secret := range secrets {
		if secret == "" {
			t.Fatal("a secret under test is empty")
		}
		// Check the secret and its first and last 16 characters (a
		// truncated token is still a leak).
		for _, needle := range []string{secret, secret[:min(len(secret), 16)], secret[max(0, len(secret)-16):]} {
			if strings.Contains(logs, needle) {
				t.Errorf("a secret (%d chars) appears in the logs", len(secret))
			}
			if strings.Contains(string(auditJSON), needle) {
				t.Errorf("a secret (%d chars) appears in the audit trail", len(secret))
			}
		}
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// paths and the pool that trusts the certificate.
func selfSigned(t *testing.T) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestE2ETLSListener(t *testing.T) {
	certPath, keyPath, pool := selfSigned(t)
	pub, adm := freePort(t), freePort(t)
	s := startE2E(t, pgtest.NewDatabase(t), func(c *config) {
		c.TLSCert, c.TLSKey, c.PublicAddr, c.AdminAddr = certPath, keyPath, pub, adm
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.app.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	dial := func(min, max uint16) (*tls.Conn, error) {
		d := &net.Dialer{Timeout: 2 * time.Second}
		return tls.DialWithDialer(d, "tcp", pub, &tls.Config{RootCAs: pool, MinVersion: min, MaxVersion: max, ServerName: "127.0.0.1"}) //nolint:gosec // deliberately offering old versions to prove the server refuses them
	}
	var conn *tls.Conn
	var err error
	for i := 0; i < 50; i++ { // the listener starts asynchronously
		if conn, err = dial(tls.VersionTLS12, tls.VersionTLS13); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("negotiated %x, want TLS 1.3", v)
	}
	_ = conn.Close()
	if c, err := dial(tls.VersionTLS10, tls.VersionTLS11); err == nil {
		_ = c.Close()
		t.Fatal("TLS 1.1 must be refused")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	res, err := client.Get(fmt.Sprintf("https://%s/.well-known/jwks.json", pub))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.Header.Get("Strict-Transport-Security") == "" {
		t.Fatal("HSTS must be sent over TLS")
	}
}
