package storagetest

import (
	"context"
	"testing"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// txSetup stores what fosite's code exchange and refresh rotation touch:
// a code, and refresh token rt-1 with access token at-1 of request req-1.
func txSetup(t *testing.T, s storage.Store) *fosite.Request {
	t.Helper()
	c := createClient(t, s, "app")
	r := newRequest("req-1", c, "alice")
	must(t, s.CreateAuthorizeCodeSession(ctx(t), "code", r))
	must(t, s.CreateAccessTokenSession(ctx(t), "at-1", r))
	must(t, s.CreateRefreshTokenSession(ctx(t), "rt-1", "at-1", r))
	return r
}

// txWrites does, inside tx, what fosite does in one token request, plus a
// domain write, and checks the transaction reads its own writes.
func txWrites(t *testing.T, s storage.Store, tx context.Context, r *fosite.Request) {
	t.Helper()
	must(t, s.InvalidateAuthorizeCodeSession(tx, "code"))
	must(t, s.RotateRefreshToken(tx, "req-1", "rt-1"))
	must(t, s.CreateAccessTokenSession(tx, "at-2", r))
	must(t, s.CreateRefreshTokenSession(tx, "rt-2", "at-2", r))
	must(t, s.CreateClient(tx, newClient("created-in-tx")))
	got, err := s.GetAccessTokenSession(tx, "at-2", nil)
	must(t, err)
	checkRequest(t, r, got)
	_, err = s.GetRefreshTokenSession(tx, "rt-1", nil)
	wantErr(t, err, fosite.ErrInactiveToken)
}

var txTests = []test{
	{"transaction/commit", func(t *testing.T, s storage.Store) {
		r := txSetup(t, s)
		tx, err := s.BeginTX(ctx(t))
		must(t, err)
		txWrites(t, s, tx, r)
		must(t, s.Commit(tx))

		_, err = s.GetAuthorizeCodeSession(ctx(t), "code", nil)
		wantErr(t, err, fosite.ErrInvalidatedAuthorizeCode)
		_, err = s.GetRefreshTokenSession(ctx(t), "rt-1", nil)
		wantErr(t, err, fosite.ErrInactiveToken)
		_, err = s.GetAccessTokenSession(ctx(t), "at-1", nil)
		wantErr(t, err, fosite.ErrNotFound)
		_, err = s.GetAccessTokenSession(ctx(t), "at-2", nil)
		must(t, err)
		_, err = s.GetRefreshTokenSession(ctx(t), "rt-2", nil)
		must(t, err)
		_, err = s.ClientByID(ctx(t), "created-in-tx")
		must(t, err)
	}},
	{"transaction/rollback", func(t *testing.T, s storage.Store) {
		r := txSetup(t, s)
		tx, err := s.BeginTX(ctx(t))
		must(t, err)
		txWrites(t, s, tx, r)
		must(t, s.Rollback(tx))

		got, err := s.GetAuthorizeCodeSession(ctx(t), "code", nil)
		must(t, err)
		checkRequest(t, r, got)
		_, err = s.GetRefreshTokenSession(ctx(t), "rt-1", nil)
		must(t, err)
		_, err = s.GetAccessTokenSession(ctx(t), "at-1", nil)
		must(t, err)
		_, err = s.GetAccessTokenSession(ctx(t), "at-2", nil)
		wantErr(t, err, fosite.ErrNotFound)
		_, err = s.GetRefreshTokenSession(ctx(t), "rt-2", nil)
		wantErr(t, err, fosite.ErrNotFound)
		_, err = s.ClientByID(ctx(t), "created-in-tx")
		wantErr(t, err, storage.ErrNotFound)
	}},
	{"transaction/sequential", func(t *testing.T, s storage.Store) {
		// A finished transaction releases everything it held.
		for i := 0; i < 3; i++ {
			tx, err := s.BeginTX(ctx(t))
			must(t, err)
			must(t, s.SetClientAssertionJWT(tx, "jti", now().Add(-1)))
			if i%2 == 0 {
				must(t, s.Commit(tx))
			} else {
				must(t, s.Rollback(tx))
			}
		}
		must(t, s.Ping(ctx(t)))
	}},
	{"transaction/without-tx", func(t *testing.T, s storage.Store) {
		if err := s.Commit(ctx(t)); err == nil {
			t.Fatal("Commit without BeginTX succeeded")
		}
		if err := s.Rollback(ctx(t)); err == nil {
			t.Fatal("Rollback without BeginTX succeeded")
		}
	}},
}
