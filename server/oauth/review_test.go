package oauth

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	foauth2 "github.com/ory/fosite/handler/oauth2"
	"golang.org/x/oauth2"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

// ccToken returns a client credentials access token of "svc".
func (e *env) ccToken(scope string) string {
	e.t.Helper()
	resp, out := e.postForm(pathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, "svc", svcSecret)
	at, _ := out["access_token"].(string)
	if resp.StatusCode != http.StatusOK || at == "" {
		e.t.Fatalf("token: %d %v", resp.StatusCode, out)
	}
	return at
}

// TestIntrospectionCallerAuthCannotBeReplacedByAccessToken: fosite
// authenticates an introspection caller with an access_token form
// parameter in preference to HTTP Basic, so a request with made-up Basic
// credentials plus any access token in the body would be answered.
// Bulwark accepts only HTTP Basic client authentication (or an API key).
func TestIntrospectionCallerAuthCannotBeReplacedByAccessToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	at := e.ccToken("api:read")
	target := e.ccToken("api:write")
	for name, tc := range map[string]struct {
		user, pass string
		form       url.Values
		query      string
	}{
		"case=bogus basic plus access_token in body":  {"nobody", "wrong", url.Values{"token": {target}, "access_token": {at}}, ""},
		"case=bogus basic plus access_token in query": {"nobody", "wrong", url.Values{"token": {target}}, "?access_token=" + url.QueryEscape(at)},
		"case=valid basic plus access_token in body":  {"svc", svcSecret, url.Values{"token": {target}, "access_token": {at}}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			resp, out := e.postForm(pathIntrospect+tc.query, tc.form, tc.user, tc.pass)
			if out["active"] == true {
				t.Fatalf("introspection answered for a caller that authenticated with an access token: %d %v", resp.StatusCode, out)
			}
			if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d %v", resp.StatusCode, out)
			}
		})
	}
}

// The same through a multipart body, which fosite parses itself.
func TestIntrospectionMultipartAccessTokenRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	at := e.ccToken("api:read")
	target := e.ccToken("api:write")
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("token", target)
	_ = mw.WriteField("access_token", at)
	_ = mw.Close()
	req, err := http.NewRequest(http.MethodPost, e.url(pathIntrospect), &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.SetBasicAuth("nobody", "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := readBody(t, resp)
	if resp.StatusCode == http.StatusOK || strings.Contains(got, `"active":true`) {
		t.Fatalf("multipart introspection with an access_token caller: %d %s", resp.StatusCode, got)
	}
}

// TestPARRedirectURIRulesWithBasicAuth: the loopback port flexibility of
// RFC 8252 is for native clients only, also when the pushing client
// authenticates with HTTP Basic and sends no client_id in the body.
func TestPARRedirectURIRulesWithBasicAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for name, tc := range map[string]struct {
		form url.Values
	}{
		"case=no client_id in body": {func() url.Values {
			v := baseAuthParams("web-loopback", "http://127.0.0.1:8080/cb")
			v.Del("client_id")
			return v
		}()},
		"case=client_id of another client in body": {func() url.Values {
			v := baseAuthParams("native-app", "http://127.0.0.1:8080/callback")
			v.Set("scope", "openid")
			return v
		}()},
	} {
		t.Run(name, func(t *testing.T) {
			resp, out := e.postForm(pathPAR, tc.form, "web-loopback", webSecret)
			if resp.StatusCode == http.StatusCreated {
				t.Fatalf("PAR accepted a redirect URI the client did not register: %v", out)
			}
		})
	}
	// The registered URI itself is still accepted.
	v := baseAuthParams("web-loopback", "http://127.0.0.1:9999/cb")
	v.Del("client_id")
	if resp, out := e.postForm(pathPAR, v, "web-loopback", webSecret); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PAR with the registered URI: %d %v", resp.StatusCode, out)
	}
}

// pushed pushes v for web-app and returns the authorization URL using it.
func (e *env) pushed(v url.Values) string {
	e.t.Helper()
	resp, out := e.postForm(pathPAR, v, "web-app", webSecret)
	uri, _ := out["request_uri"].(string)
	if resp.StatusCode != http.StatusCreated || uri == "" {
		e.t.Fatalf("PAR %d %v", resp.StatusCode, out)
	}
	return uri
}

// TestPARIgnoresParametersOutsideThePushedRequest: RFC 9126 §4 — with a
// request_uri, only client_id and request_uri come from the browser; any
// other parameter there must not change the pushed request.
func TestPARIgnoresParametersOutsideThePushedRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	uri := e.pushed(baseAuthParams("web-app", webRedirect))
	resp, err := noRedirect.Get(authURL(e, url.Values{"client_id": {"web-app"}, "request_uri": {uri}, "prompt": {"none"}}))
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, pathLogin+"?") {
		t.Fatalf("prompt added outside the pushed request took effect: %d %s", resp.StatusCode, loc)
	}
}

// TestPARRequestURIExpires: a request_uri is refused once its expires_in
// has passed, even if the janitor has not removed the row yet.
func TestPARRequestURIExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	uri := e.pushed(baseAuthParams("web-app", webRedirect))
	ctx := t.Context()
	ar, err := e.store.GetPARSession(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	ar.GetSession().SetExpiresAt(fosite.PushedAuthorizeRequestContext, time.Now().Add(-time.Second))
	stale := parURIPrefix + "stale-0123456789"
	if err := e.store.CreatePARSession(ctx, stale, ar); err != nil {
		t.Fatal(err)
	}
	resp, err := noRedirect.Get(authURL(e, url.Values{"client_id": {"web-app"}, "request_uri": {stale}}))
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, pathLogin) || resp.StatusCode == http.StatusOK {
		t.Fatalf("expired request_uri accepted: %d %s %s", resp.StatusCode, loc, body)
	}
}

// TestPARMultipartClientIDBinding: a multipart body (which fosite parses
// itself) cannot carry another client's client_id past the binding check.
func TestPARMultipartClientIDBinding(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, vs := range baseAuthParams("native-app", "http://127.0.0.1:8080/callback") {
		_ = mw.WriteField(k, vs[0])
	}
	_ = mw.Close()
	req, err := http.NewRequest(http.MethodPost, e.url(pathPAR), &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.SetBasicAuth("web-loopback", webSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readBody(t, resp); resp.StatusCode == http.StatusCreated {
		t.Fatalf("web-loopback pushed a request for native-app: %s", got)
	}
}

// TestResponseMode: discovery advertises response_modes_supported ["query"],
// so an explicit response_mode=query works; any other mode is refused with
// an error in the query (never a fragment or an auto-posting form), with iss.
func TestResponseMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	t.Run("case=query", func(t *testing.T) {
		v := baseAuthParams("web-app", webRedirect)
		v.Set("response_mode", "query")
		resp, err := noRedirect.Get(authURL(e, v))
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, pathLogin+"?") {
			t.Fatalf("response_mode=query refused: %d %s", resp.StatusCode, loc)
		}
	})
	for _, mode := range []string{"fragment", "form_post", "jwt", "query.jwt"} {
		t.Run("case="+mode, func(t *testing.T) {
			v := baseAuthParams("web-app", webRedirect)
			v.Set("response_mode", mode)
			resp, err := noRedirect.Get(authURL(e, v))
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || resp.StatusCode != http.StatusSeeOther || loc.Fragment != "" {
				t.Fatalf("status %d location %s: %s", resp.StatusCode, loc, body)
			}
			q := loc.Query()
			if !strings.HasPrefix(loc.String(), webRedirect+"?") || q.Get("error") != "unsupported_response_mode" || q.Get("iss") != e.srv.URL || q.Get("state") != "state-0123456789" {
				t.Fatalf("location = %s", loc)
			}
		})
	}
}

func TestPARResponseModeQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := baseAuthParams("web-app", webRedirect)
	v.Set("response_mode", "query")
	e.pushed(v)
	v.Set("response_mode", "fragment")
	if resp, out := e.postForm(pathPAR, v, "web-app", webSecret); resp.StatusCode != http.StatusBadRequest || out["error"] != "unsupported_response_mode" {
		t.Fatalf("PAR response_mode=fragment: %d %v", resp.StatusCode, out)
	}
}

// ageLogin moves the browser's login session's auth_time back by d.
func (b *browser) ageLogin(d time.Duration) {
	t := b.e.t
	t.Helper()
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name != b.e.p.sessionCookieName() {
			continue
		}
		ctx := t.Context()
		key := storage.HashKey(c.Value)
		ls, err := b.e.store.GetLoginSession(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		ls.AuthTime = ls.AuthTime.Add(-d)
		if err := b.e.store.DeleteLoginSession(ctx, key); err != nil {
			t.Fatal(err)
		}
		if err := b.e.store.CreateLoginSession(ctx, ls); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("no login session cookie")
}

// TestMaxAge: a login older than max_age (OpenID Connect Core §3.1.2.1)
// sends the user to sign in again instead of failing the request with
// login_required, which a client could only answer by sending the same
// request again; prompt=none still answers login_required.
func TestMaxAge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser()
	start := func(mutate func(url.Values)) string {
		v := baseAuthParams("web-app", webRedirect)
		mutate(v)
		return authURL(e, v)
	}
	if cb, _ := b.authorize(start(func(url.Values) {}), "approve"); cb.Query().Get("code") == "" {
		t.Fatalf("first login: %s", cb)
	}
	b.ageLogin(2 * time.Hour)

	// Recent enough: a code at once, no page.
	cb, pages := b.authorize(start(func(v url.Values) { v.Set("max_age", "10800") }), "approve")
	if cb.Query().Get("code") == "" || len(pages) != 0 {
		t.Fatalf("max_age=10800: pages=%v callback=%s", pages, cb)
	}
	// prompt=none cannot show the login page.
	cb, _ = b.authorize(start(func(v url.Values) { v.Set("max_age", "3600"); v.Set("prompt", "none") }), "approve")
	if cb.Query().Get("error") != "login_required" || cb.Query().Get("iss") != e.srv.URL {
		t.Fatalf("max_age with prompt=none: %s", cb)
	}
	// Too old: sign in again, then the code, with a fresh auth_time.
	before := time.Now().Add(-time.Second)
	cb, pages = b.authorize(start(func(v url.Values) { v.Set("max_age", "3600") }), "approve")
	code := cb.Query().Get("code")
	if code == "" || strings.Join(pages, ",") != "login" {
		t.Fatalf("max_age=3600: pages=%v callback=%s", pages, cb)
	}
	tok, err := e.webConfig().Exchange(t.Context(), code, oauth2.VerifierOption(strings.Repeat("v", 43)))
	if err != nil {
		t.Fatal(err)
	}
	idc, _ := e.verifyJWT(tok.Extra("id_token").(string))
	if time.Unix(idc.AuthTime, 0).Before(before.Truncate(time.Second)) {
		t.Fatalf("auth_time %d not refreshed", idc.AuthTime)
	}
}

// disableAlice marks alice disabled in the store without any containment
// (no session ended, no token revoked), as a concurrent or partial disable
// would leave things.
func (e *env) disableAlice() {
	e.t.Helper()
	ctx := e.t.Context()
	u, err := e.store.UserByID(ctx, "user-alice")
	if err != nil {
		e.t.Fatal(err)
	}
	u.Disabled = true
	if err := e.store.UpdateUser(ctx, u, u.Version); err != nil {
		e.t.Fatal(err)
	}
}

// TestDisabledUserGetsNoNewTokens: once a user is disabled, neither a code
// issued before nor a refresh token yields new tokens, even if containment
// has not (yet) revoked them; and the login session issues no code.
func TestDisabledUserGetsNoNewTokens(t *testing.T) {
	t.Parallel()
	for _, grant := range []string{"authorization_code", "refresh_token", "authorize"} {
		t.Run("case="+grant, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			conf := e.webConfig("openid", "offline_access")
			verifier := oauth2.GenerateVerifier()
			b := e.browser()
			cb, _ := b.authorize(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)), "approve")
			code := cb.Query().Get("code")
			if code == "" {
				t.Fatalf("callback = %s", cb)
			}
			switch grant {
			case "authorization_code":
				e.disableAlice()
				if _, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier)); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
					t.Fatalf("code of a disabled user exchanged: %v", err)
				}
			case "refresh_token":
				tok, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
				if err != nil || tok.RefreshToken == "" {
					t.Fatalf("exchange: %v", err)
				}
				e.disableAlice()
				resp, out := e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, "web-app", webSecret)
				if resp.StatusCode != http.StatusBadRequest || out["error"] != "invalid_grant" {
					t.Fatalf("refresh of a disabled user: %d %v", resp.StatusCode, out)
				}
			case "authorize":
				e.disableAlice()
				resp, err := b.c.Get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)))
				if err != nil {
					t.Fatal(err)
				}
				body := readBody(t, resp)
				if resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="/login"`) {
					t.Fatalf("disabled user's login session still signs in: %d %s", resp.StatusCode, resp.Request.URL)
				}
			}
		})
	}
}

// TestRevocationOnlyByOwner: RFC 7009 §2.1 — a client cannot revoke another
// client's token; the token stays active. fosite answers such a request
// 200 like an unknown token, so the answer does not reveal that the token
// exists.
func TestRevocationOnlyByOwner(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	at := e.ccToken("api:read")
	if resp, out := e.postForm(pathRevoke, url.Values{"token": {at}}, "web-app", webSecret); resp.StatusCode != http.StatusOK {
		t.Fatalf("foreign revoke: %d %v", resp.StatusCode, out)
	}
	if in := e.introspect(at); in["active"] != true {
		t.Fatalf("token revoked by a foreign client: %v", in)
	}
	if resp, _ := e.postForm(pathRevoke, url.Values{"token": {at}}, "svc", svcSecret); resp.StatusCode != http.StatusOK {
		t.Fatalf("owner revoke: %d", resp.StatusCode)
	}
	if in := e.introspect(at); len(in) != 1 || in["active"] != false {
		t.Fatalf("after revoke: %v", in)
	}
}

// TestPublicClientLimits: a public client gets no client_credentials token
// and cannot authenticate to introspection.
func TestPublicClientLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, out := e.postForm(pathToken, url.Values{"grant_type": {"client_credentials"}, "client_id": {"native-app"}}, "", "")
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("public client got a client_credentials token: %v", out)
	}
	at := e.ccToken("api:read")
	for _, pass := range []string{"", "x"} {
		resp, out = e.postForm(pathIntrospect, url.Values{"token": {at}}, "native-app", pass)
		if resp.StatusCode != http.StatusUnauthorized || out["active"] != nil {
			t.Fatalf("public client introspected (secret %q): %d %v", pass, resp.StatusCode, out)
		}
	}
}

// TestPromptNoneConsentRequired: signed in but without consent, prompt=none
// redirects consent_required to the client instead of showing a page.
func TestPromptNoneConsentRequired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser()
	if cb, _ := b.authorize(authURL(e, baseAuthParams("web-app", webRedirect)), "approve"); cb.Query().Get("code") == "" {
		t.Fatalf("first flow: %s", cb)
	}
	v := baseAuthParams("web-app", webRedirect)
	v.Set("scope", "openid email")
	v.Set("prompt", "none")
	cb, pages := b.authorize(authURL(e, v), "approve")
	if len(pages) != 0 || cb.Query().Get("error") != "consent_required" || cb.Query().Get("iss") != e.srv.URL {
		t.Fatalf("pages=%v callback=%s", pages, cb)
	}
	// The consent for "openid" does not cover "openid email" without asking.
	v.Del("prompt")
	if _, pages := b.authorize(authURL(e, v), "approve"); strings.Join(pages, ",") != "consent" {
		t.Fatalf("wider scope without consent page: pages=%v", pages)
	}
}

// tokensDownStore fails token lookups as an unreachable database would.
type tokensDownStore struct{ *memory.Store }

func (tokensDownStore) GetAccessTokenSession(context.Context, string, fosite.Session) (fosite.Requester, error) {
	return nil, fmt.Errorf("memory: dial: %w", storage.ErrUnavailable)
}

func (tokensDownStore) GetRefreshTokenSession(context.Context, string, fosite.Session) (fosite.Requester, error) {
	return nil, fmt.Errorf("memory: dial: %w", storage.ErrUnavailable)
}

// TestRevocationDatabaseUnavailableIs503: fosite turns a failed token
// lookup into temporarily_unavailable and then answers it 200, telling the
// client its token was revoked when nothing happened.
func TestRevocationDatabaseUnavailableIs503(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	at := e.ccToken("api:read")
	h, ok := e.p.fc.RevocationHandlers[0].(*foauth2.TokenRevocationHandler)
	if !ok {
		t.Fatalf("revocation handler is %T", e.p.fc.RevocationHandlers[0])
	}
	down := *h
	down.TokenRevocationStorage = tokensDownStore{e.store}
	e.p.fc.RevocationHandlers = fosite.RevocationHandlers{&down}
	resp, out := e.postForm(pathRevoke, url.Values{"token": {at}}, "svc", svcSecret)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || out["error"] != "temporarily_unavailable" {
		t.Fatalf("revoke with the database down: %d %v", resp.StatusCode, out)
	}
}

// TestIntrospectionDatabaseUnavailableIs503: a failed token lookup is not
// an inactive token.
func TestIntrospectionDatabaseUnavailableIs503(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	at := e.ccToken("api:read")
	h, ok := e.p.fc.TokenIntrospectionHandlers[0].(*foauth2.CoreValidator)
	if !ok {
		t.Fatalf("introspection handler is %T", e.p.fc.TokenIntrospectionHandlers[0])
	}
	down := *h
	down.CoreStorage = tokensDownStore{e.store}
	e.p.fc.TokenIntrospectionHandlers = fosite.TokenIntrospectionHandlers{&down}
	resp, out := e.postForm(pathIntrospect, url.Values{"token": {at}}, "svc", svcSecret)
	if resp.StatusCode != http.StatusServiceUnavailable || out["error"] != "temporarily_unavailable" {
		t.Fatalf("introspect with the database down: %d %v", resp.StatusCode, out)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url(pathUserinfo), nil)
	req.Header.Set("Authorization", "Bearer "+at)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, r2)
	if r2.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("userinfo with the database down: %d", r2.StatusCode)
	}
}
