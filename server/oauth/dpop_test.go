package oauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/bulwark-auth/bulwark/server/dpop"
	"github.com/bulwark-auth/bulwark/server/dpop/dpoptest"
	"github.com/bulwark-auth/bulwark/storage"
)

// dpopPost sends a form with the given DPoP header values (none, one or
// several) and optional HTTP Basic credentials.
func (e *env) dpopPost(path string, v url.Values, user, pass string, proofs ...string) (*http.Response, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url(path), strings.NewReader(v.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	var out map[string]any
	_ = json.Unmarshal([]byte(readBody(e.t, resp)), &out)
	return resp, out
}

// resource calls userinfo with the given Authorization value and DPoP
// header values.
func (e *env) resource(method, authz string, proofs ...string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url(pathUserinfo), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	_ = readBody(e.t, resp)
	return resp
}

// cnfOf returns the cnf.jkt of a JWT access token (signature checked by
// the caller) and whether it has one.
func cnfOf(t *testing.T, token string) (string, bool) {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Cnf *struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.Cnf == nil {
		return "", false
	}
	return c.Cnf.JKT, true
}

func wantError(t *testing.T, resp *http.Response, out map[string]any, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || out["error"] != code {
		t.Fatalf("got %d %v, want %d %s", resp.StatusCode, out, status, code)
	}
}

// TestDPoPClientCredentialsNonceDanceAndBinding: a proof without the
// server's nonce gets 400 use_dpop_nonce with a DPoP-Nonce header; with it
// the token is DPoP-bound (token_type DPoP, cnf.jkt in the JWT and in
// introspection).
func TestDPoPClientCredentialsNonceDanceAndBinding(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := dpoptest.NewES256(t)
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}

	resp, out := e.dpopPost(pathToken, form, "svc", svcSecret, c.Proof(t, "POST", e.url(pathToken)))
	wantError(t, resp, out, http.StatusBadRequest, dpop.CodeUseNonce)
	nonce := resp.Header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
	}

	resp, out = e.dpopPost(pathToken, form, "svc", svcSecret, c.Proof(t, "POST", e.url(pathToken), dpoptest.WithNonce(nonce)))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d %v", resp.StatusCode, out)
	}
	if out["token_type"] != "DPoP" || resp.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("token_type %v, DPoP-Nonce %q", out["token_type"], resp.Header.Get("DPoP-Nonce"))
	}
	at := out["access_token"].(string)
	e.verifyJWT(at)
	if jkt, ok := cnfOf(t, at); !ok || jkt != c.JKT(t) {
		t.Fatalf("cnf.jkt %q (present %v), want %q", jkt, ok, c.JKT(t))
	}
	in := e.introspect(at)
	cnf, _ := in["cnf"].(map[string]any)
	if in["active"] != true || in["token_type"] != "DPoP" || cnf["jkt"] != c.JKT(t) {
		t.Fatalf("introspection: %v", in)
	}

	// Without a proof the same client gets a bearer token without cnf.
	resp, out = e.dpopPost(pathToken, form, "svc", svcSecret)
	if resp.StatusCode != http.StatusOK || strings.ToLower(out["token_type"].(string)) != "bearer" {
		t.Fatalf("bearer token: %d %v", resp.StatusCode, out)
	}
	if _, ok := cnfOf(t, out["access_token"].(string)); ok {
		t.Fatal("a bearer token carries cnf")
	}
	if in := e.introspect(out["access_token"].(string)); in["cnf"] != nil || in["token_type"] != "Bearer" {
		t.Fatalf("bearer introspection: %v", in)
	}
}

// TestDPoPTokenEndpointRefusals: each refusal is 400 invalid_dpop_proof,
// and nothing is issued.
func TestDPoPTokenEndpointRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := dpoptest.NewES256(t)
	nonce := e.p.cfg.DPoP.Nonce()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}
	tokenURL := e.url(pathToken)
	replayed := c.Proof(t, "POST", tokenURL, dpoptest.WithNonce(nonce))
	if resp, out := e.dpopPost(pathToken, form, "svc", svcSecret, replayed); resp.StatusCode != http.StatusOK {
		t.Fatalf("first use: %d %v", resp.StatusCode, out)
	}
	for _, tc := range []struct {
		name   string
		proofs []string
	}{
		{"case=replayed", []string{replayed}},
		{"case=two DPoP headers", []string{c.Proof(t, "POST", tokenURL, dpoptest.WithNonce(nonce)), c.Proof(t, "POST", tokenURL, dpoptest.WithNonce(nonce))}},
		{"case=oversized", []string{strings.Repeat("A", dpop.MaxProofBytes+1)}},
		{"case=malformed", []string{"not-a-jwt"}},
		{"case=empty", []string{""}},
		{"case=htu of another endpoint", []string{c.Proof(t, "POST", e.url(pathRevoke), dpoptest.WithNonce(nonce))}},
		{"case=wrong htm", []string{c.Proof(t, "GET", tokenURL, dpoptest.WithNonce(nonce))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, out := e.dpopPost(pathToken, form, "svc", svcSecret, tc.proofs...)
			wantError(t, resp, out, http.StatusBadRequest, dpop.CodeInvalidProof)
			if out["access_token"] != nil {
				t.Fatal("a token was issued")
			}
		})
	}
}

// TestDPoPHtuIsTheIssuersURL: the htu is compared with the issuer's token
// endpoint, not with a URL built from the Host header the client sent.
func TestDPoPHtuIsTheIssuersURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := dpoptest.NewES256(t)
	nonce := e.p.cfg.DPoP.Nonce()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}
	req, _ := http.NewRequest(http.MethodPost, e.url(pathToken), strings.NewReader(form.Encode()))
	req.Host = "evil.example"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", c.Proof(t, "POST", "http://evil.example/oauth2/token", dpoptest.WithNonce(nonce)))
	req.SetBasicAuth("svc", svcSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	_ = json.Unmarshal([]byte(readBody(t, resp)), &out)
	wantError(t, resp, out, http.StatusBadRequest, dpop.CodeInvalidProof)
}

// TestDPoPBoundClientMustSendProof: dpop_bound_access_tokens (RFC 9449
// §5.2) makes a proof mandatory for the client.
func TestDPoPBoundClientMustSendProof(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	cl, err := e.store.ClientByID(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	cl.DPoPBoundAccessTokens = true
	if err := e.store.UpdateClient(ctx, cl, cl.Version); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}
	resp, out := e.dpopPost(pathToken, form, "svc", svcSecret)
	wantError(t, resp, out, http.StatusBadRequest, dpop.CodeInvalidProof)
	c := dpoptest.NewES256(t)
	resp, out = e.dpopPost(pathToken, form, "svc", svcSecret, c.Proof(t, "POST", e.url(pathToken), dpoptest.WithNonce(e.p.cfg.DPoP.Nonce())))
	if resp.StatusCode != http.StatusOK || out["token_type"] != "DPoP" {
		t.Fatalf("with a proof: %d %v", resp.StatusCode, out)
	}
}

// nativeCode signs alice in for the public native client and returns an
// authorization code and its PKCE verifier.
func (e *env) nativeCode() (string, string) {
	e.t.Helper()
	verifier := oauth2.GenerateVerifier()
	conf := &oauth2.Config{ClientID: "native-app", RedirectURL: nativeRedirect, Scopes: []string{"openid", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: e.url(pathAuthorize), TokenURL: e.url(pathToken)}}
	loc, _ := e.browser().authorize(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)), "approve")
	code := loc.Query().Get("code")
	if code == "" {
		e.t.Fatalf("no code in %s", loc)
	}
	return code, verifier
}

// TestDPoPPublicClientCodeRefreshAndUserinfo runs the whole public-client
// path: a nonce round trip that does not consume the code, a DPoP-bound
// code exchange, userinfo under the DPoP scheme (and every way of
// presenting the token wrongly), and refresh tokens bound to the key.
func TestDPoPPublicClientCodeRefreshAndUserinfo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := dpoptest.NewES256(t)
	other := dpoptest.NewES256(t)
	tokenURL, userinfoURL := e.url(pathToken), e.url(pathUserinfo)
	code, verifier := e.nativeCode()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {nativeRedirect},
		"client_id": {"native-app"}, "code_verifier": {verifier}}

	// The nonce round trip leaves the code unused.
	resp, out := e.dpopPost(pathToken, form, "", "", c.Proof(t, "POST", tokenURL))
	wantError(t, resp, out, http.StatusBadRequest, dpop.CodeUseNonce)
	nonce := resp.Header.Get("DPoP-Nonce")
	resp, out = e.dpopPost(pathToken, form, "", "", c.Proof(t, "POST", tokenURL, dpoptest.WithNonce(nonce)))
	if resp.StatusCode != http.StatusOK || out["token_type"] != "DPoP" {
		t.Fatalf("code exchange: %d %v", resp.StatusCode, out)
	}
	at, rt := out["access_token"].(string), out["refresh_token"].(string)
	if jkt, _ := cnfOf(t, at); jkt != c.JKT(t) {
		t.Fatalf("cnf.jkt %q", jkt)
	}

	// Userinfo: DPoP scheme with a proof by the bound key.
	if r := e.resource("GET", "DPoP "+at, c.Proof(t, "GET", userinfoURL, dpoptest.WithAccessToken(at))); r.StatusCode != http.StatusOK {
		t.Fatalf("userinfo with DPoP: %d %v", r.StatusCode, r.Header)
	}
	if r := e.resource("POST", "DPoP "+at, c.Proof(t, "POST", userinfoURL, dpoptest.WithAccessToken(at))); r.StatusCode != http.StatusOK {
		t.Fatalf("userinfo POST with DPoP: %d", r.StatusCode)
	}
	replayed := c.Proof(t, "GET", userinfoURL, dpoptest.WithAccessToken(at))
	if r := e.resource("GET", "DPoP "+at, replayed); r.StatusCode != http.StatusOK {
		t.Fatalf("userinfo: %d", r.StatusCode)
	}
	for _, tc := range []struct {
		name, authz  string
		proofs       []string
		status       int
		code, scheme string
	}{
		{"case=bound token as Bearer", "Bearer " + at, nil, 401, "invalid_token", "DPoP"},
		{"case=bound token as Bearer with a proof", "Bearer " + at, []string{c.Proof(t, "GET", userinfoURL, dpoptest.WithAccessToken(at))}, 401, "invalid_token", "DPoP"},
		{"case=no proof", "DPoP " + at, nil, 400, "invalid_request", "DPoP"},
		{"case=proof by another key", "DPoP " + at, []string{other.Proof(t, "GET", userinfoURL, dpoptest.WithAccessToken(at))}, 401, dpop.CodeInvalidProof, "DPoP"},
		{"case=proof without ath", "DPoP " + at, []string{c.Proof(t, "GET", userinfoURL)}, 401, dpop.CodeInvalidProof, "DPoP"},
		{"case=proof for the token endpoint", "DPoP " + at, []string{c.Proof(t, "GET", tokenURL, dpoptest.WithAccessToken(at))}, 401, dpop.CodeInvalidProof, "DPoP"},
		{"case=replayed proof", "DPoP " + at, []string{replayed}, 401, dpop.CodeInvalidProof, "DPoP"},
		{"case=two proofs", "DPoP " + at, []string{c.Proof(t, "GET", userinfoURL, dpoptest.WithAccessToken(at)), c.Proof(t, "GET", userinfoURL, dpoptest.WithAccessToken(at))}, 400, "invalid_request", "DPoP"},
		{"case=malformed proof", "DPoP " + at, []string{"garbage"}, 400, "invalid_request", "DPoP"},
		{"case=oversized proof", "DPoP " + at, []string{strings.Repeat("A", dpop.MaxProofBytes+1)}, 400, "invalid_request", "DPoP"},
		{"case=stale nonce", "DPoP " + at, []string{c.Proof(t, "GET", userinfoURL, dpoptest.WithAccessToken(at), dpoptest.WithNonce("stale"))}, 401, dpop.CodeUseNonce, "DPoP"},
		{"case=empty DPoP credential", "DPoP ", []string{c.Proof(t, "GET", userinfoURL)}, 400, "invalid_request", "DPoP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.resource("GET", tc.authz, tc.proofs...)
			if r.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", r.StatusCode, tc.status)
			}
			found := false
			for _, ch := range r.Header.Values("WWW-Authenticate") {
				if strings.HasPrefix(ch, tc.scheme+" ") && strings.Contains(ch, `error="`+tc.code+`"`) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no %s challenge with error %s: %q", tc.scheme, tc.code, r.Header.Values("WWW-Authenticate"))
			}
			if tc.code == dpop.CodeUseNonce && r.Header.Get("DPoP-Nonce") == "" {
				t.Fatal("use_dpop_nonce without DPoP-Nonce")
			}
		})
	}

	// Refresh: the refresh token is bound to the key. A refused refresh
	// leaves the refresh token usable.
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"native-app"}}
	nonce = e.p.cfg.DPoP.Nonce()
	resp, out = e.dpopPost(pathToken, refresh, "", "")
	wantError(t, resp, out, http.StatusBadRequest, dpop.CodeInvalidProof)
	resp, out = e.dpopPost(pathToken, refresh, "", "", other.Proof(t, "POST", tokenURL, dpoptest.WithNonce(nonce)))
	wantError(t, resp, out, http.StatusBadRequest, dpop.CodeInvalidProof)
	in := e.introspectHint(rt, "refresh_token")
	if cnf, _ := in["cnf"].(map[string]any); in["active"] != true || cnf["jkt"] != c.JKT(t) {
		t.Fatalf("refresh token introspection: %v", in)
	}
	resp, out = e.dpopPost(pathToken, refresh, "", "", c.Proof(t, "POST", tokenURL, dpoptest.WithNonce(nonce)))
	if resp.StatusCode != http.StatusOK || out["token_type"] != "DPoP" {
		t.Fatalf("refresh with the bound key: %d %v", resp.StatusCode, out)
	}
	if jkt, _ := cnfOf(t, out["access_token"].(string)); jkt != c.JKT(t) {
		t.Fatalf("refreshed cnf.jkt %q", jkt)
	}

	// A bearer access token under the DPoP scheme is refused too.
	svcResp, svcOut := e.dpopPost(pathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}, "svc", svcSecret)
	if svcResp.StatusCode != http.StatusOK {
		t.Fatal(svcOut)
	}
	bearer := svcOut["access_token"].(string)
	if r := e.resource("GET", "DPoP "+bearer, c.Proof(t, "GET", userinfoURL, dpoptest.WithAccessToken(bearer))); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bearer token under DPoP: %d", r.StatusCode)
	}
}

func (e *env) introspectHint(token, hint string) map[string]any {
	e.t.Helper()
	resp, out := e.postForm(pathIntrospect, url.Values{"token": {token}, "token_type_hint": {hint}}, "svc", svcSecret)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("introspect status %d: %v", resp.StatusCode, out)
	}
	return out
}

// TestDPoPConfidentialClientRefresh: a confidential client's refresh token
// is not bound (RFC 9449 §5): a refresh may move to a new key, and one
// without a proof yields a bearer token.
func TestDPoPConfidentialClientRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, next := dpoptest.NewES256(t), dpoptest.NewEdDSA(t)
	tokenURL := e.url(pathToken)
	conf := e.webConfig("openid", "offline_access")
	verifier := oauth2.GenerateVerifier()
	loc, _ := e.browser().authorize(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)), "approve")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {webRedirect}, "code_verifier": {verifier}}
	nonce := e.p.cfg.DPoP.Nonce()
	resp, out := e.dpopPost(pathToken, form, "web-app", webSecret, c.Proof(t, "POST", tokenURL, dpoptest.WithNonce(nonce)))
	if resp.StatusCode != http.StatusOK || out["token_type"] != "DPoP" {
		t.Fatalf("code exchange: %d %v", resp.StatusCode, out)
	}
	if in := e.introspectHint(out["refresh_token"].(string), "refresh_token"); in["cnf"] != nil {
		t.Fatalf("a confidential client's refresh token reported bound: %v", in)
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {out["refresh_token"].(string)}}
	resp, out = e.dpopPost(pathToken, refresh, "web-app", webSecret, next.Proof(t, "POST", tokenURL, dpoptest.WithNonce(nonce)))
	if resp.StatusCode != http.StatusOK || out["token_type"] != "DPoP" {
		t.Fatalf("refresh to a new key: %d %v", resp.StatusCode, out)
	}
	if jkt, _ := cnfOf(t, out["access_token"].(string)); jkt != next.JKT(t) {
		t.Fatalf("cnf.jkt %q, want the new key's", jkt)
	}
	refresh.Set("refresh_token", out["refresh_token"].(string))
	resp, out = e.dpopPost(pathToken, refresh, "web-app", webSecret)
	if resp.StatusCode != http.StatusOK || strings.ToLower(out["token_type"].(string)) != "bearer" {
		t.Fatalf("refresh without a proof: %d %v", resp.StatusCode, out)
	}
	if _, ok := cnfOf(t, out["access_token"].(string)); ok {
		t.Fatal("bearer token with cnf")
	}
}

func TestDPoPDiscovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{pathOIDCDiscovery, pathOAuthDiscovery} {
		resp, err := http.Get(e.url(path))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(readBody(t, resp)), &m); err != nil {
			t.Fatal(err)
		}
		algs, _ := m["dpop_signing_alg_values_supported"].([]any)
		if len(algs) != 4 || algs[0] != "ES256" {
			t.Fatalf("%s: dpop_signing_alg_values_supported = %v", path, m["dpop_signing_alg_values_supported"])
		}
	}
}

// TestDPoPSessionCloneKeepsBinding: fosite clones the stored session on
// refresh; the binding must survive it.
func TestDPoPSessionCloneKeepsBinding(t *testing.T) {
	s := storage.NewSession("u")
	s.DPoPJKT = "jkt"
	if c := s.Clone().(*storage.Session); c.DPoPJKT != "jkt" {
		t.Fatal("Clone dropped DPoPJKT")
	}
}
