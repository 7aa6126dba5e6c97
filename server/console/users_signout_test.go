package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
)

// publicSessions gives u n public login sessions and returns a function
// counting those still alive.
func publicSessions(t *testing.T, e *env, u *storage.User, n int) func() int {
	t.Helper()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = storage.HashKey(u.ID + "-public-" + string(rune('a'+i)))
		if err := e.store.CreateLoginSession(context.Background(), &storage.LoginSession{Key: keys[i], Kind: "public", Subject: u.ID,
			AuthTime: e.clock.Now(), LastSeen: e.clock.Now(), ExpiresAt: e.clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	return func() int {
		alive := 0
		for _, k := range keys {
			if _, err := e.store.GetLoginSession(context.Background(), k); err == nil {
				alive++
			}
		}
		return alive
	}
}

// TestConsoleUserSignOutEverywhere: "Sign out everywhere" needs admin:users,
// the CSRF token of the signed-in session and the confirmation page's
// POST; it ends every session of the user, also one of an administrator
// holding more scopes (it takes power away, as DELETE
// /admin/v1/users/{id}/sessions), and signing oneself out lands on the
// sign-in page.
func TestConsoleUserSignOutEverywhere(t *testing.T) {
	e := newEnv(t)
	root := e.addUser("root", allScopes...)
	ops := e.addUser("ops", apikeys.ScopeUsers)
	e.addUser("reader", apikeys.ScopeClientsRead)
	alice := e.addUser("alice")
	aliveAlice := publicSessions(t, e, alice, 2)
	aliveRoot := publicSessions(t, e, root, 1)
	action := "/admin/users/" + alice.ID + "/sign-out"

	t.Run("case=without admin:users", func(t *testing.T) {
		b := e.browser()
		b.login("reader")
		if p := b.get(action); p.status != http.StatusForbidden {
			t.Fatalf("confirmation page: %d", p.status)
		}
		if p := b.submit("/admin/", action, nil); p.status != http.StatusForbidden {
			t.Fatalf("sign-out: %d", p.status)
		}
		if n := aliveAlice(); n != 2 {
			t.Fatalf("%d of 2 sessions left after refusals", n)
		}
	})

	b := e.browser()
	b.login("ops")
	t.Run("case=without the CSRF token", func(t *testing.T) {
		for name, token := range map[string]string{"case=missing": "", "case=forged": "AAAA", "case=sign-in form's": e.browser().csrf("/admin/login")} {
			f := url.Values{}
			if token != "" {
				f.Set("csrf_token", token)
			}
			if p := b.post(action, f); p.status != http.StatusForbidden {
				t.Fatalf("%s: %d", name, p.status)
			}
		}
		if n := aliveAlice(); n != 2 {
			t.Fatalf("%d of 2 sessions left after refusals", n)
		}
	})

	// The confirmation page names the user and says what happens; its
	// form posts to the action with the CSRF token.
	p := b.get(action)
	if p.status != http.StatusOK || !strings.Contains(p.body, "Sign out everywhere?") || !strings.Contains(p.body, "alice ("+alice.ID+")") ||
		!strings.Contains(p.body, `action="`+action+`"`) || !strings.Contains(p.body, "back-channel logout") {
		t.Fatalf("confirmation page: %d %.600s", p.status, p.body)
	}
	if l := b.get("/admin/users"); !strings.Contains(l.body, `href="`+action+`"`) || !strings.Contains(l.body, `aria-label="Sign alice out everywhere"`) {
		t.Fatal("the users page has no sign-out button for alice")
	}
	p = b.submit(action, action, nil)
	if p.status != http.StatusOK || !strings.Contains(p.body, "Signed out everywhere") || !strings.Contains(p.body, "<dt>Sessions ended</dt><dd>2</dd>") {
		t.Fatalf("sign-out: %d %.600s", p.status, p.body)
	}
	if n := aliveAlice(); n != 0 {
		t.Fatalf("%d sessions left", n)
	}
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Event: "user.sessions_revoked"})
	if err != nil || len(evs) != 1 || evs[0].Subject != alice.ID || evs[0].Actor != "user:"+ops.ID {
		t.Fatalf("audit: %v %+v", err, evs)
	}

	// An unknown user is 404, never a 500.
	if p := b.get("/admin/users/nobody/sign-out"); p.status != http.StatusNotFound {
		t.Fatalf("confirmation page of an unknown user: %d", p.status)
	}
	if p := b.submit("/admin/users", "/admin/users/nobody/sign-out", nil); p.status != http.StatusNotFound {
		t.Fatalf("sign-out of an unknown user: %d", p.status)
	}

	// An administrator holding more scopes can be signed out too.
	if p := b.submit("/admin/users/"+root.ID+"/sign-out", "/admin/users/"+root.ID+"/sign-out", nil); p.status != http.StatusOK {
		t.Fatalf("sign-out of root: %d", p.status)
	}
	if n := aliveRoot(); n != 0 {
		t.Fatalf("root keeps %d sessions", n)
	}

	// Signing oneself out ends this console session as well.
	self := "/admin/users/" + ops.ID + "/sign-out"
	if p := b.get(self); !strings.Contains(p.body, "your own account") {
		t.Fatalf("self confirmation page: %.600s", p.body)
	}
	p = b.submit(self, self, nil)
	if p.status != http.StatusSeeOther || p.location() != "/admin/login?m=everywhere" {
		t.Fatalf("self sign-out: %d %q", p.status, p.location())
	}
	if p := b.get("/admin/users"); p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/admin/login") {
		t.Fatalf("console after signing oneself out: %d %q", p.status, p.location())
	}
}
