package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/storage"
)

// TestInitialTokensInConsole: an admin issues an initial access token (shown
// once), sees it listed with its use count, revokes it; dynamically
// registered clients are marked in the client list and page.
func TestInitialTokensInConsole(t *testing.T) {
	e := newEnv(t)
	e.addUser("root", allScopes...)
	b := e.browser()
	b.login("root")
	p := b.submit("/admin/registration", "/admin/registration/new", url.Values{
		"description": {"partner acme"}, "scope": {"openid"}, "max_clients": {"3"}, "expires_hours": {"24"},
	})
	tok := regexp.MustCompile(`id="secret-value" class="secret" type="text" value="(bwi_[^"]+)"`).FindStringSubmatch(p.body)
	if p.status != http.StatusOK || tok == nil {
		t.Fatalf("issue: %d, token shown: %v", p.status, tok != nil)
	}
	list := b.get("/admin/registration")
	if list.status != http.StatusOK || !strings.Contains(list.body, "partner acme") || !strings.Contains(list.body, "0 / 3") {
		t.Fatalf("list: %d", list.status)
	}
	if strings.Contains(list.body, tok[1]) {
		t.Fatal("the list shows the token again")
	}
	bad := b.submit("/admin/registration", "/admin/registration/new", url.Values{"max_clients": {"-1"}, "expires_hours": {"24"}})
	if bad.status != http.StatusBadRequest || !strings.Contains(bad.body, "max_clients") {
		t.Fatalf("invalid issue: %d", bad.status)
	}

	ts, err := e.svc.ListInitialAccessTokens(context.Background(), storage.ListOptions{})
	if err != nil || len(ts) != 1 || ts[0].Description != "partner acme" {
		t.Fatalf("tokens: %v %v", ts, err)
	}
	id := ts[0].ID
	// A client registered with the token is marked.
	c, _, err := e.svc.RegisterClient(context.Background(), admin.Actor{ID: "initial_token:" + id},
		admin.ClientInput{Name: "Acme app", GrantTypes: []string{"client_credentials"}, Scopes: storage.SpaceSeparated{"openid"}}, id)
	if err != nil {
		t.Fatal(err)
	}
	if body := b.get("/admin/clients").body; !strings.Contains(body, ">dynamic<") {
		t.Fatal("the client list does not mark the registered client")
	}
	if body := b.get("/admin/clients/" + c.ID).body; !strings.Contains(body, id) {
		t.Fatal("the client page does not name the initial access token")
	}

	p = b.submit("/admin/registration", "/admin/registration/"+id+"/revoke", nil)
	if p.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d", p.status)
	}
	got, err := e.svc.GetInitialAccessToken(context.Background(), id)
	if err != nil || got.RevokedAt == nil {
		t.Fatalf("not revoked: %+v %v", got, err)
	}
	if !strings.Contains(b.get("/admin/registration").body, "revoked") {
		t.Fatal("the list does not show the revocation")
	}
}
