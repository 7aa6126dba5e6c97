package oauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite/token/jwt"
	"golang.org/x/oauth2"

	"github.com/bulwark-auth/bulwark/storage"
)

var anyHiddenField = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)"`)

// logoutForm returns every hidden field of the logout confirmation page.
func logoutForm(body string) url.Values {
	v := url.Values{}
	for _, m := range anyHiddenField.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

func logoutURL(e *env, v url.Values) string { return e.url(pathLogout) + "?" + v.Encode() }

// signIn runs the code flow for web-app in b and returns the ID token and
// the access token issued at the end of it.
func signIn(t *testing.T, e *env, b *browser) (idToken, accessToken string) {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	code := codeFor(t, e, b, verifier)
	tok, err := e.webConfig().Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	idToken, _ = tok.Extra("id_token").(string)
	if idToken == "" {
		t.Fatal("no ID token")
	}
	return idToken, tok.AccessToken
}

// signedIn reports whether b still has a live login session: a fresh
// authorization request shows the login page only when it has not.
func signedIn(t *testing.T, e *env, b *browser) bool {
	t.Helper()
	start := e.webConfig("openid").AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	resp := b.get(start)
	body := readBody(t, resp)
	return !strings.Contains(body, `action="/login"`)
}

// idTokenClaims are ID token claims for alice as web-app, issued by e.
func idTokenClaims(e *env, exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": e.srv.URL, "sub": "user-alice", "aud": []string{"web-app"}, "azp": "web-app",
		"iat": exp.Add(-time.Hour).Unix(), "exp": exp.Unix(), "jti": "test-jti",
	}
}

func sign(t *testing.T, s jwt.Signer, claims jwt.MapClaims) string {
	t.Helper()
	h := jwt.NewHeaders()
	h.Add("typ", "JWT")
	raw, _, err := s.Generate(context.Background(), claims, h)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestRPInitiatedLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser()
	idToken, _ := signIn(t, e, b)

	resp := b.get(logoutURL(e, url.Values{
		"id_token_hint": {idToken}, "post_logout_redirect_uri": {webRedirect}, "state": {"st&ate 1"}, "ui_locales": {"de"},
	}))
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Web App") || !strings.Contains(body, "alice") {
		t.Fatalf("confirm page %d: %s", resp.StatusCode, body)
	}
	form := logoutForm(body)
	if form.Get("id_token_hint") != idToken || form.Get("post_logout_redirect_uri") != webRedirect || form.Get("state") != "st&ate 1" {
		t.Fatalf("hidden fields = %v", form)
	}
	if !signedIn(t, e, b) {
		t.Fatal("GET /logout ended the session")
	}

	resp = b.post(e.url(pathLogout), form)
	readBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout status %d", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != webRedirect+"?state=st%26ate+1" {
		t.Fatalf("Location = %q", loc)
	}
	ev := e.audited(EventLogout)
	if len(ev) != 1 || ev[0].Subject != "user-alice" || ev[0].ClientID != "web-app" {
		t.Fatalf("audit = %+v", ev)
	}
	if signedIn(t, e, b) {
		t.Fatal("still signed in after logout")
	}
}

func TestRPInitiatedLogoutClientIDOnlyAndSignedOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Nobody is signed in: the page is still shown, and confirming returns
	// the user to the client (without state, none was sent).
	b := e.browser()
	resp := b.get(logoutURL(e, url.Values{"client_id": {"web-app"}, "post_logout_redirect_uri": {webRedirect}}))
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || strings.Contains(body, "You are signed in") {
		t.Fatalf("confirm page %d: %s", resp.StatusCode, body)
	}
	resp = b.post(e.url(pathLogout), logoutForm(body))
	readBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != webRedirect {
		t.Fatalf("status %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if len(e.audited(EventLogout)) != 0 {
		t.Fatal("logout audited with nobody signed in")
	}
}

func TestRPInitiatedLogoutExpiredHintAccepted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser()
	signIn(t, e, b)
	expired := sign(t, e.p.cfg.IDTokenSigner, idTokenClaims(e, time.Now().Add(-24*time.Hour)))
	// The signer alone refuses it as expired: the logout endpoint must not.
	if _, err := e.p.cfg.IDTokenSigner.Validate(context.Background(), expired); err == nil {
		t.Fatal("expired token validates: the test would prove nothing")
	}
	resp := b.get(logoutURL(e, url.Values{"id_token_hint": {expired}, "post_logout_redirect_uri": {webRedirect}, "state": {"s1"}}))
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("expired hint refused: %d %s", resp.StatusCode, body)
	}
	resp = b.post(e.url(pathLogout), logoutForm(body))
	readBody(t, resp)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != webRedirect+"?state=s1" {
		t.Fatalf("status %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if signedIn(t, e, b) {
		t.Fatal("still signed in after logout")
	}
}

func TestRPInitiatedLogoutRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if err := e.store.CreateClient(ctx, &storage.Client{
		ID: "gone", Name: "Gone", Disabled: true, RedirectURIs: []string{"https://gone.example/cb"},
		GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, Scopes: []string{"openid"},
		TokenEndpointAuthMethod: storage.AuthMethodNone, ApplicationType: storage.AppTypeWeb,
	}); err != nil {
		t.Fatal(err)
	}
	idToken, accessToken := signIn(t, e, e.browser())

	otherKey, err := ecdsaKey()
	if err != nil {
		t.Fatal(err)
	}
	// Same kid as the server's key, different key material.
	foreign := &jwt.DefaultSigner{GetPrivateKey: func(context.Context) (interface{}, error) {
		return &jose.JSONWebKey{Key: otherKey, KeyID: "test-kid-1", Algorithm: "ES256", Use: "sig"}, nil
	}}
	wrongIss := idTokenClaims(e, time.Now().Add(time.Hour))
	wrongIss["iss"] = "https://evil.example"
	goneHint := idTokenClaims(e, time.Now().Add(time.Hour))
	goneHint["aud"], goneHint["azp"] = []string{"gone"}, "gone"

	for name, v := range map[string]url.Values{
		"unregistered redirect":      {"id_token_hint": {idToken}, "post_logout_redirect_uri": {"https://evil.example/cb"}},
		"redirect of another client": {"id_token_hint": {idToken}, "post_logout_redirect_uri": {"http://127.0.0.1:9999/cb"}},
		"redirect prefix only":       {"client_id": {"web-app"}, "post_logout_redirect_uri": {webRedirect + "/more"}},
		"redirect without client":    {"post_logout_redirect_uri": {webRedirect}},
		"hint signed by another key": {"id_token_hint": {sign(t, foreign, idTokenClaims(e, time.Now().Add(time.Hour)))}, "post_logout_redirect_uri": {webRedirect}},
		"tampered hint":              {"id_token_hint": {tamper(t, idToken)}, "post_logout_redirect_uri": {webRedirect}},
		"hint with wrong iss":        {"id_token_hint": {sign(t, e.p.cfg.IDTokenSigner, wrongIss)}, "post_logout_redirect_uri": {webRedirect}},
		"access token as hint":       {"id_token_hint": {accessToken}},
		"garbage hint":               {"id_token_hint": {"not-a-jwt"}},
		"client_id not in hint aud":  {"id_token_hint": {idToken}, "client_id": {"native-app"}},
		"unknown client":             {"client_id": {"nobody"}, "post_logout_redirect_uri": {webRedirect}},
		"disabled client":            {"client_id": {"gone"}},
		"disabled client via hint":   {"id_token_hint": {sign(t, e.p.cfg.IDTokenSigner, goneHint)}},
		"oversized state":            {"client_id": {"web-app"}, "state": {strings.Repeat("s", maxLogoutParam+1)}},
	} {
		t.Run("case="+name, func(t *testing.T) {
			resp, err := noRedirect.Get(logoutURL(e, v))
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "invalid_request") ||
				strings.Contains(body, `action="/logout"`) || resp.Header.Get("Location") != "" {
				t.Fatalf("status %d Location %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
			}
			if hint := v.Get("id_token_hint"); hint != "" && strings.Contains(body, hint) {
				t.Fatal("error page echoes the hint")
			}
		})
	}
}

// tamper changes the subject of a signed token, keeping its signature.
func tamper(t *testing.T, raw string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = "user-mallory"
	payload, err = json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func TestRPInitiatedLogoutFormRevalidated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser()
	idToken, _ := signIn(t, e, b)
	resp := b.get(logoutURL(e, url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {webRedirect}, "state": {"s1"}}))
	form := logoutForm(readBody(t, resp))
	if form.Get("csrf_token") == "" {
		t.Fatal("no CSRF token on the confirm page")
	}

	for name, edit := range map[string]func(url.Values){
		"redirect to unregistered URI": func(v url.Values) { v.Set("post_logout_redirect_uri", "https://evil.example/cb") },
		"redirect of another client":   func(v url.Values) { v.Set("post_logout_redirect_uri", "http://127.0.0.1:9999/cb") },
		"hint dropped":                 func(v url.Values) { v.Del("id_token_hint") },
		"hint tampered":                func(v url.Values) { v.Set("id_token_hint", tamper(t, idToken)) },
		"client switched":              func(v url.Values) { v.Set("client_id", "web-loopback") },
	} {
		t.Run("case="+name, func(t *testing.T) {
			v := url.Values{}
			for k, vals := range form {
				v[k] = append([]string(nil), vals...)
			}
			edit(v)
			resp := b.post(e.url(pathLogout), v)
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(body, "invalid_request") {
				t.Fatalf("status %d Location %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
			}
			if !signedIn(t, e, b) {
				t.Fatal("a refused logout ended the session")
			}
		})
	}

	// Without its CSRF token the untampered form is refused too.
	noCSRF := url.Values{}
	for k, vals := range form {
		if k != "csrf_token" {
			noCSRF[k] = vals
		}
	}
	resp = b.post(e.url(pathLogout), noCSRF)
	readBody(t, resp)
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" {
		t.Fatalf("logout without CSRF: status %d", resp.StatusCode)
	}
	if !signedIn(t, e, b) || len(e.audited(EventLogout)) != 0 {
		t.Fatal("logout without CSRF ended the session")
	}
}

func TestEndSessionEndpointAdvertised(t *testing.T) {
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
		if m["end_session_endpoint"] != e.url(pathLogout) {
			t.Errorf("%s: end_session_endpoint = %v", path, m["end_session_endpoint"])
		}
	}
}

func TestLogoutRedirectTarget(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ uri, state, want string }{
		{"https://rp.example/bye", "", "https://rp.example/bye"},
		{"https://rp.example/bye", "a b&c", "https://rp.example/bye?state=a+b%26c"},
		{"https://rp.example/bye?x=1%2F2", "s", "https://rp.example/bye?x=1%2F2&state=s"},
		{"", "s", ""},
	} {
		t.Run("case="+c.uri+" "+c.state, func(t *testing.T) {
			l := &logoutRequest{PostLogoutRedirectURI: c.uri, State: c.state}
			if got := l.redirectTarget(); got != c.want {
				t.Fatalf("redirectTarget = %q, want %q", got, c.want)
			}
		})
	}
}
