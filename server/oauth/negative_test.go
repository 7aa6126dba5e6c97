package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// noRedirect reports the first response as-is.
var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func authURL(e *env, v url.Values) string { return e.url(pathAuthorize) + "?" + v.Encode() }

func baseAuthParams(client, redirect string) url.Values {
	return url.Values{
		"client_id": {client}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"state-0123456789"},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(strings.Repeat("v", 43))},
		"code_challenge_method": {"S256"},
	}
}

func TestAuthorizeRedirectValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name, client, redirect string
		wantPage               bool // error page, no redirect
	}{
		{"case=unregistered redirect", "web-app", "https://evil.example/cb", true},
		{"case=redirect differs by path", "web-app", webRedirect + "/x", true},
		{"case=unknown client", "nobody", webRedirect, true},
		{"case=native loopback any port", "native-app", "http://127.0.0.1:54321/callback", false},
		{"case=native loopback other path", "native-app", "http://127.0.0.1:54321/other", true},
		{"case=native localhost name refused", "native-app", "http://localhost:54321/callback", true},
		{"case=web loopback other port refused", "web-loopback", "http://127.0.0.1:8080/cb", true},
		{"case=web loopback exact port", "web-loopback", "http://127.0.0.1:9999/cb", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, err := noRedirect.Get(authURL(e, baseAuthParams(tc.client, tc.redirect)))
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			loc := resp.Header.Get("Location")
			if tc.wantPage {
				if loc != "" || resp.StatusCode < 400 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
					t.Fatalf("status %d location %q: %s", resp.StatusCode, loc, body)
				}
				return
			}
			// Accepted: not signed in, so on to the login page.
			if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, pathLogin+"?") {
				t.Fatalf("status %d location %q", resp.StatusCode, loc)
			}
		})
	}
}

// TestAuthorizeErrorsRedirectWithIss checks errors that go back to a valid
// redirect URI, each carrying iss (RFC 9207).
func TestAuthorizeErrorsRedirectWithIss(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name   string
		mutate func(url.Values)
		want   string
	}{
		{"case=missing PKCE", func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, "invalid_request"},
		{"case=plain PKCE", func(v url.Values) { v.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"case=implicit", func(v url.Values) { v.Set("response_type", "token") }, "unsupported_response_type"},
		{"case=hybrid", func(v url.Values) { v.Set("response_type", "code id_token") }, "unsupported_response_type"},
		{"case=request object", func(v url.Values) { v.Set("request", "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9.") }, "request_not_supported"},
		{"case=request uri", func(v url.Values) { v.Set("request_uri", "https://evil.example/req") }, "request_uri_not_supported"},
		{"case=unknown scope", func(v url.Values) { v.Set("scope", "openid admin") }, "invalid_scope"},
		{"case=prompt none without session", func(v url.Values) { v.Set("prompt", "none") }, "login_required"},
		{"case=short state", func(v url.Values) { v.Set("state", "abc") }, "invalid_state"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := baseAuthParams("web-app", webRedirect)
			tc.mutate(v)
			resp, err := noRedirect.Get(authURL(e, v))
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			q := loc.Query()
			if loc.Fragment != "" {
				q, _ = url.ParseQuery(loc.Fragment)
			}
			if !strings.HasPrefix(loc.String(), webRedirect) || q.Get("error") != tc.want || q.Get("iss") != e.srv.URL {
				t.Fatalf("location = %s", loc)
			}
		})
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name        string
		form        url.Values
		user, pass  string
		rawBody     string
		wantStatus  int
		wantError   string
		wantWWWAuth bool
	}{
		{name: "case=bad client secret", form: url.Values{"grant_type": {"client_credentials"}}, user: "svc", pass: "wrong",
			wantStatus: 401, wantError: "invalid_client", wantWWWAuth: true},
		{name: "case=unknown client", form: url.Values{"grant_type": {"client_credentials"}}, user: "ghost", pass: "x",
			wantStatus: 401, wantError: "invalid_client", wantWWWAuth: true},
		{name: "case=unknown grant type", form: url.Values{"grant_type": {"urn:example:magic"}}, user: "svc", pass: svcSecret,
			wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "case=password grant", form: url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {testPassword}},
			user: "svc", pass: svcSecret, wantStatus: 400, wantError: "unsupported_grant_type"},
		{name: "case=scope not registered", form: url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}},
			user: "svc", pass: svcSecret, wantStatus: 400, wantError: "invalid_scope"},
		{name: "case=malformed body", rawBody: "grant_type=%zz&%%%", user: "svc", pass: svcSecret, wantStatus: 400, wantError: "invalid_request"},
		{name: "case=empty body", rawBody: "", user: "svc", pass: svcSecret, wantStatus: 400, wantError: "invalid_request"},
		{name: "case=bogus code", form: url.Values{"grant_type": {"authorization_code"}, "code": {"bogus"}, "redirect_uri": {webRedirect}},
			user: "web-app", pass: webSecret, wantStatus: 400, wantError: "invalid_grant"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := tc.rawBody
			if tc.form != nil {
				body = tc.form.Encode()
			}
			req, _ := http.NewRequest(http.MethodPost, e.url(pathToken), strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(tc.user, tc.pass)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got := readBody(t, resp)
			if resp.StatusCode != tc.wantStatus || !strings.Contains(got, `"error":"`+tc.wantError+`"`) {
				t.Fatalf("status %d body %s", resp.StatusCode, got)
			}
			if www := resp.Header.Get("WWW-Authenticate"); tc.wantWWWAuth != (www == `Basic realm="bulwark"`) {
				t.Fatalf("WWW-Authenticate = %q", www)
			}
			if strings.Contains(got, "goroutine") || strings.Contains(got, tc.pass) && tc.pass != "" && tc.pass != "x" {
				t.Fatalf("response leaks details: %s", got)
			}
		})
	}
}

// codeFor runs a full browser authorization for web-app and returns a code.
func codeFor(t *testing.T, e *env, b *browser, verifier string) string {
	t.Helper()
	conf := e.webConfig("openid", "offline_access")
	opts := []oauth2.AuthCodeOption{}
	if verifier != "" {
		opts = append(opts, oauth2.S256ChallengeOption(verifier))
	}
	cb, _ := b.authorize(conf.AuthCodeURL("state-0123456789", opts...), "approve")
	code := cb.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s", cb)
	}
	return code
}

func TestCodeExchangeNegative(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	conf := e.webConfig("openid", "offline_access")
	b := e.browser()

	t.Run("case=wrong verifier", func(t *testing.T) {
		code := codeFor(t, e, b, oauth2.GenerateVerifier())
		_, err := conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		assertOAuthError(t, err, "invalid_grant")
	})
	t.Run("case=missing verifier", func(t *testing.T) {
		code := codeFor(t, e, b, oauth2.GenerateVerifier())
		_, err := conf.Exchange(ctx, code)
		assertOAuthError(t, err, "invalid_grant")
	})
	t.Run("case=code replay revokes issued tokens", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		code := codeFor(t, e, b, v)
		tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		if in := e.introspect(tok.AccessToken); in["active"] != true {
			t.Fatalf("fresh token inactive: %v", in)
		}
		_, err = conf.Exchange(ctx, code, oauth2.VerifierOption(v))
		assertOAuthError(t, err, "invalid_grant")
		for _, tk := range []string{tok.AccessToken, tok.RefreshToken} {
			if in := e.introspect(tk); in["active"] != false || len(in) != 1 {
				t.Fatalf("token after code replay = %v", in)
			}
		}
	})
	t.Run("case=code bound to client", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		code := codeFor(t, e, b, v)
		other := *conf
		other.ClientID, other.ClientSecret = "legacy", legacySecret
		other.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		_, err := other.Exchange(ctx, code, oauth2.VerifierOption(v))
		assertOAuthError(t, err, "invalid_grant")
	})
	t.Run("case=revoking refresh token revokes family", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		tok, err := conf.Exchange(ctx, codeFor(t, e, b, v), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		resp, _ := e.postForm(pathRevoke, url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}, "web-app", webSecret)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke status %d", resp.StatusCode)
		}
		for _, tk := range []string{tok.AccessToken, tok.RefreshToken} {
			if in := e.introspect(tk); in["active"] != false {
				t.Fatalf("after revocation = %v", in)
			}
		}
		if len(e.audited(EventTokenRevoked)) == 0 {
			t.Fatal("revocation not audited")
		}
	})
}

func assertOAuthError(t *testing.T, err error, code string) {
	t.Helper()
	re, ok := err.(*oauth2.RetrieveError)
	if !ok || re.ErrorCode != code {
		t.Fatalf("err = %v, want %s", err, code)
	}
}

func TestPKCEOptionalLegacyClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.browser()
	conf := &oauth2.Config{ClientID: "legacy", ClientSecret: legacySecret, RedirectURL: webRedirect, Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: e.url(pathAuthorize), TokenURL: e.url(pathToken), AuthStyle: oauth2.AuthStyleInParams}}
	cb, pages := b.authorize(conf.AuthCodeURL("state-0123456789"), "approve")
	if strings.Join(pages, ",") != "login" || cb.Query().Get("code") == "" {
		t.Fatalf("pages=%v callback=%s", pages, cb)
	}
	if _, err := conf.Exchange(context.Background(), cb.Query().Get("code")); err != nil {
		t.Fatalf("exchange without PKCE: %v", err)
	}
}

func TestIntrospectionNegative(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, out := e.postForm(pathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}, "svc", svcSecret)
	at, _ := out["access_token"].(string)
	if resp.StatusCode != http.StatusOK || at == "" {
		t.Fatalf("token: %d %v", resp.StatusCode, out)
	}
	parts := strings.Split(at, ".")
	tampered := parts[0] + "." + strings.TrimRight(parts[1], "=") + "x." + parts[2]

	t.Run("case=no client auth", func(t *testing.T) {
		resp, out := e.postForm(pathIntrospect, url.Values{"token": {at}}, "", "")
		if resp.StatusCode != http.StatusUnauthorized || out["error"] != "invalid_client" || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%d %v", resp.StatusCode, out)
		}
	})
	t.Run("case=bearer instead of client auth", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.url(pathIntrospect), strings.NewReader(url.Values{"token": {"x"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+at)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("case=wrong client secret", func(t *testing.T) {
		resp, out := e.postForm(pathIntrospect, url.Values{"token": {at}}, "svc", "nope")
		if resp.StatusCode != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Fatalf("%d %v", resp.StatusCode, out)
		}
	})
	for name, token := range map[string]string{
		"case=tampered jwt":     tampered,
		"case=garbage":          "not-a-token",
		"case=signature swap":   parts[0] + "." + parts[1] + "." + randomSig(),
		"case=refresh-ish hmac": "ory_rt_abc.def",
	} {
		t.Run(name, func(t *testing.T) {
			resp, out := e.postForm(pathIntrospect, url.Values{"token": {token}}, "svc", svcSecret)
			if resp.StatusCode != http.StatusOK || len(out) != 1 || out["active"] != false {
				t.Fatalf("%d %v", resp.StatusCode, out)
			}
		})
	}
}

func randomSig() string {
	b := make([]byte, 64)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
