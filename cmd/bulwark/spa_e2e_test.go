package main

// A single-page app on its own origin, in headless Chromium, driving the
// real OIDC library oidc-client-ts (pinned in .ci/run, installed under
// .ci/node) against the assembled server on Postgres: sign-in, code
// exchange with PKCE, userinfo, refresh and revocation all cross origins
// through CORS. A page on an unregistered origin is refused, and its
// refused requests change nothing on the server.

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// oidcClientTS is the browser bundle of the pinned oidc-client-ts.
const oidcClientTS = "../../.ci/node/node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js"

// spaBrowser returns the Chromium binary and the oidc-client-ts bundle,
// skipping locally and failing in CI when either is missing.
func spaBrowser(t *testing.T) (bin string, bundle []byte) {
	t.Helper()
	bin = chromiumBinary(t)
	bundle, err := os.ReadFile(filepath.FromSlash(oidcClientTS))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("oidc-client-ts (%s) not found; .ci/run installs it", oidcClientTS)
		}
		t.Skipf("oidc-client-ts (%s) not found (run .ci/run)", oidcClientTS)
	}
	return bin, bundle
}

// spaPage is the single-page app: oidc-client-ts with a public client and
// PKCE (the library's default), its fetches logged so the test can see
// which cross-origin calls the browser let it read.
const spaPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SPA</title>
<script src="/oidc-client-ts.min.js"></script></head>
<body><h1>SPA</h1><pre id="out"></pre>
<script>
const issuer = "{{ISSUER}}";
window.fetchLog = [];
const realFetch = window.fetch.bind(window);
window.fetch = async (input, init) => {
  const url = typeof input === "string" ? input : (input.url || String(input));
  try {
    const res = await realFetch(input, init);
    window.fetchLog.push({url: url.split("?")[0], status: res.status});
    return res;
  } catch (e) {
    window.fetchLog.push({url: url.split("?")[0], error: e.name});
    throw e;
  }
};
const mgr = new oidc.UserManager({
  authority: issuer,
  client_id: "spa",
  redirect_uri: location.origin + "/callback",
  response_type: "code",
  scope: "openid profile email offline_access",
  loadUserInfo: true,
  automaticSilentRenew: false,
  userStore: new oidc.WebStorageStateStore({store: window.localStorage}),
});
const show = (id, text) => {
  const p = document.createElement("p");
  p.id = id;
  p.textContent = text;
  document.body.appendChild(p);
};
window.spa = {
  signIn: () => { mgr.signinRedirect(); return true; },
  tokens: async () => {
    const u = await mgr.getUser();
    return JSON.stringify({access: u.access_token, refresh: u.refresh_token});
  },
  refresh: async () => {
    const u = await mgr.signinSilent();
    return JSON.stringify({access: u.access_token, refresh: u.refresh_token, sub: u.profile.sub});
  },
  revoke: async () => { await mgr.revokeTokens(["access_token", "refresh_token"]); return "revoked"; },
  // A userinfo call with a bad token: the 401 and its challenge must be
  // readable by a registered origin (Access-Control-Expose-Headers).
  badUserinfo: async () => {
    const res = await fetch(issuer + "/userinfo", {headers: {Authorization: "Bearer not-a-token"}});
    return JSON.stringify({status: res.status, challenge: res.headers.get("WWW-Authenticate")});
  },
  fetches: () => JSON.stringify(window.fetchLog),
};
if (location.pathname === "/callback") {
  mgr.signinCallback().then(
    (u) => show("signed-in", JSON.stringify({sub: u.profile.sub, name: u.profile.preferred_username, email: u.profile.email, refresh: !!u.refresh_token})),
    (e) => show("failed", String(e && e.message || e)));
}
</script></body></html>`

// foreignPage is a page on an origin no client registered. Each probe
// reports whether the browser let it read the answer.
const foreignPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Foreign</title></head>
<body><h1>Foreign</h1>
<script>
const issuer = "{{ISSUER}}";
const attempt = (p) => p.then((r) => "read:" + r.status, (e) => "blocked:" + e.name);
window.probe = async (access, refresh) => JSON.stringify({
  token: await attempt(fetch(issuer + "/oauth2/token", {method: "POST",
    body: new URLSearchParams({grant_type: "refresh_token", client_id: "spa", refresh_token: refresh})})),
  userinfo: await attempt(fetch(issuer + "/userinfo", {headers: {Authorization: "Bearer " + access}})),
  revoke: await attempt(fetch(issuer + "/oauth2/revoke", {method: "POST",
    body: new URLSearchParams({client_id: "spa", token: access})})),
  introspect: await attempt(fetch(issuer + "/oauth2/introspect", {method: "POST",
    body: new URLSearchParams({token: access})})),
  discovery: await attempt(fetch(issuer + "/.well-known/openid-configuration")),
});
</script></body></html>`

// serveOn serves h on a loopback address of its own (another origin).
func serveOn(t *testing.T, addr string, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestE2ESinglePageAppAcrossOrigins is issue 13's CORS scenario in a real
// browser.
func TestE2ESinglePageAppAcrossOrigins(t *testing.T) {
	bin, bundle := spaBrowser(t)
	s := startE2E(t, pgtest.NewDatabase(t))
	ctx := context.Background()

	// The origins follow client changes, as in `bulwark serve`.
	octx, ocancel := context.WithCancel(ctx)
	odone := make(chan struct{})
	go func() {
		defer close(odone)
		s.app.origins.Run(octx)
	}()
	t.Cleanup(func() { ocancel(); <-odone })

	page := func(body string, withBundle bool) http.Handler {
		body = strings.ReplaceAll(body, "{{ISSUER}}", s.issuer)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if withBundle && r.URL.Path == "/oidc-client-ts.min.js" {
				w.Header().Set("Content-Type", "text/javascript")
				_, _ = w.Write(bundle)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(body))
		})
	}
	spaURL := serveOn(t, "127.0.0.2:0", page(spaPage, true))
	foreignURL := serveOn(t, "127.0.0.3:0", page(foreignPage, false))

	// A public SPA client whose CORS origins are its redirect URIs' ("+"),
	// registered while the server runs: the origins follow at once.
	if err := s.app.store.CreateClient(ctx, &storage.Client{
		ID: "spa", Name: "Single-page app", RedirectURIs: []string{spaURL + "/callback"},
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		Scopes: []string{"openid", "profile", "email", "offline_access"}, TokenEndpointAuthMethod: storage.AuthMethodNone,
		ApplicationType: storage.AppTypeWeb, AllowedCORSOrigins: []string{storage.CORSOriginsFromRedirects},
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(convergeWithin)
	for !s.app.origins.ClientAllows("spa", spaURL) {
		if time.Now().After(deadline) {
			t.Fatalf("the new client's origin %s did not arrive within %v", spaURL, convergeWithin)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}

	bctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(bctx,
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()))
	defer acancel()
	tab, tcancel := chromedp.NewContext(actx)
	defer tcancel()

	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tab, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	eval := func(step, expr string) string {
		t.Helper()
		out, err := chromedp.Run(tab, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		return out
	}
	type tokens struct{ Access, Refresh, Sub string }
	decode := func(step, js string) tokens {
		t.Helper()
		var out tokens
		if err := json.Unmarshal([]byte(js), &out); err != nil || out.Access == "" || out.Refresh == "" {
			t.Fatalf("%s: %q (%v)", step, js, err)
		}
		return out
	}

	// Sign in: the library redirects to the issuer, a person signs in and
	// consents, the issuer redirects back, and the library exchanges the
	// code (with its PKCE verifier) and loads userinfo, cross-origin.
	do("open the SPA", chromedp.Navigate(spaURL+"/"), chromedp.WaitVisible(chromedp.CSS("h1")))
	do("sign in", chromedp.Evaluate[chromedp.Void]("spa.signIn()"), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "alice"), chromedp.SendKeys(chromedp.ID("password"), e2ePassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	do("consent", chromedp.WaitVisible(chromedp.CSS(`button[value="approve"]`)), chromedp.Click(chromedp.CSS(`button[value="approve"]`)))
	do("callback", chromedp.WaitVisible(chromedp.CSS("#signed-in, #failed")))
	if msg := eval("callback outcome", `document.getElementById("failed")?.textContent || ""`); msg != "" {
		t.Fatalf("the library's sign-in callback failed: %s\nfetches: %s", msg, eval("log", "spa.fetches()"))
	}
	var profile struct {
		Sub, Name, Email string
		Refresh          bool
	}
	if err := json.Unmarshal([]byte(eval("profile", `document.getElementById("signed-in").textContent`)), &profile); err != nil {
		t.Fatal(err)
	}
	if profile.Sub == "" || profile.Name != "alice" || profile.Email != "alice@example.com" || !profile.Refresh {
		t.Fatalf("profile after sign-in: %+v", profile)
	}
	var calls []struct {
		URL    string
		Status int
		Error  string
	}
	if err := json.Unmarshal([]byte(eval("fetch log", "spa.fetches()")), &calls); err != nil {
		t.Fatal(err)
	}
	read := map[string]int{}
	for _, c := range calls {
		if c.Error != "" {
			t.Fatalf("the browser blocked %s: %s", c.URL, c.Error)
		}
		read[strings.TrimPrefix(c.URL, s.issuer)] = c.Status
	}
	t.Logf("cross-origin calls the SPA read while signing in: %v", read)
	if read["/oauth2/token"] != http.StatusOK || read["/userinfo"] != http.StatusOK {
		t.Fatalf("cross-origin calls the SPA read: %v", read)
	}
	first := decode("tokens", eval("tokens", "spa.tokens()"))
	if claims := s.introspect(first.Access); claims["active"] != true || claims["client_id"] != "spa" {
		t.Fatalf("the SPA's access token: %v", claims)
	}

	// A registered origin reads a userinfo refusal and its challenge.
	var bad struct {
		Status    int
		Challenge string
	}
	if err := json.Unmarshal([]byte(eval("bad userinfo", "spa.badUserinfo()")), &bad); err != nil {
		t.Fatal(err)
	}
	if bad.Status != http.StatusUnauthorized || !strings.Contains(bad.Challenge, "invalid_token") {
		t.Fatalf("userinfo refusal as the SPA read it: %+v", bad)
	}

	// A page on an unregistered origin, holding the SPA's tokens, is
	// refused everywhere but the public discovery document.
	do("open the foreign page", chromedp.Navigate(foreignURL+"/"), chromedp.WaitVisible(chromedp.CSS("h1")))
	var probe map[string]string
	arg, _ := json.Marshal([]string{first.Access, first.Refresh})
	if err := json.Unmarshal([]byte(eval("foreign probe", "probe(..."+string(arg)+")")), &probe); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{"token", "userinfo", "revoke", "introspect"} {
		if !strings.HasPrefix(probe[ep], "blocked:") {
			t.Fatalf("the unregistered origin read %s: %v", ep, probe)
		}
	}
	t.Logf("the unregistered origin's probes: %v", probe)
	if probe["discovery"] != "read:200" {
		t.Fatalf("discovery must stay public: %v", probe)
	}
	// Its refused revocation revoked nothing, and its refused refresh
	// consumed nothing: the SPA's refresh token still works below.
	if claims := s.introspect(first.Access); claims["active"] != true {
		t.Fatalf("a refused cross-origin revocation revoked the token: %v", claims)
	}

	// Back in the SPA: refresh (rotation), then revocation, through the
	// library.
	do("back to the SPA", chromedp.Navigate(spaURL+"/"), chromedp.WaitVisible(chromedp.CSS("h1")))
	second := decode("refresh", eval("refresh", "spa.refresh()"))
	if second.Access == first.Access || second.Refresh == first.Refresh || second.Sub != profile.Sub {
		t.Fatalf("refresh did not rotate the tokens: %+v", second)
	}
	if claims := s.introspect(second.Access); claims["active"] != true {
		t.Fatalf("the refreshed access token: %v", claims)
	}
	if got := eval("revoke", "spa.revoke()"); got != "revoked" {
		t.Fatalf("revoke: %q", got)
	}
	for name, tok := range map[string]string{"access": second.Access, "refresh": second.Refresh} {
		if claims := s.introspect(tok); claims["active"] != false {
			t.Fatalf("the %s token survived the SPA's revocation: %v", name, claims)
		}
	}
	if err := json.Unmarshal([]byte(eval("fetch log", "spa.fetches()")), &calls); err != nil {
		t.Fatal(err)
	}
	read = map[string]int{}
	for _, c := range calls {
		if c.Error != "" {
			t.Fatalf("the browser blocked %s: %s", c.URL, c.Error)
		}
		read[strings.TrimPrefix(c.URL, s.issuer)] = c.Status
	}
	if read["/oauth2/token"] != http.StatusOK || read["/oauth2/revoke"] != http.StatusOK {
		t.Fatalf("cross-origin calls the SPA read after refresh and revocation: %v", read)
	}
}

// TestE2ECORSOnlyWhereDeclared enumerates every route of both listeners:
// each declares its cross-origin policy, only token, revocation and
// userinfo answer per client, only discovery and JWKS answer every
// origin, and no other route — introspection and the whole admin listener
// included — sends any Access-Control-* header to a registered origin,
// for any of its methods or a preflight.
func TestE2ECORSOnlyWhereDeclared(t *testing.T) {
	s := startE2E(t, pgtest.NewDatabase(t))
	// A loopback origin: redirects to it are not followed anyway.
	const origin = "http://127.0.0.9:8081"
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if err := s.app.store.CreateClient(context.Background(), &storage.Client{
		ID: "spa", Name: "SPA", RedirectURIs: []string{origin + "/callback"},
		GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"}, Scopes: []string{"openid"},
		TokenEndpointAuthMethod: storage.AuthMethodNone, ApplicationType: storage.AppTypeWeb, AllowedCORSOrigins: []string{"+"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.app.origins.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	perClient := map[string]bool{"/oauth2/token": true, "/oauth2/revoke": true, "/userinfo": true}
	public := map[string]bool{"/.well-known/openid-configuration": true, "/.well-known/oauth-authorization-server": true, "/.well-known/jwks.json": true}
	vars := regexp.MustCompile(`\{[^}]*\}`)
	seen := map[string]bool{}
	for _, rt := range s.app.server.Routes() {
		want := protect.CORSNone
		switch {
		case rt.Listener == "public" && perClient[rt.Template]:
			want = protect.CORSClientOrigins
		case rt.Listener == "public" && public[rt.Template]:
			want = protect.CORSAnyOrigin
		}
		if rt.Policy.CORS.Mode != want {
			t.Errorf("%s %s declares CORS mode %d, want %d", rt.Listener, rt.Template, rt.Policy.CORS.Mode, want)
		}
		seen[rt.Template] = true
		base := s.issuer
		if rt.Listener == "admin" {
			base = s.adminURL
		}
		methods := append(slices.Clone(rt.Methods), http.MethodOptions)
		if len(rt.Methods) == 0 {
			methods = []string{http.MethodGet, http.MethodPost, http.MethodOptions}
		}
		for _, m := range slices.Compact(methods) {
			req, err := http.NewRequest(m, base+vars.ReplaceAllString(rt.Template, "x"), strings.NewReader("client_id=spa"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", origin)
			if m == http.MethodOptions {
				req.Header.Set("Access-Control-Request-Method", http.MethodPost)
			}
			res, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			if res.StatusCode >= 500 {
				t.Errorf("%s %s %s: %d", rt.Listener, m, rt.Template, res.StatusCode)
			}
			acao := res.Header.Get("Access-Control-Allow-Origin")
			switch {
			case want == protect.CORSAnyOrigin && m != http.MethodOptions:
				if acao != "*" {
					t.Errorf("%s %s: Access-Control-Allow-Origin %q, want *", m, rt.Template, acao)
				}
			case want == protect.CORSClientOrigins:
				if acao != origin {
					t.Errorf("%s %s: Access-Control-Allow-Origin %q, want %s", m, rt.Template, acao, origin)
				}
			default:
				for name := range res.Header {
					if strings.HasPrefix(name, "Access-Control-") {
						t.Errorf("%s %s %s answered cross-origin: %s", rt.Listener, m, rt.Template, name)
					}
				}
			}
			if res.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("%s %s: credentials mode", m, rt.Template)
			}
		}
	}
	for _, p := range []string{"/oauth2/token", "/oauth2/revoke", "/userinfo", "/oauth2/introspect", "/.well-known/jwks.json"} {
		if !seen[p] {
			t.Errorf("route %s not enumerated", p)
		}
	}
}
