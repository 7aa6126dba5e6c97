package console_test

import (
	"context"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/server"
	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/storage"
)

func TestSignIn(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	b := e.browser()

	p := b.get("/admin/")
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/admin/login") {
		t.Fatalf("anonymous overview: %d %q, want redirect to login", p.status, p.location())
	}
	b.login("root")
	p = b.get("/admin/")
	if p.status != http.StatusOK || !strings.Contains(p.body, "<h1>Overview</h1>") {
		t.Fatalf("overview after sign-in: %d", p.status)
	}
	if got := p.resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "script-src 'self'") || strings.Contains(got, "unsafe-inline") {
		t.Errorf("CSP = %q", got)
	}
	if got := p.resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q", got)
	}
	evs, _ := e.store.ListAudit(context.Background(), storage.AuditFilter{Event: "console.login"})
	if len(evs) != 1 || evs[0].Outcome != "success" || evs[0].Subject != "u-root" {
		t.Errorf("audit of sign-in: %+v", evs)
	}
}

func TestSignInRefused(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	e.addUser("enduser") // no admin scopes: not a console user
	disabled := e.addUser("gone", allScopes...)
	disabled.Disabled = true
	if err := e.store.UpdateUser(context.Background(), disabled, disabled.Version); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, user, password string }{
		{"case=wrong password", "root", "not the password"},
		{"case=unknown user", "nobody", adminPassword},
		{"case=no admin scopes", "enduser", adminPassword},
		{"case=disabled", "gone", adminPassword},
		{"case=empty password", "root", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.browser()
			p := b.submit("/admin/login", "/admin/login", url.Values{"username": {tc.user}, "password": {tc.password}})
			if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Incorrect username or password.") {
				t.Fatalf("status %d", p.status)
			}
			if v := b.cookie("bulwark_console"); v != "" {
				t.Errorf("a session cookie was set")
			}
			if p := b.get("/admin/"); p.status != http.StatusSeeOther {
				t.Errorf("overview after refused sign-in: %d", p.status)
			}
		})
	}
}

func TestSignInCSRF(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	b := e.browser()
	b.get("/admin/login") // sets the pre-session cookie
	for name, token := range map[string]string{"case=missing": "", "case=forged": "AAAA", "case=other browser": e.browser().csrf("/admin/login")} {
		form := url.Values{"username": {"root"}, "password": {adminPassword}}
		if token != "" {
			form.Set("csrf_token", token)
		}
		if p := b.post("/admin/login", form); p.status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", name, p.status)
		}
	}
}

func TestTOTPEnrolAndSignIn(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	b := e.browser()
	b.login("root")

	p := b.get("/admin/account")
	secret := regexp.MustCompile(`id="totp-secret" class="secret" type="text" value="([A-Z2-7]+)"`).FindStringSubmatch(p.body)
	pending := regexp.MustCompile(`name="pending" value="([^"]+)"`).FindStringSubmatch(p.body)
	if secret == nil || pending == nil || !strings.Contains(p.body, "otpauth://totp/Bulwark:root?") || !strings.Contains(p.body, "issuer=Bulwark") {
		t.Fatalf("enrol page lacks secret, Bulwark:root URI or pending field")
	}
	csrf := csrfRE.FindStringSubmatch(p.body)[1]

	// A wrong code does not enrol.
	p = b.post("/admin/account/totp", url.Values{"csrf_token": {csrf}, "pending": {pending[1]}, "code": {"000000"}})
	if p.status != http.StatusBadRequest {
		t.Fatalf("wrong enrolment code: %d", p.status)
	}
	code, err := totp.GenerateCode(secret[1], e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	p = b.post("/admin/account/totp", url.Values{"csrf_token": {csrf}, "pending": {pending[1]}, "code": {code}})
	if p.status != http.StatusOK || !strings.Contains(p.body, "Two-factor authentication is on") {
		t.Fatalf("enrol: %d", p.status)
	}
	u, _ := e.store.UserByID(context.Background(), "u-root")
	opened, err := e.box.Open(u.TOTPSecretSealed, []byte("u-root"))
	if err != nil || string(opened) != secret[1] {
		t.Fatalf("stored secret does not open with AAD = user id: %v", err)
	}
	if _, err := e.box.Open(u.TOTPSecretSealed, []byte("u-other")); err == nil {
		t.Fatal("sealed secret opened under another user's id")
	}

	// Sign in again: the password alone is not enough.
	e.clock.Advance(time.Minute)
	b2 := e.browser()
	p = b2.submit("/admin/login", "/admin/login", url.Values{"username": {"root"}, "password": {adminPassword}})
	if p.status != http.StatusSeeOther || p.location() != "/admin/login/totp" {
		t.Fatalf("password step: %d %q", p.status, p.location())
	}
	probe := e.browser()
	probe.setCookie("bulwark_console", b2.cookie("bulwark_console"))
	if p := probe.get("/admin/"); p.status != http.StatusSeeOther {
		t.Fatalf("half-signed-in session opened the console: %d", p.status)
	}
	p = b2.submit("/admin/login/totp", "/admin/login/totp", url.Values{"code": {"123456"}})
	if p.status != http.StatusUnauthorized {
		t.Fatalf("wrong code: %d", p.status)
	}
	pendingCookie := b2.cookie("bulwark_console")
	code, _ = totp.GenerateCode(secret[1], e.clock.Now())
	p = b2.submit("/admin/login/totp", "/admin/login/totp", url.Values{"code": {code}})
	if p.status != http.StatusSeeOther || p.location() != "/admin/" {
		t.Fatalf("right code: %d %q", p.status, p.location())
	}
	if b2.cookie("bulwark_console") == pendingCookie {
		t.Error("session id did not change after the second factor")
	}
	if p := b2.get("/admin/"); p.status != http.StatusOK {
		t.Fatalf("overview after TOTP sign-in: %d", p.status)
	}

	// The same code cannot be replayed for another sign-in.
	b3 := e.browser()
	b3.submit("/admin/login", "/admin/login", url.Values{"username": {"root"}, "password": {adminPassword}})
	if p := b3.submit("/admin/login/totp", "/admin/login/totp", url.Values{"code": {code}}); p.status != http.StatusUnauthorized {
		t.Fatalf("replayed code: %d, want 401", p.status)
	}
}

func TestSessionFixation(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	b := e.browser()
	b.setCookie("bulwark_console", "attacker-chosen-value")
	b.login("root")
	first := b.cookie("bulwark_console")
	if first == "" || first == "attacker-chosen-value" {
		t.Fatalf("session id not replaced at sign-in: %q", first)
	}
	b.login("root")
	second := b.cookie("bulwark_console")
	if second == first {
		t.Fatal("session id unchanged by a second sign-in")
	}
	if _, err := e.store.GetLoginSession(context.Background(), storage.HashKey(first)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("previous session still stored: %v", err)
	}
}

func TestSignOutEndsSessionServerSide(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	b := e.browser()
	b.login("root")
	id := b.cookie("bulwark_console")
	p := b.submit("/admin/", "/admin/logout", nil)
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/admin/login") {
		t.Fatalf("logout: %d %q", p.status, p.location())
	}
	if b.cookie("bulwark_console") != "" {
		t.Error("cookie not cleared")
	}
	if _, err := e.store.GetLoginSession(context.Background(), storage.HashKey(id)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("session still stored after sign-out: %v", err)
	}
	replay := e.browser()
	replay.setCookie("bulwark_console", id)
	if p := replay.get("/admin/"); p.status != http.StatusSeeOther {
		t.Fatalf("old session id still opens the console: %d", p.status)
	}
}

func TestTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []time.Duration // clock advances, each followed by a request that must succeed
		last  time.Duration   // the advance after which the session must be gone
	}{
		{"case=idle", []time.Duration{29 * time.Minute, 29 * time.Minute}, 30 * time.Minute},
		{"case=absolute", repeat(25*time.Minute, 28), 25 * time.Minute}, // 28×25 min = 11h40, +25 min > 12 h
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.addUser("root", allScopes...)
			b := e.browser()
			b.login("root")
			for i, d := range tc.steps {
				e.clock.Advance(d)
				if p := b.get("/admin/"); p.status != http.StatusOK {
					t.Fatalf("step %d: %d, session ended too early", i, p.status)
				}
			}
			e.clock.Advance(tc.last)
			p := b.get("/admin/")
			// The store may drop the session itself at the absolute
			// timeout, so the page cannot always say why.
			if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/admin/login") {
				t.Fatalf("after timeout: %d %q", p.status, p.location())
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	b := e.browser()
	b.login("root")
	other := e.browser()
	other.login("root")
	form := url.Values{"name": {"csrf victim"}, "grant_client_credentials": {"on"}, "token_endpoint_auth_method": {"client_secret_basic"}, "application_type": {"web"}}
	for name, token := range map[string]string{
		"case=missing":            "",
		"case=wrong":              "not-the-token",
		"case=other session's":    other.csrf("/admin/clients/new"),
		"case=sign-in form token": e.browser().csrf("/admin/login"),
	} {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		if token != "" {
			f.Set("csrf_token", token)
		}
		if p := b.post("/admin/clients/new", f); p.status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", name, p.status)
		}
	}
	if p := b.post("/admin/logout", url.Values{}); p.status != http.StatusForbidden {
		t.Errorf("logout without token: %d", p.status)
	}
	cs, _ := e.svc.ListClients(context.Background(), storage.ListOptions{})
	if len(cs) != 0 {
		t.Fatalf("a forged form created %d clients", len(cs))
	}
	// With the right token it works.
	if p := b.submit("/admin/clients/new", "/admin/clients/new", form); p.status != http.StatusOK {
		t.Fatalf("create with token: %d", p.status)
	}
}

func TestScopes(t *testing.T) {
	e := newEnv(t)
	e.addUser("auditor", apikeys.ScopeAuditRead)
	e.addUser("reader", apikeys.ScopeClientsRead)
	cl, _, err := e.svc.CreateClient(context.Background(), admin.Actor{ID: "test", Scopes: allScopes},
		admin.ClientInput{Name: "svc", GrantTypes: []string{"client_credentials"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, method, path string
		want               int
	}{
		{"auditor", http.MethodGet, "/admin/audit", http.StatusOK},
		{"auditor", http.MethodGet, "/admin/", http.StatusOK},
		{"auditor", http.MethodGet, "/admin/clients", http.StatusForbidden},
		{"auditor", http.MethodGet, "/admin/apikeys", http.StatusForbidden},
		{"auditor", http.MethodGet, "/admin/keys", http.StatusForbidden},
		{"auditor", http.MethodGet, "/admin/users", http.StatusForbidden},
		{"auditor", http.MethodPost, "/admin/keys/rotate", http.StatusForbidden},
		{"reader", http.MethodGet, "/admin/clients", http.StatusOK},
		{"reader", http.MethodGet, "/admin/clients/" + cl.ID, http.StatusOK},
		{"reader", http.MethodGet, "/admin/clients/new", http.StatusForbidden},
		{"reader", http.MethodPost, "/admin/clients/" + cl.ID + "/disable", http.StatusForbidden},
		{"reader", http.MethodPost, "/admin/clients/" + cl.ID + "/delete", http.StatusForbidden},
		{"reader", http.MethodGet, "/admin/audit", http.StatusForbidden},
	} {
		t.Run("case="+tc.user+" "+tc.method+" "+tc.path, func(t *testing.T) {
			b := e.browser()
			b.login(tc.user)
			var p page
			if tc.method == http.MethodGet {
				p = b.get(tc.path)
			} else {
				p = b.submit("/admin/", tc.path, url.Values{"alg": {"ES256"}})
			}
			if p.status != tc.want {
				t.Fatalf("status %d, want %d", p.status, tc.want)
			}
		})
	}
	got, err := e.svc.GetClient(context.Background(), cl.ID)
	if err != nil || got.Disabled {
		t.Fatalf("client changed by a user without write scope: %v", err)
	}
	// The navigation hides what the user may not open.
	b := e.browser()
	b.login("auditor")
	if p := b.get("/admin/"); strings.Contains(p.body, `href="/admin/clients"`) {
		t.Error("auditor sees the clients link")
	}
}

func TestPublicSessionRefused(t *testing.T) {
	e := newEnv(t)
	u := e.addUser("root", allScopes...)
	const id = "public-session-id-0123456789"
	now := e.clock.Now()
	if err := e.store.CreateLoginSession(context.Background(), &storage.LoginSession{
		Key: storage.HashKey(id), Kind: "public", Subject: u.ID, AuthTime: now, LastSeen: now, ExpiresAt: now.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bulwark_console", "bulwark_session"} {
		b := e.browser()
		b.setCookie(name, id)
		if p := b.get("/admin/"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/admin/login") {
			t.Errorf("public session in cookie %s: %d %q", name, p.status, p.location())
		}
	}
}

func TestCookieAttributes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []envOpt
		cookie string
		secure bool
	}{
		{"case=tls", []envOpt{secure}, "__Host-bulwark_console", true},
		{"case=plain http", nil, "bulwark_console", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			e.addUser("root", allScopes...)
			b := e.browser()
			p := b.submit("/admin/login", "/admin/login", url.Values{"username": {"root"}, "password": {adminPassword}})
			var found *http.Cookie
			for _, c := range p.resp.Cookies() {
				if c.Name == tc.cookie && c.Value != "" {
					found = c
				}
				if c.Name == "bulwark_session" || c.Name == "__Host-bulwark_session" {
					t.Errorf("console set the public session cookie")
				}
			}
			if found == nil {
				t.Fatalf("no %s cookie in %v", tc.cookie, p.resp.Header["Set-Cookie"])
			}
			if !found.HttpOnly || found.SameSite != http.SameSiteStrictMode || found.Path != "/" || found.Secure != tc.secure || found.Domain != "" {
				t.Errorf("cookie attributes: %+v", found)
			}
			if p := b.get("/admin/"); p.status != http.StatusOK {
				t.Fatalf("overview: %d", p.status)
			}
		})
	}
}

// noInlineCode fails when body has inline script or style.
var (
	inlineScript = regexp.MustCompile(`<script(?:\s[^>]*)?>`)
	styleAttr    = regexp.MustCompile(`(?i)\sstyle\s*=|<style`)
	handlerAttr  = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
)

func checkNoInlineCode(t *testing.T, path, body string) {
	t.Helper()
	for _, tag := range inlineScript.FindAllString(body, -1) {
		if !strings.Contains(tag, `src="/admin/static/`) {
			t.Errorf("%s: inline script tag %q", path, tag)
		}
	}
	if styleAttr.MatchString(body) {
		t.Errorf("%s: inline style", path)
	}
	if handlerAttr.MatchString(body) {
		t.Errorf("%s: inline event handler", path)
	}
}

func TestXSSProbe(t *testing.T) {
	const probe = `<script>alert(1)</script>`
	e := newEnv(t)
	e.addUser("root", allScopes...)
	b := e.browser()
	b.login("root")
	p := b.submit("/admin/clients/new", "/admin/clients/new", url.Values{
		"name": {probe}, "grant_client_credentials": {"on"},
		"token_endpoint_auth_method": {"client_secret_basic"}, "application_type": {"web"}, "scope": {""},
	})
	if p.status != http.StatusOK {
		t.Fatalf("create: %d", p.status)
	}
	cs, _ := e.svc.ListClients(context.Background(), storage.ListOptions{})
	if len(cs) != 1 || cs[0].Name != probe {
		t.Fatalf("client not created with the probe name")
	}
	id := cs[0].ID
	// A user and an API key named like the probe, too.
	if _, _, err := e.svc.CreateAPIKey(context.Background(), admin.Actor{ID: "test", Scopes: allScopes},
		admin.APIKeyInput{Name: probe, OwnerType: apikeys.OwnerService, OwnerID: probe, Scopes: []string{apikeys.ScopeAuditRead}}); err != nil {
		t.Fatal(err)
	}
	// A block on a client id like the probe (client ids in blocks are
	// whatever a caller sent), with the probe as reason too.
	now := e.clock.Now()
	if err := e.store.PutBlock(context.Background(), &storage.Block{Kind: "client", Value: probe, Reason: probe, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	escaped := html.EscapeString(probe)
	pages := map[string]string{"created": p.body}
	for _, path := range []string{
		"/admin/", "/admin/clients", "/admin/clients?q=" + url.QueryEscape(probe), "/admin/clients/" + id,
		"/admin/clients/" + id + "/edit", "/admin/clients/" + id + "/delete", "/admin/clients/" + id + "/disable",
		"/admin/apikeys", "/admin/apikeys?q=" + url.QueryEscape(probe), "/admin/audit?event=" + url.QueryEscape(probe), "/admin/keys", "/admin/users",
		"/admin/blocks",
	} {
		p := b.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("%s: %d", path, p.status)
		}
		pages[path] = p.body
	}
	// Listing pages must show the probe, escaped.
	for _, path := range []string{"/admin/clients", "/admin/clients/" + id, "/admin/clients/" + id + "/edit", "/admin/clients/" + id + "/delete", "/admin/apikeys", "/admin/blocks"} {
		if !strings.Contains(pages[path], escaped) && !strings.Contains(pages[path], "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s does not show the escaped name", path)
		}
	}
	// Lifting it answers with the list again (and, for an unknown block,
	// with an error page naming nothing): escaped too.
	for _, status := range []int{http.StatusSeeOther, http.StatusNotFound} {
		p := b.submit("/admin/blocks", "/admin/blocks/lift", url.Values{"kind": {"client"}, "value": {probe}})
		if p.status != status {
			t.Fatalf("lift the probe block: %d, want %d", p.status, status)
		}
		pages["lift "+strconv.Itoa(status)] = p.body
	}
	for path, body := range pages {
		if strings.Contains(body, probe) || strings.Contains(body, "alert(1)</script>") {
			t.Errorf("%s contains the raw probe", path)
		}
		checkNoInlineCode(t, path, body)
	}
}

func TestClientLifecycle(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	b := e.browser()
	b.login("root")
	p := b.submit("/admin/clients/new", "/admin/clients/new", url.Values{
		"name": {"Shop"}, "client_id": {"shop"}, "grant_authorization_code": {"on"}, "grant_refresh_token": {"on"},
		"redirect_uris": {"https://shop.example/cb\n"}, "scope": {"openid offline_access"},
		"token_endpoint_auth_method": {"client_secret_basic"}, "application_type": {"web"},
	})
	secret := regexp.MustCompile(`id="secret-value" class="secret" type="text" value="([^"]+)"`).FindStringSubmatch(p.body)
	if p.status != http.StatusOK || secret == nil {
		t.Fatalf("create: %d, secret shown: %v", p.status, secret != nil)
	}
	if p.resp.Header.Get("Cache-Control") != "no-store" {
		t.Error("secret page may be cached")
	}
	for _, path := range []string{"/admin/clients", "/admin/clients/shop", "/admin/clients/shop/edit", "/admin/audit"} {
		if strings.Contains(b.get(path).body, secret[1]) {
			t.Errorf("%s shows the secret again", path)
		}
	}
	// Invalid edit: problems shown, nothing saved.
	p = b.submit("/admin/clients/shop/edit", "/admin/clients/shop/edit", url.Values{
		"version": {"1"}, "name": {"Shop"}, "grant_authorization_code": {"on"}, "redirect_uris": {""},
		"token_endpoint_auth_method": {"client_secret_basic"}, "application_type": {"web"},
	})
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "redirect_uris") {
		t.Fatalf("invalid edit: %d", p.status)
	}
	c, _ := e.svc.GetClient(context.Background(), "shop")
	form := url.Values{
		"version": {strconv.FormatInt(c.Version, 10)}, "name": {"Shop v2"}, "grant_authorization_code": {"on"},
		"redirect_uris": {"https://shop.example/cb"}, "scope": {"openid"},
		"token_endpoint_auth_method": {"client_secret_basic"}, "application_type": {"web"},
	}
	if p := b.submit("/admin/clients/shop/edit", "/admin/clients/shop/edit", form); p.status != http.StatusSeeOther {
		t.Fatalf("edit: %d", p.status)
	}
	// A stale version is refused.
	if p := b.submit("/admin/clients/shop/edit", "/admin/clients/shop/edit", form); p.status != http.StatusConflict {
		t.Fatalf("stale edit: %d", p.status)
	}
	p = b.submit("/admin/clients/shop", "/admin/clients/shop/secret", nil)
	rotated := regexp.MustCompile(`id="secret-value" class="secret" type="text" value="([^"]+)"`).FindStringSubmatch(p.body)
	if p.status != http.StatusOK || rotated == nil || rotated[1] == secret[1] {
		t.Fatalf("rotate: %d", p.status)
	}
	if p := b.get("/admin/clients/shop/disable"); p.status != http.StatusOK || !strings.Contains(p.body, "Disable client") {
		t.Fatalf("disable confirmation: %d", p.status)
	}
	p = b.submit("/admin/clients/shop/disable", "/admin/clients/shop/disable", nil)
	if p.status != http.StatusOK || !strings.Contains(p.body, "Tokens revoked") {
		t.Fatalf("disable: %d", p.status)
	}
	if c, _ := e.svc.GetClient(context.Background(), "shop"); !c.Disabled {
		t.Fatal("client not disabled")
	}
	if p := b.get("/admin/clients/shop/delete"); p.status != http.StatusOK {
		t.Fatalf("delete confirmation: %d", p.status)
	}
	if _, err := e.svc.GetClient(context.Background(), "shop"); err != nil {
		t.Fatal("the confirmation page deleted the client")
	}
	if p := b.submit("/admin/clients/shop/delete", "/admin/clients/shop/delete", nil); p.status != http.StatusSeeOther {
		t.Fatalf("delete: %d", p.status)
	}
	if _, err := e.svc.GetClient(context.Background(), "shop"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("client still there: %v", err)
	}
	p = b.get("/admin/audit?client=shop")
	for _, ev := range []string{"client.created", "client.updated", "client.secret_rotated", "client.disabled", "client.deleted"} {
		if !strings.Contains(p.body, ev) {
			t.Errorf("audit page lacks %s", ev)
		}
	}
}

func TestAPIKeysKeysUsersAudit(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	b := e.browser()
	b.login("root")
	ctx := context.Background()

	p := b.submit("/admin/apikeys/new", "/admin/apikeys/new", url.Values{
		"name": {"deployer"}, "owner_type": {"service"}, "owner_id": {"ci"}, "scope_admin:clients:read": {"on"},
		"rotation_days": {"30"}, "grace_days": {"2"},
	})
	tok := regexp.MustCompile(`id="secret-value" class="secret" type="text" value="([^"]+)"`).FindStringSubmatch(p.body)
	if p.status != http.StatusOK || tok == nil {
		t.Fatalf("create API key: %d", p.status)
	}
	ks, _ := e.svc.ListAPIKeys(ctx, storage.ListOptions{})
	if len(ks) != 1 || ks[0].RotationPeriod != 30*24*time.Hour {
		t.Fatalf("API key not created with its policy: %+v", ks)
	}
	p = b.submit("/admin/apikeys", "/admin/apikeys/"+ks[0].ID+"/rotate", nil)
	newTok := regexp.MustCompile(`id="secret-value" class="secret" type="text" value="([^"]+)"`).FindStringSubmatch(p.body)
	if p.status != http.StatusOK || newTok == nil || newTok[1] == tok[1] {
		t.Fatalf("rotate API key: %d", p.status)
	}
	if strings.Contains(b.get("/admin/apikeys").body, newTok[1]) {
		t.Error("API key list shows a token")
	}
	if p := b.submit("/admin/apikeys/"+ks[0].ID+"/revoke", "/admin/apikeys/"+ks[0].ID+"/revoke", nil); p.status != http.StatusSeeOther {
		t.Fatalf("revoke API key: %d", p.status)
	}
	// Scope escalation is refused by the Service.
	e.addUser("limited", apikeys.ScopeAPIKeys)
	lb := e.browser()
	lb.login("limited")
	if p := lb.submit("/admin/apikeys/new", "/admin/apikeys/new", url.Values{
		"name": {"x"}, "owner_type": {"service"}, "owner_id": {"x"}, "scope_admin:users": {"on"},
	}); p.status != http.StatusForbidden {
		t.Fatalf("escalation: %d", p.status)
	}

	// Signing keys: rotate, then revoke the retired key.
	if p := b.submit("/admin/keys", "/admin/keys/rotate", url.Values{"alg": {"ES256"}}); p.status != http.StatusSeeOther {
		t.Fatalf("rotate signing key: %d", p.status)
	}
	sks, _ := e.svc.ListSigningKeys(ctx)
	var retired string
	for _, k := range sks {
		if k.State == storage.KeyRetired {
			retired = k.KID
		}
	}
	if retired == "" {
		t.Fatal("no retired key after rotation")
	}
	if p := b.submit("/admin/keys/"+retired+"/revoke", "/admin/keys/"+retired+"/revoke", nil); p.status != http.StatusSeeOther {
		t.Fatalf("revoke signing key: %d", p.status)
	}
	if p := b.get("/admin/keys"); !strings.Contains(p.body, "revoked") {
		t.Error("keys page does not show the revoked key")
	}

	// Users: create with a generated password, reset, disable (containment).
	p = b.submit("/admin/users/new", "/admin/users/new", url.Values{"username": {"alice"}, "email": {"alice@example.com"}})
	if p.status != http.StatusOK || !strings.Contains(p.body, "Generated password") {
		t.Fatalf("create user: %d", p.status)
	}
	alice, err := e.store.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if p := b.submit("/admin/users/"+alice.ID+"/password", "/admin/users/"+alice.ID+"/password", nil); p.status != http.StatusOK || !strings.Contains(p.body, "New password") {
		t.Fatalf("reset password: %d", p.status)
	}
	p = b.submit("/admin/users/"+alice.ID+"/disable", "/admin/users/"+alice.ID+"/disable", nil)
	if p.status != http.StatusOK || !strings.Contains(p.body, "Sessions ended") {
		t.Fatalf("disable user: %d", p.status)
	}

	// Audit log: filters and paging.
	p = b.get("/admin/audit")
	for _, ev := range []string{"apikey.create", "apikey.rotate", "apikey.revoke", "signing_key.revoked", "user.created", "user.disabled", "console.login"} {
		if !strings.Contains(p.body, ev) {
			t.Errorf("audit page lacks %s", ev)
		}
	}
	p = b.get("/admin/audit?event=apikey.rotate")
	if strings.Contains(p.body, "<code>apikey.create</code>") || !strings.Contains(p.body, "<code>apikey.rotate</code>") {
		t.Error("event filter not applied")
	}
	p = b.get("/admin/audit?actor=" + url.QueryEscape("user:u-limited"))
	if strings.Contains(p.body, "<code>apikey.create</code>") {
		t.Error("actor filter not applied")
	}
	future := e.clock.Now().Add(time.Hour).Format("2006-01-02T15:04")
	if p := b.get("/admin/audit?since=" + future); !strings.Contains(p.body, "No events match.") {
		t.Error("time filter not applied")
	}
	if p := b.get("/admin/audit?since=yesterday"); p.status != http.StatusBadRequest {
		t.Errorf("bad time filter: %d", p.status)
	}
	for i := range 60 {
		if err := e.store.AppendAudit(ctx, &storage.AuditEvent{Time: e.clock.Now(), Event: "test.page", Actor: "pager", Outcome: "success", Details: map[string]string{"n": strconv.Itoa(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	p = b.get("/admin/audit?actor=pager")
	older := regexp.MustCompile(`href="(/admin/audit\?[^"]+)">Older`).FindStringSubmatch(p.body)
	if older == nil || strings.Count(p.body, "<code>test.page</code>") != 50 {
		t.Fatalf("first page: %d events, older link %v", strings.Count(p.body, "<code>test.page</code>"), older)
	}
	p = b.get(html.UnescapeString(older[1]))
	if n := strings.Count(p.body, "<code>test.page</code>"); n != 10 || strings.Contains(p.body, ">Older") {
		t.Fatalf("second page: %d events", n)
	}
}

func TestDisabledAdminLosesSession(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	victim := e.addUser("ops", apikeys.ScopeAuditRead)
	b := e.browser()
	b.login("root")
	vb := e.browser()
	vb.login("ops")
	if p := b.submit("/admin/users/"+victim.ID+"/disable", "/admin/users/"+victim.ID+"/disable", nil); p.status != http.StatusOK {
		t.Fatalf("disable: %d", p.status)
	}
	if p := vb.get("/admin/audit"); p.status != http.StatusSeeOther {
		t.Fatalf("disabled admin still signed in: %d", p.status)
	}
}

// TestBehindServerProtection mounts the console on the server's admin
// router with its protection chain (strict form input, page headers), as
// cmd/bulwark does, and runs a sign-in and a form through it.
func TestBehindServerProtection(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv, err := server.New(server.Config{Logger: log, DB: e.store, Admin: []server.Mounter{e.console}, Protection: &server.Protection{}})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(srv.AdminHandler())
	t.Cleanup(e.srv.Close)
	b := e.browser()
	b.login("root")
	p := b.submit("/admin/users/new", "/admin/users/new", url.Values{
		"username": {"carol"}, "scope_admin:audit:read": {"on"}, "scope_admin:clients:read": {"on"},
	})
	if p.status != http.StatusOK || !strings.Contains(p.body, "Generated password") {
		t.Fatalf("create user through protection: %d", p.status)
	}
	if csp := p.resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if p := b.get("/admin/static/console.css"); p.status != http.StatusOK || !strings.Contains(p.resp.Header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %q", p.status, p.resp.Header.Get("Content-Type"))
	}
	if p := b.get("/admin/static/style.css"); p.status != http.StatusNotFound {
		t.Errorf("non-console asset served: %d", p.status)
	}
}
