package storagetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// mintLockTests pin storage.MintLocker: a mint that holds the mint lock
// and a containment of its user or client are ordered, so no token of a
// disabled user or client stays active, whichever commits first.
var mintLockTests = []test{
	{"mintlock/refuses-inactive-user-or-client", func(t *testing.T, s storage.Store) {
		createClient(t, s, "app")
		off := newClient("off")
		off.Disabled = true
		must(t, s.CreateClient(ctx(t), off))
		must(t, s.CreateUser(ctx(t), newUser("alice", "alice")))
		bob := newUser("bob", "bob")
		bob.Disabled = true
		must(t, s.CreateUser(ctx(t), bob))
		for _, tc := range []struct {
			name, subject, client string
			want                  error
		}{
			{"case=active user and client", "alice", "app", nil},
			{"case=disabled user", "bob", "app", storage.ErrOwnerDisabled},
			{"case=unknown user", "carol", "app", storage.ErrOwnerDisabled},
			{"case=empty subject", "", "app", storage.ErrOwnerDisabled},
			{"case=disabled client", "alice", "off", storage.ErrOwnerDisabled},
			{"case=unknown client", "alice", "ghost", storage.ErrOwnerDisabled},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tx, err := s.BeginTX(ctx(t))
				must(t, err)
				err = s.LockMint(tx, tc.subject, tc.client)
				must(t, s.Rollback(tx))
				if tc.want == nil {
					must(t, err)
					return
				}
				wantErr(t, err, tc.want)
			})
		}
		// Outside a transaction the lock would end with its statement.
		if err := s.LockMint(ctx(t), "alice", "app"); err == nil {
			t.Fatal("LockMint without a transaction succeeded")
		}
	}},
	{"mintlock/sees-committed-disable", func(t *testing.T, s storage.Store) {
		createClient(t, s, "app")
		must(t, s.CreateUser(ctx(t), newUser("alice", "alice")))
		must(t, disableUserAndRevoke(ctx(t), s, "alice"))
		tx, err := s.BeginTX(ctx(t))
		must(t, err)
		err = s.LockMint(tx, "alice", "app")
		must(t, s.Rollback(tx))
		wantErr(t, err, storage.ErrOwnerDisabled)
	}},
	{"mintlock/mints-racing-user-disable", func(t *testing.T, s storage.Store) {
		mintsRacingContainment(t, s, func() error { return disableUserAndRevoke(ctx(t), s, "alice") })
	}},
	{"mintlock/mints-racing-client-disable", func(t *testing.T, s storage.Store) {
		mintsRacingContainment(t, s, func() error { return disableAndRevoke(t, s, "app") })
	}},
}

// mintsRacingContainment releases n mints of alice's tokens for client
// app, each in a transaction opened by LockMint, together with contain.
// Every mint succeeds or is refused with ErrOwnerDisabled, and afterwards
// no token any of them minted is active.
func mintsRacingContainment(t *testing.T, s storage.Store, contain func() error) {
	const n = 12
	c := createClient(t, s, "app")
	must(t, s.CreateUser(ctx(t), newUser("alice", "alice")))
	errs := Together(n+1, func(i int) error {
		if i == n {
			return contain()
		}
		return mintLocked(ctx(t), s, newRequest(fmt.Sprintf("req-%d", i), c, "alice"), fmt.Sprintf("at-%d", i), fmt.Sprintf("rt-%d", i))
	})
	must(t, errs[n])
	for i, err := range errs[:n] {
		if err != nil && !errors.Is(err, storage.ErrOwnerDisabled) {
			t.Fatalf("mint %d: want success or ErrOwnerDisabled, got %v", i, err)
		}
		if _, err := s.GetAccessTokenSession(ctx(t), fmt.Sprintf("at-%d", i), nil); !errors.Is(err, fosite.ErrNotFound) {
			t.Fatalf("access token %d survived containment (lookup: %v)", i, err)
		}
		_, err := s.GetRefreshTokenSession(ctx(t), fmt.Sprintf("rt-%d", i), nil)
		if !errors.Is(err, fosite.ErrNotFound) && !errors.Is(err, fosite.ErrInactiveToken) {
			t.Fatalf("refresh token %d survived containment (lookup: %v)", i, err)
		}
	}
}

// mintLocked is the device grant's mint: LockMint first, then an access
// and a refresh token, in one transaction.
func mintLocked(ctx context.Context, s storage.Store, r *fosite.Request, at, rt string) error {
	tx, err := s.BeginTX(ctx)
	if err != nil {
		return err
	}
	err = func() error {
		if err := s.LockMint(tx, "alice", r.GetClient().GetID()); err != nil {
			return err
		}
		if err := s.CreateAccessTokenSession(tx, at, r); err != nil {
			return err
		}
		return s.CreateRefreshTokenSession(tx, rt, at, r)
	}()
	if err != nil {
		_ = s.Rollback(tx)
		return err
	}
	return s.Commit(tx)
}

// disableUserAndRevoke is the admin service's DisableUser: in one
// transaction mark the user disabled, then revoke their tokens.
func disableUserAndRevoke(ctx context.Context, s storage.Store, id string) error {
	tx, err := s.BeginTX(ctx)
	if err != nil {
		return err
	}
	err = func() error {
		u, err := s.UserByID(tx, id)
		if err != nil {
			return err
		}
		u.Disabled = true
		if err := s.UpdateUser(tx, u, u.Version); err != nil {
			return err
		}
		_, err = s.RevokeTokensBySubject(tx, id)
		return err
	}()
	if err != nil {
		_ = s.Rollback(tx)
		return err
	}
	return s.Commit(tx)
}
