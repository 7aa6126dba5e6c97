package console_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
)

// Users are edited (email, scopes) and deleted from the console with the
// admin API's rules: no scope the editor lacks, nothing done to oneself.
func TestConsoleUserEditDelete(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	root := e.addUser("root", allScopes...)
	bob := e.addUser("bob", apikeys.ScopeAuditRead)
	b := e.browser()
	b.login("root")

	edit := "/admin/users/" + bob.ID + "/edit"
	p := b.get(edit)
	form := formValues(t, p.body, edit)
	if form.Get("username") != "bob" || form.Get("scope_"+apikeys.ScopeAuditRead) != "on" || form.Has("password") {
		t.Fatalf("edit form: %v", form)
	}
	form.Set("email", "bob@example.com")
	form.Set("scope_"+apikeys.ScopeClientsRead, "on")
	if p = b.submit(edit, edit, form); p.status != http.StatusSeeOther {
		t.Fatalf("edit: %d", p.status)
	}
	u, err := e.store.UserByID(ctx, bob.ID)
	if err != nil || u.Email != "bob@example.com" || len(u.AdminScopes) != 2 {
		t.Fatalf("after edit: %+v %v", u, err)
	}
	// A stale form is refused and changes nothing.
	form.Set("email", "stale@example.com")
	if p = b.submit(edit, edit, form); p.status == http.StatusSeeOther {
		t.Fatal("stale edit accepted")
	}
	if u, _ := e.store.UserByID(ctx, bob.ID); u.Email != "bob@example.com" {
		t.Fatal("stale edit wrote")
	}
	// One's own scopes cannot be changed here.
	own := "/admin/users/" + root.ID + "/edit"
	f := formValues(t, b.get(own).body, own)
	f.Del("scope_" + apikeys.ScopeKeys)
	if p = b.submit(own, own, f); p.status != http.StatusBadRequest || !strings.Contains(p.body, "your own") {
		t.Fatalf("own scopes: %d", p.status)
	}

	del := "/admin/users/" + bob.ID + "/delete"
	if p = b.get(del); p.status != http.StatusOK || !strings.Contains(p.body, "cannot be undone") {
		t.Fatalf("delete confirm: %d", p.status)
	}
	if p = b.submit(del, del, nil); p.status != http.StatusOK || !strings.Contains(p.body, "User deleted") {
		t.Fatalf("delete: %d", p.status)
	}
	if _, err := e.store.UserByID(ctx, bob.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("user still there: %v", err)
	}
	evs, err := e.store.ListAudit(ctx, storage.AuditFilter{Event: "user.deleted", Limit: 10})
	if err != nil || len(evs) != 1 {
		t.Errorf("audit: %d events, %v", len(evs), err)
	}
}

// An admin changes their own password on the Account page, given the
// current one.
func TestConsoleChangeOwnPassword(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := e.addUser("root", allScopes...)
	b := e.browser()
	b.login("root")
	const next = "a brand new password"
	p := b.submit("/admin/account", "/admin/account/password", url.Values{"current_password": {"wrong password here"}, "new_password": {next}})
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "current password is wrong") {
		t.Fatalf("wrong current: %d", p.status)
	}
	p = b.submit("/admin/account", "/admin/account/password", url.Values{"current_password": {adminPassword}, "new_password": {"short"}})
	if p.status != http.StatusBadRequest {
		t.Fatalf("short: %d", p.status)
	}
	stored, _ := e.store.UserByID(ctx, u.ID)
	if e.hasher.Compare(ctx, []byte(stored.PasswordHash), []byte(adminPassword)) != nil {
		t.Fatal("a refused change changed the password")
	}
	p = b.submit("/admin/account", "/admin/account/password", url.Values{"current_password": {adminPassword}, "new_password": {next}})
	if p.status != http.StatusOK || !strings.Contains(p.body, "password is changed") {
		t.Fatalf("change: %d", p.status)
	}
	stored, _ = e.store.UserByID(ctx, u.ID)
	if e.hasher.Compare(ctx, []byte(stored.PasswordHash), []byte(next)) != nil {
		t.Fatal("new password does not verify")
	}
}
