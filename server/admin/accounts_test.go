package admin

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
)

// failUpdateUser makes every UpdateUser fail after the store has done
// everything before it in the transaction.
type failUpdateUser struct{ storage.Store }

var errInjected = errors.New("injected update failure")

func (failUpdateUser) UpdateUser(context.Context, *storage.User, int64) error { return errInjected }

// ResetPassword (and ResetTOTP) end the user's sessions in the transaction
// that changes the credential: both happen, or (when the update fails)
// neither does.
func TestResetPasswordEndsSessionsAtomically(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		u := &storage.User{ID: "u-1", Username: "alice", PasswordHash: "old", CreatedAt: now, UpdatedAt: now}
		if err := e.store.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"s-1", "s-2"} {
			if err := e.store.CreateLoginSession(ctx, &storage.LoginSession{Key: key, Kind: "public", Subject: "u-1",
				AuthTime: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		actor := Actor{ID: "test", Scopes: []string{"admin:users"}}

		broken := *e.svc
		broken.store = failUpdateUser{e.store}
		if _, _, err := broken.ResetPassword(ctx, actor, "u-1"); !errors.Is(err, errInjected) {
			t.Fatalf("reset with a failing update: %v", err)
		}
		if _, err := broken.ResetTOTP(ctx, actor, "u-1"); !errors.Is(err, errInjected) {
			t.Fatalf("TOTP reset with a failing update: %v", err)
		}
		for _, key := range []string{"s-1", "s-2"} {
			if _, err := e.store.GetLoginSession(ctx, key); err != nil {
				t.Fatalf("session %s ended although the password did not change: %v", key, err)
			}
		}

		if _, pw, err := e.svc.ResetPassword(ctx, actor, "u-1"); err != nil || pw == "" {
			t.Fatalf("reset: %v", err)
		}
		for _, key := range []string{"s-1", "s-2"} {
			if _, err := e.store.GetLoginSession(ctx, key); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("session %s survived the reset: %v", key, err)
			}
		}
		got, err := e.store.UserByID(ctx, "u-1")
		if err != nil || got.PasswordHash == "old" {
			t.Fatalf("hash not replaced: %v", err)
		}
	})
}

// Deleting a client revokes the API keys it owns, like disabling it: a key
// of a client that no longer exists must not keep working.
func TestDeleteClientRevokesItsAPIKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		m := expect(t, e.do("clients", http.MethodPost, "/clients", webClient("Doomed")), http.StatusCreated, "")
		id, _ := m["client_id"].(string)
		tok, k, err := e.keys.Create(ctx, apikeys.CreateRequest{
			Name: "owned", OwnerType: apikeys.OwnerClient, OwnerID: id, Scopes: []string{apikeys.ScopeIntrospect}, CreatedBy: "test",
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.keys.Verify(ctx, tok); err != nil {
			t.Fatalf("owned key before delete: %v", err)
		}
		expect(t, e.do("clients", http.MethodDelete, "/clients/"+id, nil), http.StatusNoContent, "")
		if _, _, err := e.keys.Verify(ctx, tok); !errors.Is(err, apikeys.ErrRevoked) {
			t.Fatalf("owned key after delete: %v", err)
		}
		if got, _ := e.store.APIKeyByID(ctx, k.ID); got.Status != storage.APIKeyRevoked {
			t.Fatalf("stored status %s", got.Status)
		}
	})
}
