package admin

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
)

// userKey gives env a key labelled label owned by user id.
func (e *env) userKey(label, userID string, scopes ...string) {
	e.t.Helper()
	tok, k, err := e.keys.Create(context.Background(), apikeys.CreateRequest{
		Name: "user key " + label, OwnerType: apikeys.OwnerUser, OwnerID: userID, Scopes: scopes, CreatedBy: "test",
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.tokens[label], e.ids[label] = tok, k.ID
}

func TestUserFilterUpdateDelete(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		alice := expect(t, e.do("users", http.MethodPost, "/users", map[string]any{"username": "alice", "email": "alice@example.com"}), http.StatusCreated, "")
		bob := expect(t, e.do("users", http.MethodPost, "/users", map[string]any{"username": "bob"}), http.StatusCreated, "")
		aliceID, bobID := alice["id"].(string), bob["id"].(string)

		// ?username= is an exact, case-insensitive match.
		for q, want := range map[string]string{"ALICE": aliceID, "bob": bobID, "ali": "", "nobody": ""} {
			m := expect(t, e.do("users", http.MethodGet, "/users?username="+q, nil), http.StatusOK, "")
			items := m["items"].([]any)
			switch {
			case want == "" && len(items) != 0:
				t.Errorf("?username=%s: %v", q, items)
			case want != "" && (len(items) != 1 || items[0].(map[string]any)["id"] != want):
				t.Errorf("?username=%s: %v, want %s", q, items, want)
			}
		}

		// PUT accepts what GET returns; replaces username, email, scopes.
		r := e.do("users", http.MethodGet, "/users/"+aliceID, nil)
		got := expect(t, r, http.StatusOK, "")
		expect(t, e.do("users", http.MethodPut, "/users/"+aliceID, got, "If-Match", r.header.Get("ETag")), http.StatusOK, "")
		got = expect(t, e.do("users", http.MethodGet, "/users/"+aliceID, nil), http.StatusOK, "")
		got["email"] = "alice@new.example"
		r = e.do("users", http.MethodPut, "/users/"+aliceID, got, "If-Match", `"2"`)
		m := expect(t, r, http.StatusOK, "")
		if m["email"] != "alice@new.example" || r.header.Get("ETag") != `"3"` {
			t.Fatalf("PUT: %s", r.body)
		}
		for field, v := range map[string]any{"disabled": true, "totp_enrolled": true, "id": "x", "password": "new password here"} {
			b := cloneMap(m)
			b[field] = v
			res := expect(t, e.do("users", http.MethodPut, "/users/"+aliceID, b, "If-Match", `"3"`), http.StatusBadRequest, "invalid_request")
			if !hasField(res, field) {
				t.Errorf("PUT changing %s: %v", field, res)
			}
		}
		expect(t, e.do("users", http.MethodPut, "/users/"+aliceID, m, "If-Match", `"2"`), http.StatusPreconditionFailed, "precondition_failed")
		expect(t, e.do("users", http.MethodPut, "/users/"+aliceID, m, "If-Match", `3`), http.StatusBadRequest, "invalid_request")
		expect(t, e.do("users", http.MethodPut, "/users/"+aliceID, map[string]any{"username": "BOB"}, "If-Match", `"3"`), http.StatusConflict, "conflict")

		// PATCH: null clears the email; a scope the caller lacks is 403
		// naming it.
		mp := "application/merge-patch+json"
		r = e.do("users", http.MethodPatch, "/users/"+aliceID, `{"email":null,"username":"alice2"}`, "Content-Type", mp, "If-Match", `"3"`)
		m = expect(t, r, http.StatusOK, "")
		if _, has := m["email"]; has || m["username"] != "alice2" {
			t.Fatalf("PATCH: %s", r.body)
		}
		r = e.do("users", http.MethodPatch, "/users/"+aliceID, `{"admin_scopes":["admin:audit:read"]}`, "Content-Type", mp, "If-Match", `"4"`)
		m = expect(t, r, http.StatusForbidden, "insufficient_scope")
		if !strings.Contains(m["error_description"].(string), apikeys.ScopeAuditRead) ||
			!strings.Contains(r.header.Get("WWW-Authenticate"), `scope="`+apikeys.ScopeAuditRead+`"`) {
			t.Fatalf("escalation does not name the scope: %s / %s", r.body, r.header.Get("WWW-Authenticate"))
		}
		m = expect(t, e.do("root", http.MethodPatch, "/users/"+aliceID, `{"admin_scopes":["admin:audit:read"]}`, "Content-Type", mp, "If-Match", `"4"`), http.StatusOK, "")
		if !sameJSONValue(m["admin_scopes"], []string{apikeys.ScopeAuditRead}) {
			t.Fatalf("scopes: %v", m)
		}
		// Now alice holds a scope the users key lacks: it may not edit her.
		r = e.do("users", http.MethodPatch, "/users/"+aliceID, `{"email":"x@example.com"}`, "Content-Type", mp, "If-Match", `"5"`)
		expect(t, r, http.StatusForbidden, "insufficient_scope")
		if !strings.Contains(r.header.Get("WWW-Authenticate"), apikeys.ScopeAuditRead) {
			t.Errorf("WWW-Authenticate does not name the scope: %q", r.header.Get("WWW-Authenticate"))
		}
		// Nobody changes their own scopes.
		_, err := e.svc.UpdateUser(ctx, Actor{ID: "user:" + aliceID, Scopes: apikeys.AllScopes}, aliceID,
			UserUpdate{Username: "alice2", AdminScopes: []string{apikeys.ScopeAuditRead, apikeys.ScopeUsers}}, 5)
		if err == nil {
			t.Fatal("self scope change allowed")
		}

		// DELETE: tokens, sessions and the user go; refused for oneself and
		// for a user holding more than the caller.
		expect(t, e.do("clients", http.MethodPost, "/clients", map[string]any{
			"client_id": "app", "redirect_uris": []string{"https://app.example/cb"}, "scope": "openid read",
		}), http.StatusCreated, "")
		e.issueTokens("bob", "app", bobID)
		if _, err := e.svc.DeleteUser(ctx, Actor{ID: "user:" + bobID, Scopes: apikeys.AllScopes}, bobID); err == nil {
			t.Fatal("self delete allowed")
		}
		expect(t, e.do("users", http.MethodDelete, "/users/"+aliceID, nil), http.StatusForbidden, "insufficient_scope")
		m = expect(t, e.do("users", http.MethodDelete, "/users/"+bobID, nil), http.StatusOK, "")
		if m["tokens_revoked"] != float64(2) && m["tokens_revoked"] != float64(1) {
			t.Errorf("delete counts: %v", m)
		}
		if e.tokenLive("bob") {
			t.Error("a deleted user's token still works")
		}
		expect(t, e.do("users", http.MethodGet, "/users/"+bobID, nil), http.StatusNotFound, "not_found")
		expect(t, e.do("users", http.MethodDelete, "/users/"+bobID, nil), http.StatusNotFound, "not_found")
		if len(e.auditEvents("user.deleted")) != 1 || len(e.auditEvents("user.updated")) != 4 {
			t.Errorf("audit: %d deleted, %d updated", len(e.auditEvents("user.deleted")), len(e.auditEvents("user.updated")))
		}
	})
}

func TestChangeOwnPassword(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const oldPW, newPW = "the old password 1", "the new password 22"
		u := expect(t, e.do("users", http.MethodPost, "/users", map[string]any{"username": "carol", "password": oldPW}), http.StatusCreated, "")
		id := u["id"].(string)
		e.userKey("carol", id, apikeys.ScopeIntrospect) // no admin scope needed

		path := "/users/self/password"
		m := expect(t, e.do("carol", http.MethodPost, path, map[string]any{"current_password": "wrong password!!", "new_password": newPW}), http.StatusForbidden, "access_denied")
		if !strings.Contains(m["error_description"].(string), "current password") {
			t.Errorf("wrong password: %v", m)
		}
		if m := expect(t, e.do("carol", http.MethodPost, path, map[string]any{"current_password": oldPW, "new_password": "short"}), http.StatusBadRequest, "invalid_request"); !hasField(m, "new_password") {
			t.Errorf("short password: %v", m)
		}
		expect(t, e.do("carol", http.MethodPost, path, map[string]any{"current_password": oldPW}), http.StatusBadRequest, "invalid_request")
		expect(t, e.do("carol", http.MethodPost, path, map[string]any{"current_password": oldPW, "new_password": newPW, "user_id": "x"}), http.StatusBadRequest, "invalid_request")
		// A key not owned by a user has no "own" password.
		expect(t, e.do("users", http.MethodPost, path, map[string]any{"current_password": oldPW, "new_password": newPW}), http.StatusForbidden, "access_denied")
		stored, _ := e.store.UserByID(ctx, id)
		if e.hasher.Compare(ctx, []byte(stored.PasswordHash), []byte(oldPW)) != nil {
			t.Fatal("a refused change changed the password")
		}

		r := e.do("carol", http.MethodPost, path, map[string]any{"current_password": oldPW, "new_password": newPW})
		m = expect(t, r, http.StatusOK, "")
		if m["id"] != id || strings.Contains(string(r.body), newPW) {
			t.Fatalf("change: %s", r.body)
		}
		stored, _ = e.store.UserByID(ctx, id)
		if e.hasher.Compare(ctx, []byte(stored.PasswordHash), []byte(newPW)) != nil {
			t.Fatal("new password does not verify")
		}
		if e.hasher.Compare(ctx, []byte(stored.PasswordHash), []byte(oldPW)) == nil {
			t.Fatal("old password still verifies")
		}
		if len(e.auditEvents("user.password_changed")) != 1 {
			t.Error("no audit event")
		}
		// Another admin cannot use this path on someone else.
		if _, err := e.svc.ChangeOwnPassword(ctx, Actor{ID: "user:other", Scopes: apikeys.AllScopes}, id, newPW, oldPW); err == nil {
			t.Fatal("changed someone else's password")
		}
	})
}
