package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// Every admin operation that ends a user's sessions queues a back-channel
// logout for each relying party that joined one, in its own transaction.
func TestSessionEndingOperationsQueueBackchannelLogouts(t *testing.T) {
	actor := Actor{ID: "user:root", Scopes: []string{"admin:users"}}
	ops := []struct {
		name   string
		reason string
		// sessionKept: the login session survives (consent revocation).
		sessionKept bool
		run         func(e *env) error
	}{
		{"disable", LogoutUserDisabled, false, func(e *env) error {
			_, _, err := e.svc.DisableUser(context.Background(), actor, "u-1")
			return err
		}},
		{"reset-password", LogoutPasswordReset, false, func(e *env) error {
			_, _, err := e.svc.ResetPassword(context.Background(), actor, "u-1")
			return err
		}},
		{"set-password", LogoutPasswordSet, false, func(e *env) error {
			_, err := e.svc.SetPassword(context.Background(), actor, "u-1", "a-new-password-0123456789")
			return err
		}},
		{"reset-totp", LogoutTOTPReset, false, func(e *env) error {
			_, err := e.svc.ResetTOTP(context.Background(), actor, "u-1")
			return err
		}},
		{"delete", LogoutUserDeleted, false, func(e *env) error {
			_, err := e.svc.DeleteUser(context.Background(), actor, "u-1")
			return err
		}},
		{"revoke-sessions-api", LogoutSessionsRevoked, false, func(e *env) error {
			m := expect(e.t, e.do("users", http.MethodDelete, "/users/u-1/sessions", nil), http.StatusOK, "")
			if m["login_sessions_deleted"] != float64(1) || m["backchannel_logouts_queued"] != float64(1) {
				e.t.Fatalf("answer: %v", m)
			}
			return nil
		}},
		{"revoke-consent-api", LogoutConsentRevoked, true, func(e *env) error {
			expect(e.t, e.do("users", http.MethodDelete, "/users/u-1/consents/rp", nil), http.StatusOK, "")
			return nil
		}},
	}
	for _, op := range ops {
		t.Run("op="+op.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, e *env) {
				ctx := context.Background()
				setupRPSession(t, e)
				if err := op.run(e); err != nil {
					t.Fatal(err)
				}
				got := claimLogouts(t, e)
				if len(got) != 1 || got[0].ClientID != "rp" || got[0].Subject != "u-1" || got[0].SID != "sid-1" || got[0].Reason != op.reason {
					t.Fatalf("queued: %+v", got)
				}
				// The bystander client never joined a session: nothing for it.
				_, err := e.store.GetLoginSession(ctx, "login-1")
				if op.sessionKept != (err == nil) {
					t.Fatalf("login session after %s: %v", op.name, err)
				}
			})
		})
	}
}

// A failed operation queues nothing: the logouts roll back with it.
func TestFailedOperationQueuesNoLogout(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		setupRPSession(t, e)
		broken := *e.svc
		broken.store = failUpdateUser{e.store}
		actor := Actor{ID: "user:root", Scopes: []string{"admin:users"}}
		if _, _, err := broken.ResetPassword(ctx, actor, "u-1"); !errors.Is(err, errInjected) {
			t.Fatalf("reset: %v", err)
		}
		if _, _, err := broken.DisableUser(ctx, actor, "u-1"); !errors.Is(err, errInjected) {
			t.Fatalf("disable: %v", err)
		}
		if n, err := e.store.PendingLogouts(ctx); err != nil || n != 0 {
			t.Fatalf("pending after failed operations: %d %v", n, err)
		}
		// The RP session is intact and still queued by a real reset.
		if _, _, err := e.svc.ResetPassword(ctx, actor, "u-1"); err != nil {
			t.Fatal(err)
		}
		if got := claimLogouts(t, e); len(got) != 1 {
			t.Fatalf("queued after the real reset: %+v", got)
		}
	})
}

// setupRPSession creates user u-1 with login session login-1 (sid sid-1)
// joined by client rp (which has a back-channel URI and a consent), and a
// client bystander with a URI but no session.
func setupRPSession(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, id := range []string{"rp", "bystander"} {
		if err := e.store.CreateClient(ctx, &storage.Client{
			ID: id, Name: id, RedirectURIs: []string{"https://" + id + ".example/cb"}, GrantTypes: []string{"authorization_code"},
			ResponseTypes: []string{"code"}, Scopes: []string{"openid"}, TokenEndpointAuthMethod: storage.AuthMethodNone,
			BackchannelLogoutURI: "https://" + id + ".example/backchannel", BackchannelLogoutSessionRequired: true,
			CreatedAt: now, UpdatedAt: now,
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.CreateUser(ctx, &storage.User{ID: "u-1", Username: "alice", PasswordHash: "x", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateLoginSession(ctx, &storage.LoginSession{Key: "login-1", Kind: "public", Subject: "u-1", SID: "sid-1",
		AuthTime: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.JoinLoginSession(ctx, "login-1", "rp"); err != nil {
		t.Fatal(err)
	}
	if err := e.store.SaveConsent(ctx, &storage.Consent{Subject: "u-1", ClientID: "rp", Scopes: []string{"openid"}}); err != nil {
		t.Fatal(err)
	}
}

func claimLogouts(t *testing.T, e *env) []*storage.BackchannelLogout {
	t.Helper()
	got, err := e.store.ClaimLogouts(context.Background(), "test", time.Now().Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b *storage.BackchannelLogout) int { return int(a.ID - b.ID) })
	return got
}
