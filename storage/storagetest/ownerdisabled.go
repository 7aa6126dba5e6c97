package storagetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/bulwark-auth/bulwark/storage"
)

// ownerDisabledTests: a disabled client or user never ends up with a live
// API key, even when the create races the disable and owner revocation.
var ownerDisabledTests = []test{
	{"apikey/owner-disabled-refused", func(t *testing.T, s storage.Store) {
		c := newClient("off")
		c.Disabled = true
		must(t, s.CreateClient(ctx(t), c))
		u := newUser("u-off", "off-user")
		u.Disabled = true
		must(t, s.CreateUser(ctx(t), u))
		must(t, s.CreateUser(ctx(t), newUser("u-on", "on-user")))
		createClient(t, s, "on")
		for _, tc := range []struct {
			ownerType, ownerID string
			want               error
		}{
			{"client", "off", storage.ErrOwnerDisabled},
			{"user", "u-off", storage.ErrOwnerDisabled},
			{"client", "on", nil},
			{"user", "u-on", nil},
			// The types are checked too: a user id is not a client.
			{"client", "u-off", nil},
			{"service", "off", nil},
		} {
			id := "k-" + tc.ownerType + "-" + tc.ownerID
			err := s.CreateAPIKey(ctx(t), chainKey(id, tc.ownerType, tc.ownerID))
			if tc.want == nil {
				must(t, err)
				continue
			}
			wantErr(t, err, tc.want)
			if _, err := s.APIKeyByID(ctx(t), id); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("refused key %s was stored (lookup: %v)", id, err)
			}
		}
	}},
	{"apikey/create-racing-disable", func(t *testing.T, s storage.Store) {
		for _, ownerType := range []string{"client", "user"} {
			owner := "racer-" + ownerType
			// Create the owner first, then race: racer 0 disables and
			// revokes the owner's keys the way the admin Service does,
			// the others create keys.
			var disableOwner func() error
			if ownerType == "client" {
				c := createClient(t, s, owner)
				disableOwner = func() error {
					c.Disabled = true
					return s.UpdateClient(ctx(t), c, c.Version)
				}
			} else {
				u := newUser(owner, owner)
				must(t, s.CreateUser(ctx(t), u))
				disableOwner = func() error {
					u.Disabled = true
					return s.UpdateUser(ctx(t), u, u.Version)
				}
			}
			const n = 12
			errs := Together(n, func(i int) error {
				if i == 0 {
					if err := disableOwner(); err != nil {
						return err
					}
					_, err := s.RevokeAPIKeysByOwner(ctx(t), ownerType, owner, now())
					return err
				}
				return s.CreateAPIKey(ctx(t), chainKey(fmt.Sprintf("%s-%d", owner, i), ownerType, owner))
			})
			if errs[0] != nil {
				t.Fatalf("disable %s: %v", owner, errs[0])
			}
			for i, err := range errs[1:] {
				if err != nil && !errors.Is(err, storage.ErrOwnerDisabled) {
					t.Fatalf("create %d: want success or ErrOwnerDisabled, got %v", i+1, err)
				}
			}
			if live := liveKeys(t, s, ownerType, owner); len(live) != 0 {
				t.Fatalf("disabled %s %s kept live keys %v", ownerType, owner, live)
			}
			// Afterwards every create is refused.
			wantErr(t, s.CreateAPIKey(ctx(t), chainKey(owner+"-late", ownerType, owner)), storage.ErrOwnerDisabled)
		}
	}},
}
