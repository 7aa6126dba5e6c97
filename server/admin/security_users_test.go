package admin

import (
	"context"
	"net/http"
	"testing"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

// An admin with admin:users must not take over an account that holds
// scopes it lacks: resetting that account's password would hand the caller
// the password, and with it the account's scopes in the console. Enabling
// such an account again is the same decision. Accounts within the caller's
// own scopes stay manageable.
func TestUserOperationsNeedTheTargetsScopes(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		boss := expect(t, e.do("root", http.MethodPost, "/users", map[string]any{
			"username": "boss", "admin_scopes": []string{apikeys.ScopeKeys, apikeys.ScopeUsers},
		}), http.StatusCreated, "")["id"].(string)
		peer := expect(t, e.do("root", http.MethodPost, "/users", map[string]any{
			"username": "peer", "admin_scopes": []string{apikeys.ScopeUsers},
		}), http.StatusCreated, "")["id"].(string)
		before, err := e.store.UserByID(ctx, boss)
		if err != nil {
			t.Fatal(err)
		}

		r := e.do("users", http.MethodPost, "/users/"+boss+"/password", nil)
		m := expect(t, r, http.StatusForbidden, "insufficient_scope")
		if m["password"] != nil {
			t.Fatalf("a refused reset returned a password: %s", r.body)
		}
		after, err := e.store.UserByID(ctx, boss)
		if err != nil {
			t.Fatal(err)
		}
		if after.PasswordHash != before.PasswordHash {
			t.Fatal("a refused reset changed the password")
		}

		// Disabling takes power away and stays allowed (containment);
		// enabling the account again gives it back and is refused.
		expect(t, e.do("users", http.MethodPost, "/users/"+boss+"/disable", nil), http.StatusOK, "")
		expect(t, e.do("users", http.MethodPost, "/users/"+boss+"/enable", nil), http.StatusForbidden, "insufficient_scope")
		if u, _ := e.store.UserByID(ctx, boss); !u.Disabled {
			t.Fatal("a refused enable enabled the user")
		}
		expect(t, e.do("root", http.MethodPost, "/users/"+boss+"/enable", nil), http.StatusOK, "")
		expect(t, e.do("root", http.MethodPost, "/users/"+boss+"/password", nil), http.StatusOK, "")

		// Within the caller's scopes: allowed.
		m = expect(t, e.do("users", http.MethodPost, "/users/"+peer+"/password", nil), http.StatusOK, "")
		if m["password"] == nil {
			t.Fatalf("reset of a peer: %v", m)
		}
		if evs := e.auditEvents("user.password_reset"); len(evs) != 2 {
			t.Fatalf("password resets audited: %d, want 2", len(evs))
		}
	})
}

// A console user cannot disable their own account: it would lock them out
// at once and, for the last administrator, everyone.
func TestUserCannotDisableThemselves(t *testing.T) {
	e := newEnv(t, memory.New(memory.Config{}))
	ctx := context.Background()
	u, _, err := e.svc.CreateUser(ctx, Actor{ID: "test", Scopes: apikeys.AllScopes}, UserInput{
		Username: "solo", AdminScopes: []string{apikeys.ScopeUsers},
	})
	if err != nil {
		t.Fatal(err)
	}
	self := Actor{ID: "user:" + u.ID, Scopes: []string{apikeys.ScopeUsers}}
	if _, _, err := e.svc.DisableUser(ctx, self, u.ID); err == nil {
		t.Fatal("a user disabled themselves")
	} else if _, ok := err.(*InvalidError); !ok {
		t.Fatalf("error %v, want an InvalidError", err)
	}
	if got, _ := e.store.UserByID(ctx, u.ID); got.Disabled {
		t.Fatal("the user is disabled")
	}
}

// Usernames are what admins pick accounts by: a bidi override or a
// zero-width character would let one account pass for another.
func TestUsernameFormatCharacters(t *testing.T) {
	e := newEnv(t, memory.New(memory.Config{}))
	for _, name := range []string{"ad\u200bmin", "\u202eadmin", "admin\ufeff"} {
		m := expect(t, e.do("users", http.MethodPost, "/users", map[string]any{"username": name}), http.StatusBadRequest, "invalid_request")
		if !hasField(m, "username") {
			t.Fatalf("%q: does not name username: %v", name, m)
		}
	}
	expect(t, e.do("users", http.MethodPost, "/users", map[string]any{"username": "zoë"}), http.StatusCreated, "")
}
