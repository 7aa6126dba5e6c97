package admin

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

func TestUserLifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		expect(t, e.do("clients", http.MethodPost, "/clients", map[string]any{
			"client_id": "app", "redirect_uris": []string{"https://app.example/cb"}, "scope": "openid read",
		}), http.StatusCreated, "")
		expect(t, e.do("clients", http.MethodPost, "/clients", map[string]any{
			"client_id": "other", "redirect_uris": []string{"https://other.example/cb"},
		}), http.StatusCreated, "")

		// Create with a generated password (returned once) and one chosen.
		r := e.do("users", http.MethodPost, "/users", map[string]any{"username": "alice", "email": "alice@example.com"})
		m := expect(t, r, http.StatusCreated, "")
		id, _ := m["id"].(string)
		pw, _ := m["password"].(string)
		if id == "" || len(pw) < MinPasswordLength || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("create: %s", r.body)
		}
		u, err := e.store.UserByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if e.hasher.Compare(ctx, []byte(u.PasswordHash), []byte(pw)) != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
			t.Fatal("generated password not stored as its Argon2id hash")
		}
		m = expect(t, e.do("users", http.MethodPost, "/users", map[string]any{"username": "bob", "password": "correct horse battery"}), http.StatusCreated, "")
		if m["password"] != nil {
			t.Fatal("a chosen password was echoed")
		}
		expect(t, e.do("users", http.MethodPost, "/users", map[string]any{"username": "ALICE"}), http.StatusConflict, "conflict")

		// Get with ETag; list.
		r = e.do("users", http.MethodGet, "/users/"+id, nil)
		m = expect(t, r, http.StatusOK, "")
		if r.header.Get("ETag") != `"1"` || m["username"] != "alice" || strings.Contains(string(r.body), "argon2") {
			t.Fatalf("get: %s %s", r.header.Get("ETag"), r.body)
		}
		m = expect(t, e.do("users", http.MethodGet, "/users?name=ali", nil), http.StatusOK, "")
		if len(m["items"].([]any)) != 1 {
			t.Fatalf("list: %v", m)
		}

		// Consents: list, revoke one (its tokens go, the other client's stay).
		for _, c := range []string{"app", "other"} {
			if err := e.store.SaveConsent(ctx, &storage.Consent{Subject: id, ClientID: c, Scopes: []string{"openid"}, GrantedAt: time.Now().UTC().Truncate(time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
		e.issueTokens("app", "app", id)
		e.issueTokens("other", "other", id)
		m = expect(t, e.do("users", http.MethodGet, "/users/"+id+"/consents", nil), http.StatusOK, "")
		if len(m["items"].([]any)) != 2 {
			t.Fatalf("consents: %v", m)
		}
		m = expect(t, e.do("users", http.MethodDelete, "/users/"+id+"/consents/app", nil), http.StatusOK, "")
		if m["tokens_revoked"] != float64(2) || e.tokenLive("app") || !e.tokenLive("other") {
			t.Fatalf("revoke consent: %v (app live %v, other live %v)", m, e.tokenLive("app"), e.tokenLive("other"))
		}
		expect(t, e.do("users", http.MethodDelete, "/users/"+id+"/consents/app", nil), http.StatusNotFound, "not_found")
		expect(t, e.do("users", http.MethodGet, "/users/nobody/consents", nil), http.StatusNotFound, "not_found")

		// Disable: login sessions and tokens end.
		now := time.Now().UTC().Truncate(time.Second)
		for _, k := range []string{"public", "console"} {
			if err := e.store.CreateLoginSession(ctx, &storage.LoginSession{
				Key: "sess-" + k, Kind: k, Subject: id, AuthTime: now, LastSeen: now, ExpiresAt: now.Add(time.Hour),
			}); err != nil {
				t.Fatal(err)
			}
		}
		m = expect(t, e.do("users", http.MethodPost, "/users/"+id+"/disable", nil), http.StatusOK, "")
		if m["login_sessions_deleted"] != float64(2) || m["tokens_revoked"] != float64(2) || m["user"].(map[string]any)["disabled"] != true {
			t.Fatalf("disable: %v", m)
		}
		if _, err := e.store.GetLoginSession(ctx, "sess-public"); err == nil {
			t.Fatal("login session survived disable")
		}
		if e.tokenLive("other") {
			t.Fatal("token survived disable")
		}
		m = expect(t, e.do("users", http.MethodPost, "/users/"+id+"/enable", nil), http.StatusOK, "")
		if m["disabled"] != false {
			t.Fatalf("enable: %v", m)
		}

		// Password reset: a new generated password, the old one stops working.
		r = e.do("users", http.MethodPost, "/users/"+id+"/password", nil)
		m = expect(t, r, http.StatusOK, "")
		pw2, _ := m["password"].(string)
		u, _ = e.store.UserByID(ctx, id)
		if pw2 == "" || pw2 == pw || e.hasher.Compare(ctx, []byte(u.PasswordHash), []byte(pw2)) != nil ||
			e.hasher.Compare(ctx, []byte(u.PasswordHash), []byte(pw)) == nil || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("reset: %s", r.body)
		}
		expect(t, e.do("users", http.MethodPost, "/users/nobody/password", nil), http.StatusNotFound, "not_found")

		for _, ev := range []string{"user.created", "consent.revoked", "user.disabled", "user.enabled", "user.password_reset"} {
			evs := e.auditEvents(ev)
			if len(evs) == 0 || evs[0].Actor != "apikey:"+e.ids["users"] {
				t.Errorf("audit %s: %v", ev, evs)
			}
		}
		for _, ev := range e.auditEvents("") {
			for _, v := range ev.Details {
				if strings.Contains(v, pw) || strings.Contains(v, pw2) {
					t.Fatalf("password in audit event %s", ev.Event)
				}
			}
		}
	})
}

func TestUserValidation(t *testing.T) {
	e := newEnv(t, memory.New(memory.Config{}))
	cases := []struct {
		name   string
		key    string
		body   map[string]any
		status int
		field  string
	}{
		{"case=short-password", "users", map[string]any{"username": "u1", "password": "elevenchars"}, 400, "password"},
		{"case=no-username", "users", map[string]any{"email": "a@example.com"}, 400, "username"},
		{"case=space-username", "users", map[string]any{"username": "a b"}, 400, "username"},
		{"case=bad-email", "users", map[string]any{"username": "u2", "email": "Alice <a@example.com>"}, 400, "email"},
		{"case=unknown-admin-scope", "root", map[string]any{"username": "u3", "admin_scopes": []string{"admin:everything"}}, 400, "admin_scopes"},
		{"case=non-admin-scope", "root", map[string]any{"username": "u4", "admin_scopes": []string{"introspect"}}, 400, "admin_scopes"},
		{"case=escalation", "users", map[string]any{"username": "u5", "admin_scopes": []string{"admin:keys"}}, 403, ""},
		{"case=id", "users", map[string]any{"username": "u6", "id": "chosen"}, 400, "id"},
		{"case=disabled", "users", map[string]any{"username": "u7", "disabled": false}, 400, "disabled"},
		{"case=created_at", "users", map[string]any{"username": "u8", "created_at": "2020-01-01T00:00:00Z"}, 400, "created_at"},
		{"case=password_hash", "users", map[string]any{"username": "u9", "password_hash": "$argon2id$"}, 400, "password_hash"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code := "invalid_request"
			if c.status == 403 {
				code = "insufficient_scope"
			}
			m := expect(t, e.do(c.key, http.MethodPost, "/users", c.body), c.status, code)
			if c.field != "" && !hasField(m, c.field) {
				t.Fatalf("does not name %s: %v", c.field, m)
			}
		})
	}
	if evs := e.auditEvents("user.created"); len(evs) != 0 {
		t.Fatal("a refused user was created")
	}
	// Granting scopes the caller holds is fine.
	m := expect(t, e.do("root", http.MethodPost, "/users", map[string]any{"username": "admin", "admin_scopes": []string{"admin:keys", "admin:users"}}), http.StatusCreated, "")
	if got := m["admin_scopes"].([]any); len(got) != 2 {
		t.Fatalf("admin_scopes: %v", got)
	}
}
