package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// flowTests: storage.FlowStore gathers what the authorization and token
// endpoints read and write, and changes none of the semantics of the
// separate calls it replaces.
var flowTests = []test{
	{"flows/resume-login", testResumeLogin},
	{"flows/resume-login-last-seen", testResumeLoginLastSeen},
	{"flows/authorize-sessions", testAuthorizeSessions},
	{"flows/authorize-sessions-refused-write-nothing", testAuthorizeSessionsRefused},
	{"flows/authorize-sessions-race-logout", testAuthorizeSessionsRaceLogout},
	{"flows/authorize-sessions-race-disable", testAuthorizeSessionsRaceDisable},
	{"flows/read-grant-code", testReadGrantCode},
	{"flows/read-grant-refresh", testReadGrantRefresh},
	{"flows/read-grant-owner", testReadGrantOwner},
	{"flows/read-grant-then-code-race", testReadGrantCodeRace},
	{"flows/read-grant-then-rotation-race", testReadGrantRotationRace},
	{"flows/read-grant-with-the-code-consumes-oidc-with-it", testReadGrantOIDC},
	{"flows/read-grant-with-the-code-race", testReadGrantOIDCRace},
}

func testResumeLogin(t *testing.T, s storage.Store) {
	at := now()
	_, err := s.ResumeLogin(ctx(t), "public", "nope", "app", at)
	wantErr(t, err, storage.ErrNotFound)

	u := newUser("u-alice", "alice")
	must(t, s.CreateUser(ctx(t), u))
	createLogin(t, s, "old", u.ID, "sid-old", -time.Minute)
	_, err = s.ResumeLogin(ctx(t), "public", "old", "app", at)
	wantErr(t, err, storage.ErrNotFound)
	createLogin(t, s, "k1", u.ID, "sid-1", time.Hour)
	_, err = s.ResumeLogin(ctx(t), "console", "k1", "app", at)
	wantErr(t, err, storage.ErrNotFound)

	got, err := s.ResumeLogin(ctx(t), "public", "k1", "app", at)
	must(t, err)
	want, err := s.GetLoginSession(ctx(t), "k1")
	must(t, err)
	wantEqual(t, "login session", want, got.Session)
	wantEqual(t, "user", u, got.User)
	if got.Consent != nil {
		t.Fatalf("consent without one: %+v", got.Consent)
	}

	// The consent to this client, unexpired; not another client's.
	con := &storage.Consent{Subject: u.ID, ClientID: "app", Scopes: []string{"openid", "profile"}, GrantedAt: at}
	must(t, s.SaveConsent(ctx(t), con))
	must(t, s.SaveConsent(ctx(t), &storage.Consent{Subject: u.ID, ClientID: "other", Scopes: []string{"email"}, GrantedAt: at}))
	got, err = s.ResumeLogin(ctx(t), "public", "k1", "app", at)
	must(t, err)
	wantEqual(t, "consent", con, got.Consent)
	must(t, s.SaveConsent(ctx(t), &storage.Consent{Subject: u.ID, ClientID: "app", Scopes: []string{"openid"}, GrantedAt: at, ExpiresAt: at.Add(-time.Second)}))
	got, err = s.ResumeLogin(ctx(t), "public", "k1", "app", at)
	must(t, err)
	if got.Consent != nil {
		t.Fatalf("expired consent returned: %+v", got.Consent)
	}

	// A disabled user is returned (the caller decides); a deleted one is not.
	u.Disabled = true
	must(t, s.UpdateUser(ctx(t), u, u.Version))
	got, err = s.ResumeLogin(ctx(t), "public", "k1", "app", at)
	must(t, err)
	if !got.User.Disabled {
		t.Fatal("disabled user returned as enabled")
	}
	must(t, s.CreateUser(ctx(t), newUser("u-bob", "bob")))
	createLogin(t, s, "k2", "u-bob", "sid-2", time.Hour)
	must(t, s.DeleteUser(ctx(t), "u-bob"))
	must(t, s.CreateLoginSession(ctx(t), &storage.LoginSession{Key: "k3", Kind: "public", Subject: "u-gone", AuthTime: at, LastSeen: at, ExpiresAt: at.Add(time.Hour)}))
	_, err = s.ResumeLogin(ctx(t), "public", "k3", "app", at)
	wantErr(t, err, storage.ErrNotFound)
}

func testResumeLoginLastSeen(t *testing.T, s storage.Store) {
	must(t, s.CreateUser(ctx(t), newUser("u-alice", "alice")))
	createLogin(t, s, "k1", "u-alice", "sid-1", time.Hour)
	before, err := s.GetLoginSession(ctx(t), "k1")
	must(t, err)
	// Within the granularity LastSeen may stay; what is returned is what
	// is stored.
	got, err := s.ResumeLogin(ctx(t), "public", "k1", "app", before.LastSeen.Add(storage.LastSeenGranularity/2))
	must(t, err)
	stored, err := s.GetLoginSession(ctx(t), "k1")
	must(t, err)
	wantEqual(t, "returned LastSeen", stored.LastSeen, got.Session.LastSeen)
	// Beyond it, LastSeen is at.
	at := before.LastSeen.Add(2 * storage.LastSeenGranularity)
	got, err = s.ResumeLogin(ctx(t), "public", "k1", "app", at)
	must(t, err)
	stored, err = s.GetLoginSession(ctx(t), "k1")
	must(t, err)
	wantEqual(t, "stored LastSeen", at, stored.LastSeen)
	wantEqual(t, "returned LastSeen", at, got.Session.LastSeen)
}

// authorizeSessions is what fosite's authorization response produces for
// request r: the code, its PKCE request and its OpenID Connect request.
func authorizeSessions(r *fosite.Request, code, join string) *storage.AuthorizeSessions {
	return &storage.AuthorizeSessions{
		CodeSignature: code + "-sig", Code: r, PKCE: r, OIDCCode: code, OIDC: r, JoinLogin: join,
	}
}

func testAuthorizeSessions(t *testing.T, s storage.Store) {
	createRP(t, s, "app", true)
	c, err := s.ClientByID(ctx(t), "app")
	must(t, err)
	createLogin(t, s, "k1", "alice", "sid-1", time.Hour)
	r := newRequest("req-1", c, "alice")
	must(t, s.CreateAuthorizeSessions(ctx(t), authorizeSessions(r, "code-1", "k1")))
	got, err := s.GetAuthorizeCodeSession(ctx(t), "code-1-sig", nil)
	must(t, err)
	checkRequest(t, r, got)
	got, err = s.GetPKCERequestSession(ctx(t), "code-1-sig", nil)
	must(t, err)
	checkRequest(t, r, got)
	got, err = s.GetOpenIDConnectSession(ctx(t), "code-1", nil)
	must(t, err)
	checkRequest(t, r, got)
	// The client joined the login session: its logout reaches it.
	n, err := s.QueueLogouts(ctx(t), storage.LogoutMatch{SID: "sid-1"})
	must(t, err)
	wantEqual(t, "queued logouts", int64(1), n)

	// The single-use rules hold for rows written together.
	must(t, s.InvalidateAuthorizeCodeSession(ctx(t), "code-1-sig"))
	wantErr(t, s.InvalidateAuthorizeCodeSession(ctx(t), "code-1-sig"), fosite.ErrInvalidatedAuthorizeCode)
	_, err = s.GetPKCERequestSession(ctx(t), "code-1-sig", nil)
	wantErr(t, err, fosite.ErrNotFound)

	// Without PKCE, OpenID Connect or a login to join: the code alone.
	must(t, s.CreateAuthorizeSessions(ctx(t), &storage.AuthorizeSessions{CodeSignature: "code-2-sig", Code: r, OIDCCode: "code-2"}))
	_, err = s.GetAuthorizeCodeSession(ctx(t), "code-2-sig", nil)
	must(t, err)
	_, err = s.GetPKCERequestSession(ctx(t), "code-2-sig", nil)
	wantErr(t, err, fosite.ErrNotFound)
	_, err = s.GetOpenIDConnectSession(ctx(t), "code-2", nil)
	wantErr(t, err, fosite.ErrNotFound)
}

func testAuthorizeSessionsRefused(t *testing.T, s storage.Store) {
	createRP(t, s, "app", true)
	c, err := s.ClientByID(ctx(t), "app")
	must(t, err)
	createLogin(t, s, "k1", "alice", "sid-1", time.Hour)
	createLogin(t, s, "no-sid", "alice", "", time.Hour)
	createLogin(t, s, "old", "alice", "sid-old", -time.Minute)
	r := newRequest("req-1", c, "alice")
	writtenNothing := func(code string) {
		t.Helper()
		for _, get := range []func() error{
			func() error { _, err := s.GetAuthorizeCodeSession(ctx(t), code+"-sig", nil); return err },
			func() error { _, err := s.GetPKCERequestSession(ctx(t), code+"-sig", nil); return err },
			func() error { _, err := s.GetOpenIDConnectSession(ctx(t), code, nil); return err },
		} {
			wantErr(t, get(), fosite.ErrNotFound)
		}
	}
	for _, login := range []string{"gone", "no-sid", "old"} {
		err := s.CreateAuthorizeSessions(ctx(t), authorizeSessions(r, "code-"+login, login))
		wantErr(t, err, storage.ErrNotFound)
		writtenNothing("code-" + login)
	}
	disableClient(t, s, "app")
	err = s.CreateAuthorizeSessions(ctx(t), authorizeSessions(r, "code-disabled", "k1"))
	wantErr(t, err, fosite.ErrInvalidClient)
	writtenNothing("code-disabled")
	// Neither refusal joined the login session.
	n, err := s.QueueLogouts(ctx(t), storage.LogoutMatch{Subject: "alice"})
	must(t, err)
	wantEqual(t, "queued logouts", int64(0), n)
}

func testAuthorizeSessionsRaceLogout(t *testing.T, s storage.Store) {
	// Codes issued while their login session is logged out: every code
	// that was written has its client queued for the logout; the others
	// wrote nothing.
	const clients = 10
	for i := range clients {
		createRP(t, s, fmt.Sprintf("c%d", i), true)
	}
	createLogin(t, s, "k1", "alice", "sid-1", time.Hour)
	res := Together(clients+1, func(i int) error {
		if i < clients {
			c, err := s.ClientByID(ctx(t), fmt.Sprintf("c%d", i))
			if err != nil {
				return err
			}
			return s.CreateAuthorizeSessions(ctx(t), authorizeSessions(newRequest(fmt.Sprintf("req-%d", i), c, "alice"), fmt.Sprintf("code-%d", i), "k1"))
		}
		return endLoginSession(t, s, "k1", "sid-1")
	})
	must(t, res[clients])
	var joined []string
	for i, err := range res[:clients] {
		_, getErr := s.GetAuthorizeCodeSession(ctx(t), fmt.Sprintf("code-%d-sig", i), nil)
		switch {
		case err == nil:
			must(t, getErr)
			joined = append(joined, fmt.Sprintf("c%d alice sid-1 ", i))
		case errors.Is(err, storage.ErrNotFound):
			wantErr(t, getErr, fosite.ErrNotFound)
		default:
			t.Fatalf("authorize %d: %v", i, err)
		}
	}
	slices.Sort(joined)
	wantEqual(t, "queued = written", joined, describe(claimAll(t, s)))
}

func testAuthorizeSessionsRaceDisable(t *testing.T, s storage.Store) {
	// Codes issued while their client is disabled and its tokens revoked:
	// each was written before (and is invalidated by the containment) or
	// refused.
	const n = 10
	c := createClient(t, s, "app")
	res := Together(n+1, func(i int) error {
		if i == n {
			return disableAndRevoke(t, s, "app")
		}
		return s.CreateAuthorizeSessions(ctx(t), authorizeSessions(newRequest(fmt.Sprintf("req-%d", i), c, "alice"), fmt.Sprintf("code-%d", i), ""))
	})
	must(t, res[n])
	for i, err := range res[:n] {
		switch {
		case err == nil:
			wantErr(t, s.InvalidateAuthorizeCodeSession(ctx(t), fmt.Sprintf("code-%d-sig", i)), fosite.ErrInvalidatedAuthorizeCode)
		case errors.Is(err, fosite.ErrInvalidClient):
			_, err := s.GetAuthorizeCodeSession(ctx(t), fmt.Sprintf("code-%d-sig", i), nil)
			wantErr(t, err, fosite.ErrNotFound)
		default:
			t.Fatalf("authorize %d: %v", i, err)
		}
	}
}

func testReadGrantCode(t *testing.T, s storage.Store) {
	c := createClient(t, s, "app")
	must(t, s.CreateUser(ctx(t), newUser("alice", "alice")))
	r := newRequest("req-1", c, "alice")
	must(t, s.CreateAuthorizeCodeSession(ctx(t), "sig", r))
	must(t, s.CreatePKCERequestSession(ctx(t), "sig", r))
	must(t, s.CreateAuthorizeCodeSession(ctx(t), "bare", r))

	gctx, owner, err := s.ReadGrant(ctx(t), storage.GrantCode, "sig", "")
	must(t, err)
	wantEqual(t, "owner", storage.GrantOwner{Subject: "alice", Active: true}, owner)
	for range 2 { // fosite reads the code twice
		got, err := s.GetAuthorizeCodeSession(gctx, "sig", storage.NewSession(""))
		must(t, err)
		checkRequest(t, r, got)
	}
	got, err := s.GetPKCERequestSession(gctx, "sig", nil)
	must(t, err)
	checkRequest(t, r, got)
	// Other rows are read as usual.
	got, err = s.GetAuthorizeCodeSession(gctx, "bare", nil)
	must(t, err)
	checkRequest(t, r, got)
	gctx, _, err = s.ReadGrant(ctx(t), storage.GrantCode, "bare", "")
	must(t, err)
	_, err = s.GetPKCERequestSession(gctx, "bare", nil)
	wantErr(t, err, fosite.ErrNotFound)

	// The consumption still decides, whatever was read before it.
	gctx, _, err = s.ReadGrant(ctx(t), storage.GrantCode, "sig", "")
	must(t, err)
	must(t, s.InvalidateAuthorizeCodeSession(ctx(t), "sig"))
	wantErr(t, s.InvalidateAuthorizeCodeSession(gctx, "sig"), fosite.ErrInvalidatedAuthorizeCode)
	// Read after the consumption: the requester with the sentinel.
	gctx, _, err = s.ReadGrant(ctx(t), storage.GrantCode, "sig", "")
	must(t, err)
	got, err = s.GetAuthorizeCodeSession(gctx, "sig", nil)
	wantErr(t, err, fosite.ErrInvalidatedAuthorizeCode)
	checkRequest(t, r, got)
	_, err = s.GetPKCERequestSession(gctx, "sig", nil)
	wantErr(t, err, fosite.ErrNotFound)

	// Unknown codes, and codes whose client is gone, are not found.
	gctx, owner, err = s.ReadGrant(ctx(t), storage.GrantCode, "nope", "")
	must(t, err)
	wantEqual(t, "owner of nothing", storage.GrantOwner{}, owner)
	_, err = s.GetAuthorizeCodeSession(gctx, "nope", nil)
	wantErr(t, err, fosite.ErrNotFound)
	must(t, s.DeleteClient(ctx(t), "app"))
	must(t, s.CreateClient(ctx(t), newClient("other")))
	other, err := s.ClientByID(ctx(t), "other")
	must(t, err)
	must(t, s.CreateAuthorizeCodeSession(ctx(t), "orphan", newRequest("req-2", other, "alice")))
	must(t, s.DeleteClient(ctx(t), "other"))
	gctx, _, err = s.ReadGrant(ctx(t), storage.GrantCode, "orphan", "")
	must(t, err)
	_, err = s.GetAuthorizeCodeSession(gctx, "orphan", nil)
	wantErr(t, err, fosite.ErrNotFound)
}

func testReadGrantRefresh(t *testing.T, s storage.Store) {
	c := createClient(t, s, "app")
	must(t, s.CreateUser(ctx(t), newUser("alice", "alice")))
	r := newRequest("req-1", c, "alice")
	must(t, s.CreateRefreshTokenSession(ctx(t), "rt", "at", r))
	gctx, owner, err := s.ReadGrant(ctx(t), storage.GrantRefresh, "rt", "")
	must(t, err)
	wantEqual(t, "owner", storage.GrantOwner{Subject: "alice", Active: true}, owner)
	got, err := s.GetRefreshTokenSession(gctx, "rt", nil)
	must(t, err)
	checkRequest(t, r, got)
	// A refresh token is not a code.
	_, err = s.GetAuthorizeCodeSession(gctx, "rt", nil)
	wantErr(t, err, fosite.ErrNotFound)
	gctx2, _, err := s.ReadGrant(ctx(t), storage.GrantCode, "rt", "")
	must(t, err)
	_, err = s.GetRefreshTokenSession(gctx2, "rt", nil)
	must(t, err)

	// The rotation still decides; a read after it sees the reuse.
	must(t, s.RotateRefreshToken(ctx(t), "req-1", "rt"))
	wantErr(t, s.RotateRefreshToken(gctx, "req-1", "rt"), fosite.ErrSerializationFailure)
	gctx, _, err = s.ReadGrant(ctx(t), storage.GrantRefresh, "rt", "")
	must(t, err)
	got, err = s.GetRefreshTokenSession(gctx, "rt", nil)
	wantErr(t, err, fosite.ErrInactiveToken)
	checkRequest(t, r, got)
}

func testReadGrantOwner(t *testing.T, s storage.Store) {
	c := createClient(t, s, "app")
	alice := newUser("alice", "alice")
	must(t, s.CreateUser(ctx(t), alice))
	must(t, s.CreateRefreshTokenSession(ctx(t), "rt-alice", "at", newRequest("req-1", c, "alice")))
	must(t, s.CreateRefreshTokenSession(ctx(t), "rt-ghost", "at", newRequest("req-2", c, "ghost")))
	alice.Disabled = true
	must(t, s.UpdateUser(ctx(t), alice, alice.Version))
	for sig, want := range map[string]storage.GrantOwner{
		"rt-alice": {Subject: "alice"},
		"rt-ghost": {Subject: "ghost"},
	} {
		_, owner, err := s.ReadGrant(ctx(t), storage.GrantRefresh, sig, "")
		must(t, err)
		wantEqual(t, "owner of "+sig, want, owner)
	}
}

func testReadGrantCodeRace(t *testing.T, s storage.Store) {
	// fosite's code exchange after a read-ahead: exactly one transaction
	// commits tokens.
	c := createClient(t, s, "app")
	r := newRequest("req-1", c, "alice")
	must(t, s.CreateAuthorizeCodeSession(ctx(t), "code", r))
	must(t, s.CreatePKCERequestSession(ctx(t), "code", r))
	res := Together(racers, func(i int) error {
		gctx, _, err := s.ReadGrant(ctx(t), storage.GrantCode, "code", "")
		if err != nil {
			return err
		}
		return exchangeAfterRead(gctx, s, c, "code", fmt.Sprintf("at-%d", i))
	})
	winner := oneExchangeWinner(t, res)
	for i := range racers {
		_, err := s.GetAccessTokenSession(ctx(t), fmt.Sprintf("at-%d", i), nil)
		if i == winner {
			must(t, err)
		} else {
			wantErr(t, err, fosite.ErrNotFound)
		}
	}
}

// oneExchangeWinner checks that exactly one exchange won and returns it.
// A loser finds the code used, or (reading it without a read-ahead, after
// the winner committed) its PKCE row gone; fosite refuses either.
func oneExchangeWinner(t *testing.T, res []error) int {
	t.Helper()
	return oneWinner(t, res, fosite.ErrInvalidatedAuthorizeCode, fosite.ErrNotFound)
}

// exchangeAfterRead is the code exchange fosite runs: the code (twice)
// and its PKCE row read, then one transaction consuming the code and
// storing the access token.
func exchangeAfterRead(gctx context.Context, s storage.Store, c *storage.Client, code, at string) error {
	for range 2 {
		if _, err := s.GetAuthorizeCodeSession(gctx, code, nil); err != nil {
			return err
		}
	}
	if _, err := s.GetPKCERequestSession(gctx, code, nil); err != nil {
		return err
	}
	tctx, err := s.BeginTX(gctx)
	if err != nil {
		return err
	}
	if err := s.InvalidateAuthorizeCodeSession(tctx, code); err != nil {
		_ = s.Rollback(tctx)
		return err
	}
	if err := s.CreateAccessTokenSession(tctx, at, newRequest("req-1", c, "alice")); err != nil {
		_ = s.Rollback(tctx)
		return err
	}
	return s.Commit(tctx)
}

func testReadGrantRotationRace(t *testing.T, s storage.Store) {
	c := createClient(t, s, "app")
	must(t, s.CreateRefreshTokenSession(ctx(t), "rt", "at", newRequest("req-1", c, "alice")))
	res := Together(racers, func(i int) error {
		gctx, _, err := s.ReadGrant(ctx(t), storage.GrantRefresh, "rt", "")
		if err != nil {
			return err
		}
		if _, err := s.GetRefreshTokenSession(gctx, "rt", nil); err != nil {
			return err
		}
		tctx, err := s.BeginTX(gctx)
		if err != nil {
			return err
		}
		if err := s.RotateRefreshToken(tctx, "req-1", "rt"); err != nil {
			_ = s.Rollback(tctx)
			return err
		}
		if err := s.CreateRefreshTokenSession(tctx, fmt.Sprintf("rt-%d", i), "", newRequest("req-1", c, "alice")); err != nil {
			_ = s.Rollback(tctx)
			return err
		}
		return s.Commit(tctx)
	})
	// Losers either read the token inactive already or lost the rotation.
	won := 0
	for i, err := range res {
		switch {
		case err == nil:
			won++
			_, err := s.GetRefreshTokenSession(ctx(t), fmt.Sprintf("rt-%d", i), nil)
			must(t, err)
		case errors.Is(err, fosite.ErrSerializationFailure), errors.Is(err, fosite.ErrInactiveToken):
			_, err := s.GetRefreshTokenSession(ctx(t), fmt.Sprintf("rt-%d", i), nil)
			wantErr(t, err, fosite.ErrNotFound)
		default:
			t.Fatalf("rotation %d: %v", i, err)
		}
	}
	wantEqual(t, "rotations that won", 1, won)
}

// testReadGrantOIDC: given the raw code, ReadGrant lets the code's
// consumption take its OpenID Connect request along; the exchange then
// gets the request exactly once, only after its transaction committed,
// and a rolled-back exchange leaves both.
func testReadGrantOIDC(t *testing.T, s storage.Store) {
	c := createClient(t, s, "app")
	r := newRequest("req-1", c, "alice")
	write := func(code string) {
		must(t, s.CreateAuthorizeSessions(ctx(t), &storage.AuthorizeSessions{CodeSignature: code + "-sig", Code: r, PKCE: r, OIDCCode: code, OIDC: r}))
	}
	exchange := func(code string, commit bool) context.Context {
		t.Helper()
		gctx, _, err := s.ReadGrant(ctx(t), storage.GrantCode, code+"-sig", code)
		must(t, err)
		tctx, err := s.BeginTX(gctx)
		must(t, err)
		must(t, s.InvalidateAuthorizeCodeSession(tctx, code+"-sig"))
		must(t, s.CreateAccessTokenSession(tctx, "at-"+code, r))
		if !commit {
			must(t, s.Rollback(tctx))
			return gctx
		}
		must(t, s.Commit(tctx))
		return gctx
	}

	write("code-1")
	gctx := exchange("code-1", true)
	got, err := s.GetOpenIDConnectSession(gctx, "code-1", nil)
	must(t, err)
	checkRequest(t, r, got)
	for _, c := range []context.Context{gctx, ctx(t)} {
		_, err := s.GetOpenIDConnectSession(c, "code-1", nil)
		wantErr(t, err, fosite.ErrNotFound)
	}

	// Rolled back: code, PKCE and OpenID Connect request all stay.
	write("code-2")
	gctx = exchange("code-2", false)
	_, err = s.GetPKCERequestSession(ctx(t), "code-2-sig", nil)
	must(t, err)
	got, err = s.GetOpenIDConnectSession(gctx, "code-2", nil)
	must(t, err)
	checkRequest(t, r, got)
	must(t, s.InvalidateAuthorizeCodeSession(ctx(t), "code-2-sig"))

	// A code without an OpenID Connect request: none is handed out.
	must(t, s.CreateAuthorizeSessions(ctx(t), &storage.AuthorizeSessions{CodeSignature: "code-3-sig", Code: r, OIDCCode: "code-3"}))
	gctx = exchange("code-3", true)
	_, err = s.GetOpenIDConnectSession(gctx, "code-3", nil)
	wantErr(t, err, fosite.ErrNotFound)
}

// testReadGrantOIDCRace: exchanges of one code racing after reading it
// with the raw code: one wins, and only it gets the OpenID Connect
// request.
func testReadGrantOIDCRace(t *testing.T, s storage.Store) {
	c := createClient(t, s, "app")
	r := newRequest("req-1", c, "alice")
	must(t, s.CreateAuthorizeSessions(ctx(t), &storage.AuthorizeSessions{CodeSignature: "code-sig", Code: r, PKCE: r, OIDCCode: "code", OIDC: r}))
	type result struct {
		err  error
		oidc error
	}
	res := Together(racers, func(i int) result {
		gctx, _, err := s.ReadGrant(ctx(t), storage.GrantCode, "code-sig", "code")
		if err != nil {
			return result{err: err}
		}
		if err := exchangeAfterRead(gctx, s, c, "code-sig", fmt.Sprintf("at-%d", i)); err != nil {
			return result{err: err}
		}
		_, err = s.GetOpenIDConnectSession(gctx, "code", nil)
		return result{oidc: err}
	})
	errs := make([]error, len(res))
	for i, r := range res {
		errs[i] = r.err
	}
	winner := oneExchangeWinner(t, errs)
	must(t, res[winner].oidc)
	_, err := s.GetOpenIDConnectSession(ctx(t), "code", nil)
	wantErr(t, err, fosite.ErrNotFound)
}
