package storagetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// containmentTests: a client-only mint (client credentials, token exchange)
// runs outside a transaction and holds no grant lock, so the store itself
// must order it against a disable of its client: no access token of a
// disabled client may exist once the disable's transaction committed.
var containmentTests = []test{
	{"containment/mint-after-disable-refused", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "cc")
		disableClient(t, s, "cc")
		err := s.CreateAccessTokenSession(ctx(t), "at-late", newRequest("req-late", c, ""))
		if !errors.Is(err, fosite.ErrInvalidClient) {
			t.Fatalf("mint for a disabled client: want invalid_client, got %v", err)
		}
		if _, err := s.GetAccessTokenSession(ctx(t), "at-late", newSession("", "cc", now().Add(time.Hour))); err == nil {
			t.Fatal("a token of a disabled client was stored")
		}
	}},
	{"containment/mint-for-unknown-client-refused", func(t *testing.T, s storage.Store) {
		c := newClient("ghost")
		err := s.CreateAccessTokenSession(ctx(t), "at-ghost", newRequest("req-ghost", c, ""))
		if !errors.Is(err, fosite.ErrInvalidClient) {
			t.Fatalf("mint for an unknown client: want invalid_client, got %v", err)
		}
	}},
	{"containment/mints-racing-disable", func(t *testing.T, s storage.Store) {
		const n = 16
		c := createClient(t, s, "cc")
		errs := Together(n+1, func(i int) error {
			if i == n {
				return disableAndRevoke(t, s, "cc")
			}
			return s.CreateAccessTokenSession(ctx(t), fmt.Sprintf("at-%d", i), newRequest(fmt.Sprintf("req-%d", i), c, ""))
		})
		must(t, errs[n])
		for i, err := range errs[:n] {
			if err != nil && !errors.Is(err, fosite.ErrInvalidClient) {
				t.Fatalf("mint %d: want success or invalid_client, got %v", i, err)
			}
			if _, err := s.GetAccessTokenSession(ctx(t), fmt.Sprintf("at-%d", i), newSession("", "cc", now().Add(time.Hour))); err == nil {
				t.Fatalf("access token %d of the disabled client survived containment", i)
			}
		}
	}},
}

// disableAndRevoke is the admin service's containment: in one transaction
// mark the client disabled, then revoke its tokens.
func disableAndRevoke(t *testing.T, s storage.Store, id string) error {
	tx, err := s.BeginTX(ctx(t))
	if err != nil {
		return err
	}
	err = func() error {
		c, err := s.ClientByID(tx, id)
		if err != nil {
			return err
		}
		c.Disabled = true
		if err := s.UpdateClient(tx, c, c.Version); err != nil {
			return err
		}
		_, err = s.RevokeTokensByClient(tx, id)
		return err
	}()
	if err != nil {
		_ = s.Rollback(tx)
		return err
	}
	return s.Commit(tx)
}

func disableClient(t *testing.T, s storage.Store, id string) {
	t.Helper()
	must(t, disableAndRevoke(t, s, id))
}
