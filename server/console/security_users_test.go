package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
)

// An admin holding admin:users but not everything cannot reset the
// password of an admin who holds more (taking the account over), and
// nobody can disable their own account from the console.
func TestConsoleUserTakeoverAndSelfLockout(t *testing.T) {
	e := newEnv(t)
	root := e.addUser("root", allScopes...)
	ops := e.addUser("ops", apikeys.ScopeUsers)
	peer := e.addUser("peer", apikeys.ScopeUsers)
	b := e.browser()
	b.login("ops")

	p := b.submit("/admin/users/"+root.ID+"/password", "/admin/users/"+root.ID+"/password", nil)
	if p.status != http.StatusForbidden || strings.Contains(p.body, "New password") {
		t.Fatalf("reset of a more powerful admin: %d", p.status)
	}
	if u, _ := e.store.UserByID(context.Background(), root.ID); u.PasswordHash != root.PasswordHash {
		t.Fatal("the refused reset changed the password")
	}
	p = b.submit("/admin/users/"+peer.ID+"/password", "/admin/users/"+peer.ID+"/password", nil)
	if p.status != http.StatusOK || !strings.Contains(p.body, "New password") {
		t.Fatalf("reset of a peer: %d", p.status)
	}

	p = b.submit("/admin/users/"+ops.ID+"/disable", "/admin/users/"+ops.ID+"/disable", nil)
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "your own account") {
		t.Fatalf("self-disable: %d", p.status)
	}
	if u, _ := e.store.UserByID(context.Background(), ops.ID); u.Disabled {
		t.Fatal("the user disabled themselves")
	}
	if p := b.get("/admin/users"); p.status != http.StatusOK {
		t.Fatalf("signed out by a refused self-disable: %d", p.status)
	}
}
