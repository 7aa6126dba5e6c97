package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

// fakeSealed stands for a sealed TOTP secret: the Service never opens it,
// so any recognisable bytes do.
var fakeSealed = []byte("sealed-totp-secret-0123456789abcdef")

// enrolTOTP stores a (fake) sealed TOTP secret for user id.
func (e *env) enrolTOTP(id string) {
	e.t.Helper()
	ctx := context.Background()
	u, err := e.store.UserByID(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	u.TOTPSecretSealed = bytes.Clone(fakeSealed)
	if err := e.store.UpdateUser(ctx, u, u.Version); err != nil {
		e.t.Fatal(err)
	}
}

// addSession stores a console login session of subject.
func (e *env) addSession(key, subject string) {
	e.t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	if err := e.store.CreateLoginSession(context.Background(), &storage.LoginSession{
		Key: key, Kind: "console", Subject: subject, AuthTime: now, LastSeen: now, ExpiresAt: now.Add(time.Hour),
		Data: map[string]string{"csrf": "x"},
	}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) sessionLive(key string) bool {
	e.t.Helper()
	_, err := e.store.GetLoginSession(context.Background(), key)
	return err == nil
}

// noSecretMaterial fails if a response body carries the sealed secret in
// any common encoding, the redaction marker, or a field that could.
func noSecretMaterial(t *testing.T, body []byte) {
	t.Helper()
	s := string(body)
	for _, bad := range []string{
		string(fakeSealed), base64.StdEncoding.EncodeToString(fakeSealed), base64.RawURLEncoding.EncodeToString(fakeSealed),
		hex.EncodeToString(fakeSealed), redactedTOTP, "totp_secret", "sealed", "password_hash", "secret",
	} {
		if strings.Contains(s, bad) {
			t.Fatalf("response holds %q: %s", bad, body)
		}
	}
}

// The user view says whether TOTP is enrolled and never carries the
// secret, in a single user, a listing or a create response.
func TestUserViewTOTPEnrolled(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		r := e.do("root", http.MethodPost, "/users", map[string]any{"username": "alice", "admin_scopes": []string{apikeys.ScopeUsers}})
		m := expect(t, r, http.StatusCreated, "")
		id := m["id"].(string)
		if m["totp_enrolled"] != false {
			t.Fatalf("new user totp_enrolled = %v", m["totp_enrolled"])
		}
		e.enrolTOTP(id)

		r = e.do("users", http.MethodGet, "/users/"+id, nil)
		if m := expect(t, r, http.StatusOK, ""); m["totp_enrolled"] != true {
			t.Fatalf("enrolled user totp_enrolled = %v: %s", m["totp_enrolled"], r.body)
		}
		noSecretMaterial(t, r.body)

		r = e.do("users", http.MethodGet, "/users", nil)
		items := expect(t, r, http.StatusOK, "")["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["totp_enrolled"] != true {
			t.Fatalf("listing: %s", r.body)
		}
		noSecretMaterial(t, r.body)

		// The Service hands callers a marker, never the sealed bytes.
		u, err := e.svc.GetUser(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !TOTPEnrolled(u) || bytes.Equal(u.TOTPSecretSealed, fakeSealed) {
			t.Fatalf("GetUser: enrolled=%v, sealed bytes returned=%v", TOTPEnrolled(u), bytes.Equal(u.TOTPSecretSealed, fakeSealed))
		}
	})
}

// POST /users/{id}/totp/reset removes the second factor, ends the user's
// sessions and is audited; it needs admin:users and every admin scope of
// the user (otherwise the password alone would open a more powerful
// account).
func TestResetTOTP(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		boss := expect(t, e.do("root", http.MethodPost, "/users", map[string]any{
			"username": "boss", "admin_scopes": []string{apikeys.ScopeKeys, apikeys.ScopeUsers},
		}), http.StatusCreated, "")["id"].(string)
		peer := expect(t, e.do("root", http.MethodPost, "/users", map[string]any{
			"username": "peer", "admin_scopes": []string{apikeys.ScopeUsers},
		}), http.StatusCreated, "")["id"].(string)
		e.enrolTOTP(boss)
		e.enrolTOTP(peer)
		e.addSession("boss-session", boss)
		e.addSession("peer-session", peer)

		cases := []struct {
			name, key, id string
			status        int
			code          string
		}{
			{"no key", "", peer, http.StatusUnauthorized, "invalid_token"},
			{"bad key", "not-a-key", peer, http.StatusUnauthorized, "invalid_token"},
			{"scope missing", "clients", peer, http.StatusForbidden, "insufficient_scope"},
			{"target holds more", "users", boss, http.StatusForbidden, "insufficient_scope"},
			{"unknown user", "root", "nobody", http.StatusNotFound, "not_found"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				expect(t, e.do(tc.key, http.MethodPost, "/users/"+tc.id+"/totp/reset", nil), tc.status, tc.code)
			})
		}
		for _, id := range []string{boss, peer} {
			if u, _ := e.store.UserByID(ctx, id); !bytes.Equal(u.TOTPSecretSealed, fakeSealed) {
				t.Fatalf("a refused reset changed the second factor of %s", id)
			}
		}
		if !e.sessionLive("boss-session") || !e.sessionLive("peer-session") {
			t.Fatal("a refused reset ended sessions")
		}
		if evs := e.auditEvents("user.totp_reset"); len(evs) != 0 {
			t.Fatalf("refused resets audited as done: %d", len(evs))
		}

		r := e.do("users", http.MethodPost, "/users/"+peer+"/totp/reset", nil)
		m := expect(t, r, http.StatusOK, "")
		if m["id"] != peer || m["totp_enrolled"] != false {
			t.Fatalf("reset response: %s", r.body)
		}
		noSecretMaterial(t, r.body)
		if u, _ := e.store.UserByID(ctx, peer); len(u.TOTPSecretSealed) != 0 {
			t.Fatal("the stored secret survived the reset")
		}
		if e.sessionLive("peer-session") {
			t.Fatal("a session opened with the old second factor survived the reset")
		}
		if m := expect(t, e.do("users", http.MethodGet, "/users/"+peer, nil), http.StatusOK, ""); m["totp_enrolled"] != false {
			t.Fatalf("after reset totp_enrolled = %v", m["totp_enrolled"])
		}

		// The caller holding every scope of the target may reset it.
		expect(t, e.do("root", http.MethodPost, "/users/"+boss+"/totp/reset", map[string]any{}), http.StatusOK, "")
		if e.sessionLive("boss-session") {
			t.Fatal("boss session survived")
		}
		// A body is not part of the operation.
		expect(t, e.do("root", http.MethodPost, "/users/"+boss+"/totp/reset", map[string]any{"secret": "x"}), http.StatusBadRequest, "invalid_request")

		evs := e.auditEvents("user.totp_reset")
		if len(evs) != 2 {
			t.Fatalf("resets audited: %d, want 2", len(evs))
		}
		for _, ev := range evs {
			if !strings.HasPrefix(ev.Actor, "apikey:") || (ev.Subject != peer && ev.Subject != boss) || ev.Outcome != "success" {
				t.Fatalf("audit event: %+v", ev)
			}
			for k, v := range ev.Details {
				if strings.Contains(v, string(fakeSealed)) || strings.Contains(k, "secret") {
					t.Fatalf("audit details carry secret material: %v", ev.Details)
				}
			}
		}
	})
}

// A console user may reset their own second factor (the Account page's
// "remove"): their own sessions stay, and nobody else's scopes are needed.
func TestResetOwnTOTPKeepsSessions(t *testing.T) {
	e := newEnv(t, memory.New(memory.Config{}))
	ctx := context.Background()
	u, _, err := e.svc.CreateUser(ctx, Actor{ID: "test", Scopes: apikeys.AllScopes}, UserInput{
		Username: "solo", AdminScopes: []string{apikeys.ScopeAuditRead},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.enrolTOTP(u.ID)
	e.addSession("solo-session", u.ID)
	self := Actor{ID: "user:" + u.ID, Scopes: []string{apikeys.ScopeAuditRead}}
	got, err := e.svc.ResetTOTP(ctx, self, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if TOTPEnrolled(got) {
		t.Fatal("still enrolled")
	}
	if !e.sessionLive("solo-session") {
		t.Fatal("removing your own second factor signed you out")
	}
	evs := e.auditEvents("user.totp_reset")
	if len(evs) != 1 || evs[0].Actor != self.ID || evs[0].Subject != u.ID {
		t.Fatalf("audit: %+v", evs)
	}
}
