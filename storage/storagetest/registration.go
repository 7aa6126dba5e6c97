package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// registrationTests: initial access tokens count registrations with one
// atomic decision, and registration access tokens rotate with one.
var registrationTests = []test{
	{"registration/initial token round trip and listing", testInitialTokenRoundTrip},
	{"registration/initial token uses up, expires and revokes", testInitialTokenUses},
	{"registration/initial token use rolls back with its transaction", testInitialTokenUseRollback},
	{"registration/single-use initial token raced admits exactly one", testInitialTokenRace},
	{"registration/registration token check and rotate", testRegistrationTokenRotate},
	{"registration/registration token rotation raced has one winner", testRegistrationTokenRace},
	{"registration/deleting the client deletes its registration token", testRegistrationTokenGoesWithClient},
	{"registration/ended initial tokens are deleted in batches after retention", testInitialTokenJanitor},
}

func newInitialToken(id string, maxClients int, expires time.Time) *storage.InitialAccessToken {
	return &storage.InitialAccessToken{
		ID: id, Description: "partner " + id, Scopes: []string{"openid", "api:read"},
		GrantTypes: []string{"authorization_code"}, MaxClients: maxClients,
		ExpiresAt: expires, CreatedBy: "apikey:admin", CreatedAt: now(),
	}
}

func hashOf(s string) []byte { return bytes.Repeat([]byte(s), 32/len(s)+1)[:32] }

func testInitialTokenRoundTrip(t *testing.T, s storage.Store) {
	want := newInitialToken("iat-a", 3, now().Add(time.Hour))
	must(t, s.CreateInitialAccessToken(ctx(t), want, hashOf("a")))
	got, err := s.InitialAccessTokenByID(ctx(t), "iat-a")
	must(t, err)
	wantEqual(t, "initial token", want, got)
	wantErr(t, s.CreateInitialAccessToken(ctx(t), newInitialToken("iat-a", 1, now().Add(time.Hour)), hashOf("x")), storage.ErrConflict)
	wantErr(t, s.CreateInitialAccessToken(ctx(t), newInitialToken("iat-b", 1, now().Add(time.Hour)), hashOf("a")), storage.ErrConflict)
	must(t, s.CreateInitialAccessToken(ctx(t), newInitialToken("iat-c", 1, now().Add(time.Hour)), hashOf("c")))
	list, err := s.ListInitialAccessTokens(ctx(t), storage.ListOptions{})
	must(t, err)
	if len(list) != 2 || list[0].ID != "iat-a" || list[1].ID != "iat-c" {
		t.Fatalf("list = %v", list)
	}
	list, err = s.ListInitialAccessTokens(ctx(t), storage.ListOptions{After: "iat-a", Limit: 5})
	must(t, err)
	if len(list) != 1 || list[0].ID != "iat-c" {
		t.Fatalf("second page = %v", list)
	}
	_, err = s.InitialAccessTokenByID(ctx(t), "nope")
	wantErr(t, err, storage.ErrNotFound)
}

func testInitialTokenUses(t *testing.T, s storage.Store) {
	t0 := now()
	must(t, s.CreateInitialAccessToken(ctx(t), newInitialToken("two", 2, t0.Add(time.Hour)), hashOf("two")))
	must(t, s.CreateInitialAccessToken(ctx(t), newInitialToken("old", 5, t0.Add(time.Minute)), hashOf("old")))
	must(t, s.CreateInitialAccessToken(ctx(t), newInitialToken("rev", 5, t0.Add(time.Hour)), hashOf("rev")))

	// Any of the presented hashes may match (one per master secret).
	for i := 1; i <= 2; i++ {
		tok, err := s.UseInitialAccessToken(ctx(t), [][]byte{hashOf("zz"), hashOf("two")}, t0)
		must(t, err)
		if tok.ID != "two" || tok.Registered != i {
			t.Fatalf("use %d: %+v", i, tok)
		}
	}
	_, err := s.UseInitialAccessToken(ctx(t), [][]byte{hashOf("two")}, t0)
	wantErr(t, err, storage.ErrNotFound)

	_, err = s.UseInitialAccessToken(ctx(t), [][]byte{hashOf("old")}, t0.Add(time.Minute))
	wantErr(t, err, storage.ErrNotFound)
	if _, err := s.UseInitialAccessToken(ctx(t), [][]byte{hashOf("old")}, t0); err != nil {
		t.Fatalf("before expiry: %v", err)
	}

	at := t0.Add(time.Second)
	rev, err := s.RevokeInitialAccessToken(ctx(t), "rev", at)
	must(t, err)
	if rev.RevokedAt == nil || !rev.RevokedAt.Equal(at) {
		t.Fatalf("revoked_at = %v", rev.RevokedAt)
	}
	again, err := s.RevokeInitialAccessToken(ctx(t), "rev", at.Add(time.Hour))
	must(t, err)
	if !again.RevokedAt.Equal(at) {
		t.Fatalf("a second revocation moved revoked_at to %v", again.RevokedAt)
	}
	_, err = s.UseInitialAccessToken(ctx(t), [][]byte{hashOf("rev")}, t0)
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.UseInitialAccessToken(ctx(t), [][]byte{hashOf("unknown")}, t0)
	wantErr(t, err, storage.ErrNotFound)
	_, err = s.RevokeInitialAccessToken(ctx(t), "unknown", at)
	wantErr(t, err, storage.ErrNotFound)
}

func testInitialTokenUseRollback(t *testing.T, s storage.Store) {
	must(t, s.CreateInitialAccessToken(ctx(t), newInitialToken("one", 1, now().Add(time.Hour)), hashOf("one")))
	tctx, err := s.BeginTX(ctx(t))
	must(t, err)
	if _, err := s.UseInitialAccessToken(tctx, [][]byte{hashOf("one")}, now()); err != nil {
		t.Fatal(err)
	}
	must(t, s.Rollback(tctx))
	tok, err := s.UseInitialAccessToken(ctx(t), [][]byte{hashOf("one")}, now())
	must(t, err)
	if tok.Registered != 1 {
		t.Fatalf("registered = %d after a rolled-back use and one use", tok.Registered)
	}
}

// testInitialTokenRace: registrations racing for a single-use token, each
// in its own transaction that also creates the client, as the
// registration endpoint does. Exactly one client results.
func testInitialTokenRace(t *testing.T, s storage.Store) {
	must(t, s.CreateInitialAccessToken(ctx(t), newInitialToken("single", 1, now().Add(time.Hour)), hashOf("single")))
	const n = 12
	errs := Together(n, func(i int) error {
		tctx, err := s.BeginTX(ctx(t))
		if err != nil {
			return err
		}
		if _, err := s.UseInitialAccessToken(tctx, [][]byte{hashOf("single")}, now()); err != nil {
			_ = s.Rollback(tctx)
			return err
		}
		c := newClient(fmt.Sprintf("raced-%d", i))
		if err := s.CreateClient(tctx, c); err != nil {
			_ = s.Rollback(tctx)
			return err
		}
		return s.Commit(tctx)
	})
	if won := Count(errs, func(err error) bool { return err == nil }); won != 1 {
		t.Fatalf("%d registrations succeeded with a single-use token: %v", won, errs)
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("a loser failed with %v, want ErrNotFound", err)
		}
	}
	cs, err := s.ListClients(ctx(t), storage.ListOptions{})
	must(t, err)
	if len(cs) != 1 {
		t.Fatalf("%d clients exist", len(cs))
	}
	tok, err := s.InitialAccessTokenByID(ctx(t), "single")
	must(t, err)
	if tok.Registered != 1 {
		t.Fatalf("registered = %d", tok.Registered)
	}
}

func testRegistrationTokenRotate(t *testing.T, s storage.Store) {
	createClient(t, s, "dyn")
	at := now()
	wantErr(t, s.CreateRegistrationToken(ctx(t), "missing", hashOf("r0"), at), storage.ErrNotFound)
	must(t, s.CreateRegistrationToken(ctx(t), "dyn", hashOf("r1"), at))
	wantErr(t, s.CreateRegistrationToken(ctx(t), "dyn", hashOf("r9"), at), storage.ErrConflict)
	must(t, s.CheckRegistrationToken(ctx(t), "dyn", [][]byte{hashOf("zz"), hashOf("r1")}))
	wantErr(t, s.CheckRegistrationToken(ctx(t), "dyn", [][]byte{hashOf("r2")}), storage.ErrNotFound)
	wantErr(t, s.CheckRegistrationToken(ctx(t), "other", [][]byte{hashOf("r1")}), storage.ErrNotFound)

	wantErr(t, s.RotateRegistrationToken(ctx(t), "dyn", [][]byte{hashOf("r2")}, hashOf("r3"), at), storage.ErrNotFound)
	must(t, s.RotateRegistrationToken(ctx(t), "dyn", [][]byte{hashOf("r1")}, hashOf("r2"), at))
	wantErr(t, s.CheckRegistrationToken(ctx(t), "dyn", [][]byte{hashOf("r1")}), storage.ErrNotFound)
	must(t, s.CheckRegistrationToken(ctx(t), "dyn", [][]byte{hashOf("r2")}))
	wantErr(t, s.RotateRegistrationToken(ctx(t), "dyn", [][]byte{hashOf("r1")}, hashOf("r4"), at), storage.ErrNotFound)
}

func testRegistrationTokenRace(t *testing.T, s storage.Store) {
	createClient(t, s, "dyn")
	must(t, s.CreateRegistrationToken(ctx(t), "dyn", hashOf("r1"), now()))
	const n = 12
	errs := Together(n, func(i int) error {
		return s.RotateRegistrationToken(ctx(t), "dyn", [][]byte{hashOf("r1")}, hashOf(fmt.Sprintf("n%02d", i)), now())
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("two rotations won: %d and %d", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, storage.ErrNotFound):
			t.Fatalf("rotation %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no rotation won")
	}
	must(t, s.CheckRegistrationToken(ctx(t), "dyn", [][]byte{hashOf(fmt.Sprintf("n%02d", winner))}))
	wantErr(t, s.CheckRegistrationToken(ctx(t), "dyn", [][]byte{hashOf("r1")}), storage.ErrNotFound)
}

func testRegistrationTokenGoesWithClient(t *testing.T, s storage.Store) {
	createClient(t, s, "dyn")
	must(t, s.CreateRegistrationToken(ctx(t), "dyn", hashOf("r1"), now()))
	must(t, s.DeleteClient(ctx(t), "dyn"))
	wantErr(t, s.CheckRegistrationToken(ctx(t), "dyn", [][]byte{hashOf("r1")}), storage.ErrNotFound)
	// A new client of the same id starts without a token.
	createClient(t, s, "dyn")
	wantErr(t, s.CheckRegistrationToken(ctx(t), "dyn", [][]byte{hashOf("r1")}), storage.ErrNotFound)
	must(t, s.CreateRegistrationToken(ctx(t), "dyn", hashOf("r2"), now()))
}

// testInitialTokenJanitor: tokens that expired or were revoked before the
// cutoff go, in batches smaller than their number; live tokens, used-up
// live ones and those that ended after the cutoff stay, and so do the
// clients registered with a removed token.
func testInitialTokenJanitor(t *testing.T, s storage.Store) {
	t0 := now()
	cutoff := t0.Add(-time.Hour)
	cases := []struct {
		id      string
		expires time.Duration
		revoked *time.Duration
		usedUp  bool
		removed bool
	}{
		{id: "live", expires: time.Hour},
		{id: "used-up", expires: time.Hour, usedUp: true},
		{id: "expired-long-ago", expires: -3 * time.Hour, removed: true},
		{id: "expired-just-before", expires: -time.Hour - time.Second, removed: true},
		{id: "expired-recently", expires: -time.Minute},
		{id: "revoked-long-ago", expires: time.Hour, revoked: new(-2 * time.Hour), removed: true},
		{id: "revoked-recently", expires: time.Hour, revoked: new(-time.Minute)},
		{id: "revoked-after-expiry", expires: -2 * time.Hour, revoked: new(-time.Minute), removed: true},
	}
	for _, tc := range cases {
		tok := newInitialToken(tc.id, 2, t0.Add(tc.expires))
		if tc.revoked != nil {
			at := t0.Add(*tc.revoked)
			tok.RevokedAt = &at
		}
		if tc.usedUp {
			tok.Registered = tok.MaxClients
		}
		must(t, s.CreateInitialAccessToken(ctx(t), tok, hashOf(tc.id)))
	}
	c := newClient("registered-with-gone")
	c.RegisteredVia = "expired-long-ago"
	must(t, s.CreateClient(ctx(t), c))

	n, err := s.DeleteEndedInitialAccessTokens(ctx(t), cutoff, 2)
	must(t, err)
	if n != 4 {
		t.Fatalf("removed %d tokens, want 4", n)
	}
	n, err = s.DeleteEndedInitialAccessTokens(ctx(t), cutoff, 2)
	must(t, err)
	if n != 0 {
		t.Fatalf("a second round removed %d tokens", n)
	}
	for _, tc := range cases {
		_, err := s.InitialAccessTokenByID(ctx(t), tc.id)
		if tc.removed {
			wantErr(t, err, storage.ErrNotFound)
		} else if err != nil {
			t.Fatalf("%s: %v, want it kept", tc.id, err)
		}
	}
	got, err := s.ClientByID(ctx(t), c.ID)
	must(t, err)
	if got.RegisteredVia != "expired-long-ago" {
		t.Fatalf("registered_via = %q", got.RegisteredVia)
	}
}
