package apikeys

import (
	"context"
	"errors"
	"testing"

	"github.com/bulwark-auth/bulwark/storage"
)

// Between a user's disable and the revocation of their keys, rotating one
// of their keys is refused as "not active", never a server fault, and
// creating one is refused with ErrOwnerDisabled.
func TestRotateForDisabledOwnerNotActive(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := setup(t, b)
		ctx := context.Background()
		users, ok := f.store.(storage.UserStore)
		if !ok {
			t.Fatalf("%T is not a UserStore", f.store)
		}
		u := &storage.User{ID: "u-1", Username: "alice"}
		if err := users.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		_, k := f.create(t, func(r *CreateRequest) { r.OwnerType, r.OwnerID = OwnerUser, "u-1" })
		u.Disabled = true
		if err := users.UpdateUser(ctx, u, u.Version); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.Rotate(ctx, k.ID, "admin"); !errors.Is(err, ErrNotActive) {
			t.Fatalf("Rotate: want ErrNotActive, got %v", err)
		}
		_, _, err := f.svc.Create(ctx, CreateRequest{Name: "n", OwnerType: OwnerUser, OwnerID: "u-1", Scopes: []string{ScopeIntrospect}})
		if !errors.Is(err, storage.ErrOwnerDisabled) {
			t.Fatalf("Create: want ErrOwnerDisabled, got %v", err)
		}
	})
}
