package oauth

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	cjwt "github.com/cristalhq/jwt/v4"
	"golang.org/x/oauth2"
)

func TestCSRFRequired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{pathLogin, pathConsent, pathLogout} {
		for name, token := range map[string]string{"missing": "", "forged": "AAAA"} {
			t.Run("case="+path+" "+name, func(t *testing.T) {
				b := e.browser()
				// Get a CSRF cookie, then post without (or with a wrong) token.
				readBody(t, b.get(e.url(pathLogin)))
				v := url.Values{"username": {"alice"}, "password": {testPassword}, "decision": {"approve"}}
				if token != "" {
					v.Set("csrf_token", token)
				}
				resp := b.post(e.url(path), v)
				body := readBody(t, resp)
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "security token") {
					t.Fatalf("status %d", resp.StatusCode)
				}
			})
		}
	}
	if len(e.audited(EventLogin)) != 0 {
		t.Fatal("login attempted without CSRF token")
	}
}

func TestLoginFailuresAndLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser()
	start := e.webConfig("openid").AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	resp := b.get(start)
	body := readBody(t, resp)
	fields := formFields(body)
	if fields.Get("return_to") == "" || fields.Get("csrf_token") == "" {
		t.Fatalf("login page without fields: %s", body)
	}
	for _, c := range []struct{ user, pass string }{{"alice", "wrong"}, {"nobody", testPassword}, {"bob", testPassword}, {"alice", ""}} {
		f := url.Values{"csrf_token": {fields.Get("csrf_token")}, "return_to": {fields.Get("return_to")}, "username": {c.user}, "password": {c.pass}}
		resp := b.post(e.url(pathLogin), f)
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Incorrect username or password") {
			t.Fatalf("login %s: status %d", c.user, resp.StatusCode)
		}
	}
	if ev := e.audited(EventLogin); len(ev) != 4 || ev[0].Outcome != OutcomeFailure {
		t.Fatalf("audit = %+v", ev)
	}

	// An open redirect through return_to is refused.
	if got := safeReturnTo("https://evil.example/oauth2/auth"); got != "" {
		t.Fatalf("safeReturnTo accepted %q", got)
	}
	if got := safeReturnTo("//evil.example/oauth2/auth"); got != "" {
		t.Fatalf("safeReturnTo accepted %q", got)
	}

	// Sign in, then sign out: the session is gone server-side.
	if _, pages := b.authorize(start, "approve"); len(pages) == 0 {
		t.Fatal("no pages")
	}
	resp = b.get(e.url(pathLogout))
	lf := formFields(readBody(t, resp))
	resp = b.post(e.url(pathLogout), url.Values{"csrf_token": {lf.Get("csrf_token")}})
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "signed out") {
		t.Fatalf("logout status %d", resp.StatusCode)
	}
	if len(e.audited(EventLogout)) != 1 {
		t.Fatal("logout not audited")
	}
	resp, err := b.c.Get(start)
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); !strings.Contains(body, `action="/login"`) {
		t.Fatal("still signed in after logout")
	}
}

func TestConsentDenied(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cb, pages := e.browser().authorize(e.webConfig("openid", "email").AuthCodeURL("state-0123456789",
		oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "deny")
	q := cb.Query()
	if strings.Join(pages, ",") != "login,consent" || q.Get("error") != "access_denied" || q.Get("iss") != e.srv.URL || q.Get("code") != "" {
		t.Fatalf("pages=%v callback=%s", pages, cb)
	}
}

func TestPushedAuthorizationRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	verifier := oauth2.GenerateVerifier()
	v := baseAuthParams("web-app", webRedirect)
	v.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
	v.Set("nonce", "nonce-0123456789")
	resp, out := e.postForm(pathPAR, v, "web-app", webSecret)
	uri, _ := out["request_uri"].(string)
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(uri, parURIPrefix) {
		t.Fatalf("PAR %d %v", resp.StatusCode, out)
	}
	start := e.url(pathAuthorize) + "?" + url.Values{"client_id": {"web-app"}, "request_uri": {uri}}.Encode()
	cb, pages := e.browser().authorize(start, "approve")
	code := cb.Query().Get("code")
	if strings.Join(pages, ",") != "login,consent" || code == "" || cb.Query().Get("iss") != e.srv.URL {
		t.Fatalf("pages=%v callback=%s", pages, cb)
	}
	tok, err := e.webConfig().Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	idc, _ := e.verifyJWT(tok.Extra("id_token").(string))
	if idc.Nonce != "nonce-0123456789" {
		t.Fatalf("nonce = %q", idc.Nonce)
	}
	// A request_uri is single-use.
	resp, err = noRedirect.Get(start)
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode < 400 {
		t.Fatalf("reused request_uri accepted: %d %s", resp.StatusCode, body)
	}
	// PAR refuses request objects and unregistered redirect URIs.
	bad := baseAuthParams("web-app", "https://evil.example/cb")
	if resp, out := e.postForm(pathPAR, bad, "web-app", webSecret); resp.StatusCode != http.StatusBadRequest || out["error"] != "invalid_request" {
		t.Fatalf("PAR bad redirect: %d %v", resp.StatusCode, out)
	}
	obj := baseAuthParams("web-app", webRedirect)
	obj.Set("request", "eyJhbGciOiJub25lIn0.e30.")
	if resp, out := e.postForm(pathPAR, obj, "web-app", webSecret); resp.StatusCode != http.StatusBadRequest || out["error"] != "request_not_supported" {
		t.Fatalf("PAR request object: %d %v", resp.StatusCode, out)
	}
}

// clientAssertion builds an RFC 7523 client assertion signed with key.
func clientAssertion(t *testing.T, e *env, key *ecdsa.PrivateKey, jti string) string {
	t.Helper()
	signer, err := cjwt.NewSignerES(cjwt.ES256, key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := cjwt.NewBuilder(signer, cjwt.WithKeyID("client-kid")).Build(&cjwt.RegisteredClaims{
		Issuer: "jwt-client", Subject: "jwt-client", Audience: cjwt.Audience{e.url(pathToken)}, ID: jti,
		IssuedAt: cjwt.NewNumericDate(now), ExpiresAt: cjwt.NewNumericDate(now.Add(time.Minute)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok.String()
}

func TestPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	form := func(assertion string) url.Values {
		return url.Values{
			"grant_type": {"client_credentials"}, "scope": {"api:read"}, "client_id": {"jwt-client"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {assertion},
		}
	}
	assertion := clientAssertion(t, e, e.clientKey, "jti-1")
	resp, out := e.postForm(pathToken, form(assertion), "", "")
	at, _ := out["access_token"].(string)
	if resp.StatusCode != http.StatusOK || at == "" {
		t.Fatalf("private_key_jwt: %d %v", resp.StatusCode, out)
	}
	if c, _ := e.verifyJWT(at); c.Sub != "jwt-client" || c.ClientID != "jwt-client" {
		t.Fatalf("claims = %+v", c)
	}
	// Replaying the same assertion (same jti) is refused.
	resp, out = e.postForm(pathToken, form(assertion), "", "")
	// RFC 6749 §5.2, RFC 7523 §3.2: a refused assertion is invalid_client.
	if resp.StatusCode != http.StatusUnauthorized || out["error"] != "invalid_client" {
		t.Fatalf("replayed assertion: %d %v", resp.StatusCode, out)
	}
	// A fresh jti signed by a key the client did not register is refused.
	other, _ := ecdsaKey()
	resp, out = e.postForm(pathToken, form(clientAssertion(t, e, other, "jti-2")), "", "")
	if resp.StatusCode != http.StatusUnauthorized || out["error"] != "invalid_client" {
		t.Fatalf("foreign key: %d %v", resp.StatusCode, out)
	}
	raw, _ := json.Marshal(out)
	if strings.Contains(string(raw), "goroutine") {
		t.Fatal("stack trace in response")
	}
}
