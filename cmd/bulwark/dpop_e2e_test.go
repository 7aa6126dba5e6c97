package main

// DPoP (RFC 9449) end to end: two replicas of the assembled server on one
// Postgres database behind one issuer URL (as behind a load balancer), a
// public client registered with dpop_bound_access_tokens, and an
// independent DPoP client: no maintained Go DPoP client module is
// available, so proofs are made by server/dpop/dpoptest with
// lestrrat-go/jwx (the server verifies with go-jose); golang.org/x/oauth2
// builds the authorization request and PKCE, and jwx verifies the access
// tokens against the published JWKS, as a resource server would.

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"

	"github.com/bulwark-auth/bulwark/server/dpop/dpoptest"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

// dpopDo sends a request with an optional Authorization value and DPoP
// header values, and returns the status, the JSON body and the headers.
func dpopDo(t *testing.T, method, u string, form url.Values, authz string, proofs ...string) (int, map[string]any, http.Header) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	return doJSON(t, req)
}

// startReplicaPair starts two replicas on one fresh database; the second
// believes it is served under the first's issuer URL, as every replica
// behind a load balancer does.
func startReplicaPair(t *testing.T) (*e2eServer, *e2eServer) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	a := startE2E(t, dsn)
	b := startE2E(t, dsn, func(c *config) { c.Issuer = a.issuer })
	return a, b
}

const spaRedirect = "http://127.0.0.1:9999/spa"

// addDPoPPublicClient registers a public client that must use DPoP.
func addDPoPPublicClient(t *testing.T, s *e2eServer) *oauth2.Config {
	t.Helper()
	err := s.app.store.CreateClient(context.Background(), &storage.Client{
		ID: "spa", Name: "SPA", RedirectURIs: []string{spaRedirect},
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		Scopes: []string{"openid", "offline_access"}, TokenEndpointAuthMethod: storage.AuthMethodNone,
		ApplicationType: storage.AppTypeWeb, DPoPBoundAccessTokens: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &oauth2.Config{ClientID: "spa", RedirectURL: spaRedirect, Scopes: []string{"openid", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: s.issuer + "/oauth2/auth", TokenURL: s.issuer + "/oauth2/token"}}
}

func TestE2EDPoP(t *testing.T) {
	a, b := startReplicaPair(t)
	iss := a.issuer
	tokenURL, userinfoURL := iss+"/oauth2/token", iss+"/userinfo"

	// Discovery advertises the proof algorithms.
	_, disc, _ := dpopDo(t, "GET", iss+"/.well-known/openid-configuration", nil, "")
	if algs, _ := disc["dpop_signing_alg_values_supported"].([]any); len(algs) == 0 {
		t.Fatalf("discovery: %v", disc["dpop_signing_alg_values_supported"])
	}

	conf := addDPoPPublicClient(t, a)
	client, other := dpoptest.NewES256(t), dpoptest.NewEdDSA(t)
	verifier := oauth2.GenerateVerifier()
	loc := a.login(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)))
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {spaRedirect},
		"client_id": {"spa"}, "code_verifier": {verifier}}

	// dpop_bound_access_tokens: no proof, no token (and the code survives).
	if status, out, _ := dpopDo(t, "POST", a.issuer+"/oauth2/token", form, ""); status != 400 || out["error"] != "invalid_dpop_proof" {
		t.Fatalf("without a proof: %d %v", status, out)
	}
	// The nonce round trip, on replica A ...
	status, out, h := dpopDo(t, "POST", a.issuer+"/oauth2/token", form, "", client.Proof(t, "POST", tokenURL))
	nonce := h.Get("DPoP-Nonce")
	if status != 400 || out["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("without a nonce: %d %v %q", status, out, nonce)
	}
	// ... and the nonce A issued is good on replica B.
	status, out, _ = dpopDo(t, "POST", b.issuer+"/oauth2/token", form, "", client.Proof(t, "POST", tokenURL, dpoptest.WithNonce(nonce)))
	if status != 200 || out["token_type"] != "DPoP" {
		t.Fatalf("code exchange: %d %v", status, out)
	}
	at, rt := out["access_token"].(string), out["refresh_token"].(string)

	// JWKS-only path: the resource server verifies the JWT offline (jwx,
	// against the published JWKS) and finds cnf.jkt.
	claims := a.verifyAccessToken(at)
	cnf, _ := claims["cnf"].(map[string]any)
	if cnf["jkt"] != client.JKT(t) {
		t.Fatalf("cnf %v, want jkt %s", claims["cnf"], client.JKT(t))
	}
	// Introspection reports the binding.
	if in := a.introspect(at); in["token_type"] != "DPoP" || in["cnf"].(map[string]any)["jkt"] != client.JKT(t) {
		t.Fatalf("introspection: %v", in)
	}

	// Userinfo: DPoP scheme and a proof by the key. The same proof is then
	// refused on the other replica: the jti is in Postgres.
	proof := client.Proof(t, "GET", userinfoURL, dpoptest.WithAccessToken(at))
	if status, out, _ := dpopDo(t, "GET", a.issuer+"/userinfo", nil, "DPoP "+at, proof); status != 200 || out["sub"] == nil {
		t.Fatalf("userinfo: %d %v", status, out)
	}
	status, _, h = dpopDo(t, "GET", b.issuer+"/userinfo", nil, "DPoP "+at, proof)
	if status != 401 || !strings.Contains(strings.Join(h.Values("WWW-Authenticate"), " "), `error="invalid_dpop_proof"`) {
		t.Fatalf("replay on the other replica: %d %q", status, h.Values("WWW-Authenticate"))
	}
	// As a bearer token it is worthless.
	if status, _, h := dpopDo(t, "GET", b.issuer+"/userinfo", nil, "Bearer "+at); status != 401 ||
		!strings.Contains(strings.Join(h.Values("WWW-Authenticate"), " "), `DPoP realm="bulwark"`) {
		t.Fatalf("as Bearer: %d %q", status, h.Values("WWW-Authenticate"))
	}

	// Refresh: bound to the key. Another key is refused (and the refresh
	// token survives); the right one gets a new DPoP-bound token.
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"spa"}}
	if status, out, _ := dpopDo(t, "POST", b.issuer+"/oauth2/token", refresh, "", other.Proof(t, "POST", tokenURL, dpoptest.WithNonce(nonce))); status != 400 || out["error"] != "invalid_dpop_proof" {
		t.Fatalf("refresh with another key: %d %v", status, out)
	}
	status, out, _ = dpopDo(t, "POST", b.issuer+"/oauth2/token", refresh, "", client.Proof(t, "POST", tokenURL, dpoptest.WithNonce(nonce)))
	if status != 200 || out["token_type"] != "DPoP" {
		t.Fatalf("refresh: %d %v", status, out)
	}
	at = out["access_token"].(string)

	// The resource server of the README example accepts the proof once.
	rs := exampleResourceServer(t, a)
	rsURL := rs.URL + "/orders"
	rsProof := client.Proof(t, "GET", rsURL, dpoptest.WithAccessToken(at))
	if status, _, _ := dpopDo(t, "GET", rsURL, nil, "DPoP "+at, rsProof); status != 200 {
		t.Fatalf("example resource server: %d", status)
	}
	for name, hdr := range map[string][]string{
		"replayed":        {rsProof},
		"another key":     {other.Proof(t, "GET", rsURL, dpoptest.WithAccessToken(at))},
		"another URL":     {client.Proof(t, "GET", rs.URL+"/admin", dpoptest.WithAccessToken(at))},
		"another token":   {client.Proof(t, "GET", rsURL, dpoptest.WithAccessToken(at+"x"))},
		"no proof at all": nil,
	} {
		if status, _, _ := dpopDo(t, "GET", rsURL, nil, "DPoP "+at, hdr...); status != 401 {
			t.Fatalf("example resource server accepted a proof with %s: %d", name, status)
		}
	}
}

// TestE2EDPoPProofOnceUnderConcurrency releases N token requests carrying
// the same proof together, half to each replica: one INSERT in Postgres
// decides, so exactly one token is issued and the rest are clean 400s.
func TestE2EDPoPProofOnceUnderConcurrency(t *testing.T) {
	a, b := startReplicaPair(t)
	client := dpoptest.NewES256(t)
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:"+e2eSvcSecret))
	_, _, h := dpopDo(t, "POST", a.issuer+"/oauth2/token", form, auth, client.Proof(t, "POST", a.issuer+"/oauth2/token"))
	proof := client.Proof(t, "POST", a.issuer+"/oauth2/token", dpoptest.WithNonce(h.Get("DPoP-Nonce")))
	const n = 16
	type answer struct {
		status int
		err    any
	}
	out := storagetest.Together(n, func(i int) answer {
		target := a
		if i%2 == 1 {
			target = b
		}
		status, body, _ := dpopDo(t, "POST", target.issuer+"/oauth2/token", form, auth, proof)
		return answer{status, body["error"]}
	})
	if ok := storagetest.Count(out, func(r answer) bool { return r.status == 200 }); ok != 1 {
		t.Fatalf("%d tokens issued for one proof, want 1: %v", ok, out)
	}
	if refused := storagetest.Count(out, func(r answer) bool { return r.status == 400 && r.err == "invalid_dpop_proof" }); refused != n-1 {
		t.Fatalf("want %d clean refusals: %v", n-1, out)
	}
}

// TestE2EDPoPBadHeadersAreClientErrors: malformed, oversized and repeated
// DPoP headers are 4xx at every DPoP endpoint, never 5xx.
func TestE2EDPoPBadHeadersAreClientErrors(t *testing.T) {
	s := startE2E(t, pgtest.NewDatabase(t))
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:"+e2eSvcSecret))
	c := dpoptest.NewES256(t)
	for name, proofs := range map[string][]string{
		"garbage":         {"garbage"},
		"oversized":       {strings.Repeat("A", 9000)},
		"repeated":        {c.Proof(t, "POST", s.issuer+"/oauth2/token"), c.Proof(t, "POST", s.issuer+"/oauth2/token")},
		"JSON not JWS":    {`{"alg":"ES256"}`},
		"five dots":       {"a.b.c.d.e.f"},
		"non-JSON header": {"bm90IGpzb24.e30.c2ln"},
	} {
		if status, out, _ := dpopDo(t, "POST", s.issuer+"/oauth2/token", form, auth, proofs...); status != 400 || out["error"] != "invalid_dpop_proof" {
			t.Errorf("token endpoint, %s: %d %v", name, status, out)
		}
		if status, _, _ := dpopDo(t, "GET", s.issuer+"/userinfo", nil, "DPoP eyJ.e30.x", proofs...); status != 400 {
			t.Errorf("userinfo, %s: %d", name, status)
		}
	}
}

// exampleResourceServer is the README's resource server: it verifies the
// JWT offline against the issuer's JWKS (jwx), reads cnf.jkt, and checks
// the proof with verifyDPoP below.
func exampleResourceServer(t *testing.T, issuer *e2eServer) *httptest.Server {
	t.Helper()
	res, err := http.Get(issuer.issuer + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	set, err := jwk.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]time.Time{}
	remember := func(jti string, until time.Time) bool {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := seen[jti]; dup {
			return false
		}
		seen[jti] = until
		return true
	}
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "DPoP ")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if _, err := jwt.Parse([]byte(token), jwt.WithKeySet(set), jwt.WithIssuer(issuer.issuer), jwt.WithValidate(true)); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var claims struct {
			Cnf struct {
				JKT string `json:"jkt"`
			} `json:"cnf"`
		}
		parts := strings.Split(token, ".")
		raw, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil || json.Unmarshal(raw, &claims) != nil || claims.Cnf.JKT == "" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if err := verifyDPoP(r, srv.URL+r.URL.Path, token, claims.Cnf.JKT, remember); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The README's example, verbatim (TestREADMEDPoPExampleIsTested keeps the
// two the same).

// verifyDPoP checks the DPoP proof of a request to a resource server that
// has already verified the access token (a Bulwark JWT, against the JWKS)
// and read its cnf.jkt. url is the request's URL as the client addressed
// it, without query; seen records a jti until a time and reports whether
// it was new.
func verifyDPoP(r *http.Request, url, accessToken, cnfJKT string, seen func(jti string, until time.Time) bool) error {
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return errors.New("exactly one DPoP header is required")
	}
	jws, err := jose.ParseSignedCompact(proofs[0], []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.PS256, jose.RS256})
	if err != nil || len(jws.Signatures) != 1 {
		return errors.New("malformed DPoP proof")
	}
	h := jws.Signatures[0].Protected
	if h.ExtraHeaders[jose.HeaderType] != "dpop+jwt" || h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() {
		return errors.New("not a DPoP proof with a public jwk")
	}
	payload, err := jws.Verify(h.JSONWebKey.Key)
	if err != nil {
		return errors.New("bad DPoP proof signature")
	}
	var c struct {
		JTI, HTM, HTU, ATH string
		IAT                int64
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return errors.New("bad DPoP proof claims")
	}
	thumb, err := h.JSONWebKey.Thumbprint(crypto.SHA256)
	ath := sha256.Sum256([]byte(accessToken))
	iat := time.Unix(c.IAT, 0)
	switch {
	case err != nil || base64.RawURLEncoding.EncodeToString(thumb) != cnfJKT:
		return errors.New("the proof's key is not the token's cnf.jkt")
	case c.HTM != r.Method || c.HTU != url:
		return errors.New("the proof is for another request")
	case time.Since(iat).Abs() > time.Minute:
		return errors.New("the proof is too old or from the future")
	case c.ATH != base64.RawURLEncoding.EncodeToString(ath[:]):
		return errors.New("the proof is for another access token")
	case c.JTI == "" || !seen(c.JTI, iat.Add(2*time.Minute)):
		return errors.New("the proof was already used")
	}
	return nil
}

// TestREADMEDPoPExampleIsTested: the Go example in README.md is the
// verifyDPoP the end-to-end test runs.
func TestREADMEDPoPExampleIsTested(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("dpop_e2e_test.go")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(readme), "// verifyDPoP checks")
	if start < 0 {
		t.Fatal("README.md has no verifyDPoP example")
	}
	end := strings.Index(string(readme)[start:], "\n```")
	example := string(readme)[start : start+end+1]
	if !strings.Contains(string(src), example) {
		t.Fatalf("README's verifyDPoP differs from the tested one:\n%s", example)
	}
}
