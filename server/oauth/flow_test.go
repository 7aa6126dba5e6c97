package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	cjwt "github.com/cristalhq/jwt/v4"
	"github.com/go-jose/go-jose/v3"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// claims is the subset of JWT claims the tests look at.
type claims struct {
	Iss      string          `json:"iss"`
	Sub      string          `json:"sub"`
	Aud      json.RawMessage `json:"aud"`
	Exp      int64           `json:"exp"`
	Iat      int64           `json:"iat"`
	Jti      string          `json:"jti"`
	ClientID string          `json:"client_id"`
	Scope    json.RawMessage `json:"scope"`
	Nonce    string          `json:"nonce"`
	AuthTime int64           `json:"auth_time"`
	AtHash   string          `json:"at_hash"`
	Email    string          `json:"email"`
	Azp      string          `json:"azp"`
}

func (c claims) audience() []string {
	var many []string
	if json.Unmarshal(c.Aud, &many) == nil {
		return many
	}
	var one string
	_ = json.Unmarshal(c.Aud, &one)
	return []string{one}
}

func (c claims) scope() string {
	var s string
	_ = json.Unmarshal(c.Scope, &s) // a JSON array would leave s empty
	return s
}

// verifyJWT checks a token's ES256 signature with an independent JWT library
// (cristalhq/jwt, not go-jose, which signed it) against the key the server
// publishes under the token's kid, and checks iss and exp.
func (e *env) verifyJWT(raw string) (claims, cjwt.Header) {
	e.t.Helper()
	resp, err := http.Get(e.url(pathJWKS))
	if err != nil {
		e.t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(readBody(e.t, resp)), &set); err != nil {
		e.t.Fatal(err)
	}
	unverified, err := cjwt.ParseNoVerify([]byte(raw))
	if err != nil {
		e.t.Fatalf("parse jwt: %v", err)
	}
	keys := set.Key(unverified.Header().KeyID)
	if len(keys) != 1 {
		e.t.Fatalf("kid %q not in JWKS", unverified.Header().KeyID)
	}
	pub, ok := keys[0].Key.(*ecdsa.PublicKey)
	if !ok {
		e.t.Fatalf("JWKS key is %T", keys[0].Key)
	}
	v, err := cjwt.NewVerifierES(cjwt.ES256, pub)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := cjwt.Parse([]byte(raw), v)
	if err != nil {
		e.t.Fatalf("signature does not verify: %v", err)
	}
	var c claims
	if err := tok.DecodeClaims(&c); err != nil {
		e.t.Fatal(err)
	}
	if c.Iss != e.srv.URL || time.Unix(c.Exp, 0).Before(time.Now()) || c.Iat == 0 {
		e.t.Fatalf("iss=%q exp=%d iat=%d", c.Iss, c.Exp, c.Iat)
	}
	return c, tok.Header()
}

// atHash is OpenID Connect Core §3.1.3.6 for ES256.
func atHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

func TestAuthorizationCodeFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	conf := e.webConfig("openid", "profile", "email", "offline_access")

	b := e.browser()
	verifier := oauth2.GenerateVerifier()
	state, nonce := "state-0123456789", "nonce-0123456789"
	cb, pages := b.authorize(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce)), "approve")
	if got := strings.Join(pages, ","); got != "login,consent" {
		t.Fatalf("pages = %q, want login,consent", got)
	}
	q := cb.Query()
	if cb.Scheme+"://"+cb.Host+cb.Path != webRedirect || q.Get("state") != state || q.Get("iss") != e.srv.URL || q.Get("code") == "" {
		t.Fatalf("callback = %s", cb)
	}
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for offline_access")
	}

	rawID, _ := tok.Extra("id_token").(string)
	idc, idh := e.verifyJWT(rawID)
	if idc.Sub != "user-alice" || idc.Nonce != nonce || idc.AuthTime == 0 || idc.Email != "alice@example.com" ||
		idc.AtHash != atHash(tok.AccessToken) || idc.Azp != "web-app" || strings.Join(idc.audience(), ",") != "web-app" || idh.KeyID != "test-kid-1" {
		t.Fatalf("id token claims = %+v", idc)
	}

	at, hdr := e.verifyJWT(tok.AccessToken)
	if hdr.Type != "at+jwt" || hdr.KeyID != "test-kid-1" {
		t.Fatalf("header typ=%q kid=%q", hdr.Type, hdr.KeyID)
	}
	if at.Sub != "user-alice" || at.ClientID != "web-app" || at.scope() != "openid profile email offline_access" ||
		at.Jti == "" || strings.Join(at.audience(), ",") != "web-app" {
		t.Fatalf("access token claims = %+v", at)
	}

	req, _ := http.NewRequest(http.MethodGet, e.url(pathUserinfo), nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ui map[string]any
	_ = json.Unmarshal([]byte(readBody(t, resp)), &ui)
	if resp.StatusCode != http.StatusOK || ui["sub"] != "user-alice" || ui["email"] != "alice@example.com" || ui["preferred_username"] != "alice" {
		t.Fatalf("userinfo %d = %v", resp.StatusCode, ui)
	}

	in := e.introspect(tok.AccessToken)
	if in["active"] != true || in["token_type"] != "Bearer" || in["sub"] != "user-alice" || in["client_id"] != "web-app" ||
		in["scope"] != "openid profile email offline_access" || in["exp"] == nil || in["iat"] == nil {
		t.Fatalf("introspection = %v", in)
	}
	if in := e.introspect(tok.RefreshToken); in["active"] != true || in["token_type"] != "refresh_token" {
		t.Fatalf("refresh introspection = %v", in)
	}
	if len(e.audited(EventLogin)) != 1 || len(e.audited(EventConsentGranted)) != 1 || len(e.audited(EventTokenIssued)) != 1 {
		t.Fatalf("audit events = %+v", e.events)
	}

	// Refresh rotates: new tokens, a fresh jti, and a new ID token.
	tok2, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken || tok2.AccessToken == tok.AccessToken {
		t.Fatal("refresh did not rotate")
	}
	at2, _ := e.verifyJWT(tok2.AccessToken)
	if at2.Jti == at.Jti || at2.Sub != "user-alice" {
		t.Fatalf("refreshed access token = %+v", at2)
	}
	if rawID2, _ := tok2.Extra("id_token").(string); rawID2 == "" {
		t.Fatal("no ID token on refresh")
	} else if c, _ := e.verifyJWT(rawID2); c.Sub != "user-alice" || c.AtHash != atHash(tok2.AccessToken) {
		t.Fatalf("refreshed id token = %+v", c)
	}
	if in := e.introspect(tok.AccessToken); in["active"] != false {
		t.Fatalf("access token of the rotated refresh token still active: %v", in)
	}

	// Reusing the rotated refresh token revokes the whole family.
	_, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	var re *oauth2.RetrieveError
	if !asRetrieveError(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("reuse: err = %v", err)
	}
	for name, tk := range map[string]string{"new access": tok2.AccessToken, "new refresh": tok2.RefreshToken} {
		if in := e.introspect(tk); in["active"] != false || len(in) != 1 {
			t.Fatalf("%s token after reuse = %v", name, in)
		}
	}
	if len(e.audited(EventRefreshReuse)) != 1 {
		t.Fatal("refresh reuse not audited")
	}

	// A second authorization skips login (session) and consent (remembered).
	cb, pages = b.authorize(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), "approve")
	if len(pages) != 0 || cb.Query().Get("code") == "" {
		t.Fatalf("second authorization: pages=%v callback=%s", pages, cb)
	}
}

func asRetrieveError(err error, target **oauth2.RetrieveError) bool {
	re, ok := err.(*oauth2.RetrieveError)
	if ok {
		*target = re
	}
	return ok
}

func TestClientCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	cc := clientcredentials.Config{
		ClientID: "svc", ClientSecret: svcSecret, TokenURL: e.url(pathToken),
		Scopes: []string{"api:read"}, EndpointParams: url.Values{"audience": {apiAudience}},
		AuthStyle: oauth2.AuthStyleInHeader,
	}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	at, hdr := e.verifyJWT(tok.AccessToken)
	if hdr.Type != "at+jwt" || at.Sub != "svc" || at.ClientID != "svc" || at.scope() != "api:read" ||
		strings.Join(at.audience(), ",") != apiAudience || at.Jti == "" {
		t.Fatalf("claims = %+v", at)
	}
	in := e.introspect(tok.AccessToken)
	if in["active"] != true || in["scope"] != "api:read" || in["sub"] != "svc" || in["token_type"] != "Bearer" {
		t.Fatalf("introspection = %v", in)
	}
	if ev := e.audited(EventTokenIssued); len(ev) != 1 || ev[0].ClientID != "svc" || ev[0].Details["grant_type"] != "client_credentials" {
		t.Fatalf("audit = %+v", ev)
	}

	// Revocation makes the JWT inactive at introspection.
	resp, _ := e.postForm(pathRevoke, url.Values{"token": {tok.AccessToken}}, "svc", svcSecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke status %d", resp.StatusCode)
	}
	if in := e.introspect(tok.AccessToken); in["active"] != false {
		t.Fatalf("after revocation = %v", in)
	}
	// Unknown tokens revoke with 200 (RFC 7009 §2.2).
	if resp, _ := e.postForm(pathRevoke, url.Values{"token": {"no-such-token"}}, "svc", svcSecret); resp.StatusCode != http.StatusOK {
		t.Fatalf("unknown token revoke status %d", resp.StatusCode)
	}
}

func TestDiscoveryAndJWKS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, err := http.Get(e.url(pathOIDCDiscovery))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(readBody(t, resp)), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"issuer":                                         e.srv.URL,
		"grant_types_supported":                          `["authorization_code","refresh_token","client_credentials","urn:ietf:params:oauth:grant-type:device_code"]`,
		"device_authorization_endpoint":                  e.url(pathDeviceAuthorization),
		"response_types_supported":                       `["code"]`,
		"code_challenge_methods_supported":               `["S256"]`,
		"token_endpoint_auth_methods_supported":          `["client_secret_basic","client_secret_post","private_key_jwt","none"]`,
		"authorization_response_iss_parameter_supported": "true",
		"request_parameter_supported":                    "false",
		"request_uri_parameter_supported":                "false",
		"subject_types_supported":                        `["public"]`,
		"id_token_signing_alg_values_supported":          `["ES256"]`,
		"pushed_authorization_request_endpoint":          e.url(pathPAR),
	}
	for k, v := range want {
		got, _ := json.Marshal(m[k])
		if s, ok := m[k].(string); ok {
			got = []byte(s)
		}
		if string(got) != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
	if m["end_session_endpoint"] != e.url(pathLogout) {
		t.Errorf("end_session_endpoint = %v", m["end_session_endpoint"])
	}

	resp, err = http.Get(e.url(pathJWKS))
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	etag := resp.Header.Get("ETag")
	if body != string(e.jwksRaw) || etag != `"jwks-v1"` || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=300") {
		t.Fatalf("jwks: etag=%q cache=%q", etag, resp.Header.Get("Cache-Control"))
	}
	req, _ := http.NewRequest(http.MethodGet, e.url(pathJWKS), nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match status = %d", resp.StatusCode)
	}
}
