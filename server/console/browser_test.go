package console_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/storage"
)

const chromiumPath = "/usr/bin/chromium"

// chromium returns the browser binary, skipping the test locally and failing
// it in CI when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{chromiumPath, "chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found; CI must install it")
	}
	t.Skip("chromium not found")
	return ""
}

// artifacts is where screenshots go: $BULWARK_ARTIFACTS or a temp dir.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BULWARK_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// seed fills the store with a plausible installation, spread over the last
// days so that the pages show real ages.
func seed(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	root := admin.Actor{ID: "user:u-root", Scopes: append([]string{apikeys.ScopeIntrospect}, allScopes...)}
	e.clock.Advance(-72 * time.Hour)
	for _, c := range []admin.ClientInput{
		{ID: "storefront", Name: "Storefront", GrantTypes: []string{"authorization_code", "refresh_token"},
			RedirectURIs: []string{"https://shop.example.com/callback"}, Scopes: []string{"openid", "profile", "email", "offline_access"}},
		{ID: "mobile-app", Name: "Mobile app", GrantTypes: []string{"authorization_code", "refresh_token"}, TokenEndpointAuthMethod: "none",
			ApplicationType: "native", RedirectURIs: []string{"http://127.0.0.1/callback"}, Scopes: []string{"openid", "offline_access"}},
		{ID: "billing-worker", Name: "Billing worker", GrantTypes: []string{"client_credentials"}, Scopes: []string{"invoices.read"}},
		{ID: "reporting", Name: "Reporting dashboard", GrantTypes: []string{"client_credentials"}},
	} {
		if _, _, err := e.svc.CreateClient(ctx, root, c); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(7 * time.Hour)
	}
	if _, _, err := e.svc.DisableClient(ctx, root, "reporting"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []admin.UserInput{
		{Username: "alice", Email: "alice@example.com", AdminScopes: []string{apikeys.ScopeAuditRead, apikeys.ScopeClientsRead}},
		{Username: "bob", Email: "bob@example.com"},
	} {
		if _, _, err := e.svc.CreateUser(ctx, root, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []admin.APIKeyInput{
		{Name: "billing-sync", OwnerType: apikeys.OwnerService, OwnerID: "billing", Scopes: []string{apikeys.ScopeClientsRead}},
		{Name: "ci-deployer", OwnerType: apikeys.OwnerService, OwnerID: "github-actions", Scopes: []string{apikeys.ScopeClientsRead, apikeys.ScopeClientsWrite}, RotationPeriod: 30 * 24 * time.Hour, GracePeriod: 48 * time.Hour},
		{Name: "introspection", OwnerType: apikeys.OwnerClient, OwnerID: "storefront", Scopes: []string{apikeys.ScopeIntrospect}},
	} {
		if _, _, err := e.svc.CreateAPIKey(ctx, root, k); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(5 * time.Hour)
	}
	// Token traffic and a few failures over the last day, as the OAuth
	// endpoints would record them.
	e.clock.Advance(72*time.Hour - 28*time.Hour - 15*time.Hour)
	now := e.clock.Now()
	for i := range 22 {
		ev := &storage.AuditEvent{Time: now.Add(-time.Duration(22-i) * time.Hour), Event: "oauth.token.issued", Outcome: "success",
			ClientID: []string{"storefront", "billing-worker", "mobile-app"}[i%3], Actor: "storefront", SourceIP: "203.0.113.7"}
		if i%7 == 4 {
			ev.Event, ev.Outcome, ev.ClientID, ev.Actor = "oauth.login", "failure", "", "mallory"
		}
		if err := e.store.AppendAudit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// Blocks in force, as the anomaly detector and an admin placed them.
	for _, b := range []*storage.Block{
		{Kind: "ip", Value: "198.51.100.23", Reason: "failed logins", CreatedAt: now.Add(-3 * time.Hour), ExpiresAt: now.Add(21 * time.Hour)},
		{Kind: "client", Value: "mobile-app", Reason: "refresh_reuse: 10 in 10m0s", CreatedAt: now.Add(-2 * time.Minute), ExpiresAt: now.Add(3 * time.Minute)},
	} {
		if err := e.store.PutBlock(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.AppendAudit(ctx, &storage.AuditEvent{Time: now.Add(-3 * time.Hour), Event: "block.placed", Actor: "detector", Outcome: "blocked", SourceIP: "198.51.100.23", Details: map[string]string{"kind": "ip", "reason": "failed logins"}}); err != nil {
		t.Fatal(err)
	}
}

// TestBrowser drives the console in headless Chromium: sign in, create a
// client and read its secret once, rotate an API key, revoke a signing key,
// find those events in the audit log, lift a block, and check that a client
// named like a script stays text. Screenshots of the main pages go to BULWARK_ARTIFACTS.
func TestBrowser(t *testing.T) {
	bin := chromium(t)
	dir := artifacts(t)
	e := newEnv(t)
	e.addUser("root", allScopes...)
	seed(t, e)
	const probe = `<script>alert(1)</script>`

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
	)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	var dialogs atomic.Int32
	if err := chromedp.Listen(bctx, func(ev any) {
		if _, ok := ev.(*cdppage.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
			// Dismiss it from another goroutine (Listen forbids commands
			// in the callback), so the test fails on the count instead
			// of hanging.
			go func() {
				_, _ = chromedp.Run(bctx, chromedp.Action[struct{}](func(ctx context.Context, tg *chromedp.Target) (struct{}, error) {
					_, err := cdp.Call(ctx, tg, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: false})
					return struct{}{}, err
				}))
			}()
		}
	}); err != nil {
		t.Fatal(err)
	}

	base := e.srv.URL
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	submit := func(step string, sel chromedp.CSS) {
		t.Helper()
		if _, err := chromedp.RunResponse(bctx, chromedp.Click(sel)); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	text := func(sel chromedp.CSS) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	htmlOf := func() string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.OuterHTML(chromedp.CSS("html")))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Sign in.
	do("login page", chromedp.Navigate(base+"/admin/login"), chromedp.WaitVisible(chromedp.ID("username")))
	shot("00-sign-in")
	do("credentials", chromedp.SendKeys(chromedp.ID("username"), "root"), chromedp.SendKeys(chromedp.ID("password"), adminPassword))
	submit("sign in", `form button[type="submit"]`)
	if h := text("h1"); h != "Overview" {
		t.Fatalf("after sign-in: h1 %q", h)
	}
	shot("01-overview")

	// Create a client named like a script; read the secret once.
	do("new client", chromedp.Navigate(base+"/admin/clients/new"), chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), probe),
		chromedp.SendKeys(chromedp.ID("redirect_uris"), "https://app.example.com/callback"))
	submit("create client", `form.form button[type="submit"]`)
	secret, err := chromedp.Run(bctx, chromedp.Value(chromedp.ID("secret-value")))
	if err != nil || len(secret) < 40 {
		t.Fatalf("secret not shown after create (%v): %d chars", err, len(secret))
	}
	shot("03-client-secret")
	submit("to the client", `.secret-panel a.btn-primary`)
	if h := text("h1"); h != probe {
		t.Fatalf("client page h1 = %q, want the probe as text", h)
	}
	if strings.Contains(htmlOf(), secret) {
		t.Fatal("client page shows the secret again")
	}
	do("clients", chromedp.Navigate(base+"/admin/clients"), chromedp.WaitVisible(chromedp.CSS("table")))
	if h := htmlOf(); strings.Contains(h, secret) || !strings.Contains(h, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatal("clients list shows the secret or not the escaped probe")
	}
	shot("02-clients")

	// Rotate an API key.
	do("api keys", chromedp.Navigate(base+"/admin/apikeys"), chromedp.WaitVisible(chromedp.CSS("table")))
	shot("04-api-keys")
	submit("rotate key", `button[aria-label="Rotate billing-sync"]`)
	token, err := chromedp.Run(bctx, chromedp.Value(chromedp.ID("secret-value")))
	if err != nil || !strings.Contains(text("h1"), "API key") || token == "" {
		t.Fatalf("rotated token not shown: %v", err)
	}

	// Emergency-revoke the next signing key, with the confirmation step.
	var nextKID string
	ks, _ := e.svc.ListSigningKeys(context.Background())
	for _, k := range ks {
		if k.State == storage.KeyNext {
			nextKID = k.KID
		}
	}
	do("signing keys", chromedp.Navigate(base+"/admin/keys"), chromedp.WaitVisible(chromedp.CSS("table")))
	shot("05-signing-keys")
	submit("revoke link", chromedp.CSS(`a[href="/admin/keys/`+nextKID+`/revoke"]`))
	if h := text("h1"); h != "Revoke signing key?" {
		t.Fatalf("confirmation page h1 %q", h)
	}
	submit("confirm revoke", `.confirm button[type="submit"]`)
	if !strings.Contains(text(".notice-ok"), "revoked") {
		t.Fatal("no revocation notice")
	}

	// The audit log shows all of it; filter by event too.
	do("audit", chromedp.Navigate(base+"/admin/audit"), chromedp.WaitVisible(chromedp.CSS("table")))
	body := text("table")
	for _, ev := range []string{"client.created", "apikey.rotate", "signing_key.revoked", "console.login"} {
		if !strings.Contains(body, ev) {
			t.Errorf("audit log lacks %s", ev)
		}
	}
	do("audit by actor", chromedp.Navigate(base+"/admin/audit?actor=user:u-root"), chromedp.WaitVisible(chromedp.CSS("table")))
	shot("06-audit")
	do("audit again", chromedp.Navigate(base+"/admin/audit"), chromedp.WaitVisible(chromedp.ID("f-event")))
	do("filter", chromedp.SendKeys(chromedp.ID("f-event"), "signing_key.revoked"))
	submit("apply filter", `.filters button[type="submit"]`)
	rows, err := chromedp.Run(bctx, chromedp.Nodes(chromedp.CSSAll("table.audit tbody tr")))
	if err != nil || len(rows) != 1 || !strings.Contains(text("table.audit tbody"), nextKID) {
		t.Fatalf("filtered audit: %d rows (%v)", len(rows), err)
	}

	// Blocks: a client id like the probe is listed as text and lifted
	// through its form; the others stay.
	if err := e.store.PutBlock(context.Background(), &storage.Block{Kind: "client", Value: probe, Reason: "invalid_client: 30 in 5m0s",
		CreatedAt: e.clock.Now(), ExpiresAt: e.clock.Now().Add(15 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	do("blocks", chromedp.Navigate(base+"/admin/blocks"), chromedp.WaitVisible(chromedp.CSS("table.blocks")))
	if body := text("table.blocks tbody"); !strings.Contains(body, probe) || !strings.Contains(body, "198.51.100.23") {
		t.Fatalf("blocks table does not show the blocks as text: %q", body)
	}
	shot("08-blocks")
	submit("lift", chromedp.CSS(`button[aria-label="Lift the block on client `+probe+`"]`))
	if !strings.Contains(text(".notice-ok"), "lifted") {
		t.Fatal("no lift notice")
	}
	if body := text("table.blocks tbody"); strings.Contains(body, probe) || !strings.Contains(body, "198.51.100.23") || !strings.Contains(body, "mobile-app") {
		t.Fatalf("blocks after lift: %q", body)
	}
	if bs, _ := e.svc.ListBlocks(context.Background()); len(bs) != 2 {
		t.Fatalf("%d blocks in the store after lifting one of three", len(bs))
	}

	// A phone-sized viewport for the artifacts.
	do("phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible(chromedp.CSS("h1")))
	shot("07-overview-phone")

	if n := dialogs.Load(); n != 0 {
		t.Fatalf("%d JavaScript dialogs opened: the XSS probe ran", n)
	}
}
