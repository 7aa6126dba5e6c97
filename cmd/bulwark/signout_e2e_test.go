package main

// "Sign out everywhere" from the CLI and from the console, end to end on
// Postgres: what DELETE /admin/v1/users/{id}/sessions does, through the
// same admin Service, with the relying party told by back-channel logout
// (tokens verified against the JWKS by the test receiver).

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// signOutFixture: alice signed in to a relying party in two browsers (two
// login sessions at Bulwark); the party's back-channel receiver verifies
// every logout token it gets.
type signOutFixture struct {
	dsn      string
	s        *e2eServer
	rc       *receiver
	rp       *oauth2.Config
	browsers []*http.Client
	sids     []string
}

func newSignOutFixture(t *testing.T) *signOutFixture {
	t.Helper()
	f := &signOutFixture{dsn: pgtest.NewDatabase(t)}
	f.s = startE2E(t, f.dsn, withBackchannel())
	runLogouts(t, f.s)
	f.rc = newReceiver(t, f.s.issuer, "rp-everywhere")
	f.rp = addRP(t, f.s, "rp-everywhere", f.rc.url, true)
	for range 2 {
		b := jarClient(f.s.issuer)
		sid, _ := signIn(t, f.s.issuer, b, f.rp)
		f.browsers, f.sids = append(f.browsers, b), append(f.sids, sid)
	}
	if f.sids[0] == f.sids[1] {
		t.Fatal("two browsers share one login session")
	}
	for i, b := range f.browsers {
		if !f.signedIn(t, b) {
			t.Fatalf("browser %d is not signed in before the sign-out", i)
		}
	}
	return f
}

// signedIn reports whether browser b still has a login session: an
// authorization request goes straight back to the client instead of
// showing the sign-in page.
func (f *signOutFixture) signedIn(t *testing.T, b *http.Client) bool {
	t.Helper()
	res, err := b.Get(f.rp.AuthCodeURL("state-0123456789abcdef", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return res.StatusCode == http.StatusSeeOther || res.StatusCode == http.StatusFound
}

// expectSignedOut waits until the relying party was told of both sessions
// (one logout token each, sid and sub set) and checks that neither browser
// is signed in any more.
func (f *signOutFixture) expectSignedOut(t *testing.T) {
	t.Helper()
	f.rc.waitTokens(len(f.sids))
	waitOutboxEmpty(t, f.s.app.store)
	got := f.rc.tokens()
	if len(got) != len(f.sids) {
		t.Fatalf("%d logout tokens for %d sessions", len(got), len(f.sids))
	}
	alice := aliceID(t, f.s)
	told := map[string]bool{}
	for _, tok := range got {
		if tok.str("sub") != alice {
			t.Fatalf("logout token for sub %q, want %s", tok.str("sub"), alice)
		}
		told[tok.str("sid")] = true
	}
	for _, sid := range f.sids {
		if !told[sid] {
			t.Fatalf("no logout token for session %s: %v", sid, got)
		}
	}
	for i, b := range f.browsers {
		if f.signedIn(t, b) {
			t.Fatalf("browser %d is still signed in", i)
		}
	}
}

// expectAudited checks the one user.sessions_revoked event and its actor.
func (f *signOutFixture) expectAudited(t *testing.T, actor *regexp.Regexp) {
	t.Helper()
	evs := auditEvents(t, f.s, "user.sessions_revoked")
	if len(evs) != 1 || evs[0].Subject != aliceID(t, f.s) || !actor.MatchString(evs[0].Actor) ||
		evs[0].Details["login_sessions_deleted"] != "2" || evs[0].Details["backchannel_logouts_queued"] != "2" {
		t.Fatalf("audit of the sign-out: %+v", evs)
	}
}

// TestE2ESignOutEverywhereCLI: `bulwark users sign-out USER` ends the
// user's sessions and queues their back-channel logouts, which the running
// server delivers.
func TestE2ESignOutEverywhereCLI(t *testing.T) {
	unsetConfigEnv(t)
	f := newSignOutFixture(t)
	t.Setenv("DATABASE_URL", f.dsn)
	t.Setenv("BULWARK_SECRET", e2eMasterSecret)

	code, out, errs := cliRun(t, "", "users", "sign-out", "alice")
	if code != 0 || out != "signed alice out everywhere: 2 login session(s) ended, 2 back-channel logout(s) queued\n" {
		t.Fatalf("sign-out: %d %q %q", code, out, errs)
	}
	f.expectSignedOut(t)
	f.expectAudited(t, regexp.MustCompile(`^cli:`))

	// By id, with nothing left to end.
	code, out, errs = cliRun(t, "", "users", "sign-out", aliceID(t, f.s))
	if code != 0 || !strings.Contains(out, "0 login session(s) ended, 0 back-channel logout(s) queued") {
		t.Fatalf("second sign-out: %d %q %q", code, out, errs)
	}
	if code, _, errs := cliRun(t, "", "users", "sign-out", "nobody"); code != exitFailed || !strings.Contains(errs, `no user with username or id "nobody"`) {
		t.Fatalf("unknown user: %d %q", code, errs)
	}
	if code, _, _ := cliRun(t, "", "users", "sign-out"); code != exitUsage {
		t.Fatalf("no user named: exit %d, want %d", code, exitUsage)
	}
}

// TestE2ESignOutEverywhereConsole drives the console in headless Chromium:
// an administrator signs alice out everywhere from the users page through
// the confirmation step; then signs themselves out everywhere, which ends
// their console session too.
func TestE2ESignOutEverywhereConsole(t *testing.T) {
	bin := chromiumBinary(t)
	unsetConfigEnv(t)
	f := newSignOutFixture(t)
	t.Setenv("DATABASE_URL", f.dsn)
	t.Setenv("BULWARK_SECRET", e2eMasterSecret)
	const rootPassword = "root-console-password-0123456789"
	if code, out, errs := cliRun(t, rootPassword+"\n", "users", "create", "root", "--admin", "--password-file", "-"); code != 0 {
		t.Fatalf("create the administrator: %d %q %q", code, out, errs)
	}
	root, err := f.s.app.store.UserByUsername(context.Background(), "root")
	if err != nil {
		t.Fatal(err)
	}

	c := newChrome(t, bin, 2*time.Minute)
	console := f.s.adminURL + "/admin"

	c.do("sign in", chromedp.Navigate(console+"/login"), chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "root"), chromedp.SendKeys(chromedp.ID("password"), rootPassword))
	c.submit("sign in", `form button[type="submit"]`)
	if h := c.text("h1"); h != "Overview" {
		t.Fatalf("after sign-in: h1 %q", h)
	}

	c.do("users", chromedp.Navigate(console+"/users"), chromedp.WaitVisible(chromedp.CSS("table")))
	c.submit("sign-out button", `a[aria-label="Sign alice out everywhere"]`)
	if h, body := c.text("h1"), c.text(".confirm"); h != "Sign out everywhere?" || !strings.Contains(body, "alice") || !strings.Contains(body, "back-channel logout") {
		t.Fatalf("confirmation page: h1 %q, text %q", h, body)
	}
	// Nothing has happened before the confirmation.
	if got := f.rc.tokens(); len(got) != 0 || !f.signedIn(t, f.browsers[0]) {
		t.Fatal("the confirmation page signed alice out")
	}
	c.submit("confirm", `.confirm button[type="submit"]`)
	if h := c.text("h1"); h != "Signed out everywhere" {
		t.Fatalf("after confirming: h1 %q", h)
	}
	facts := c.text("dl.props")
	for _, re := range []string{`Sessions ended\s*2`, `Back-channel logouts queued\s*2`} {
		if !regexp.MustCompile(re).MatchString(facts) {
			t.Fatalf("done page facts %q lack %s", facts, re)
		}
	}
	f.expectSignedOut(t)
	f.expectAudited(t, regexp.MustCompile(`^user:`+regexp.QuoteMeta(root.ID)+`$`))

	// Signing oneself out everywhere ends this console session too.
	c.do("users again", chromedp.Navigate(console+"/users"), chromedp.WaitVisible(chromedp.CSS("table")))
	c.submit("own sign-out button", `a[aria-label="Sign root out everywhere"]`)
	if body := c.text(".confirm"); !strings.Contains(body, "your own account") {
		t.Fatalf("own confirmation page: %q", body)
	}
	c.submit("confirm own", `.confirm button[type="submit"]`)
	if msg := c.text(".notice-ok"); !strings.Contains(msg, "You signed yourself out everywhere") {
		t.Fatalf("after signing oneself out: %q", msg)
	}
	c.do("console after signing out", chromedp.Navigate(console+"/users"), chromedp.WaitVisible(chromedp.ID("username")))
}
