package storagetest

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// racers is how many callers redeem one artifact at once.
const racers = 20

// singleUseTests: every one-time artifact is consumed by one decision, so of
// racers released together (Together) exactly one wins and the others get
// the sentinel fosite turns into a clean refusal.
var singleUseTests = []test{
	{"single-use/code-invalidated-twice", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "app")
		want := newRequest("req-1", c, "alice")
		must(t, s.CreateAuthorizeCodeSession(ctx(t), "code", want))
		must(t, s.InvalidateAuthorizeCodeSession(ctx(t), "code"))
		wantErr(t, s.InvalidateAuthorizeCodeSession(ctx(t), "code"), fosite.ErrInvalidatedAuthorizeCode)
		got, err := s.GetAuthorizeCodeSession(ctx(t), "code", nil)
		wantErr(t, err, fosite.ErrInvalidatedAuthorizeCode)
		checkRequest(t, want, got)
	}},
	{"single-use/code-race", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "app")
		must(t, s.CreateAuthorizeCodeSession(ctx(t), "code", newRequest("req-1", c, "alice")))
		res := Together(racers, func(int) error { return s.InvalidateAuthorizeCodeSession(ctx(t), "code") })
		oneWinner(t, res, fosite.ErrInvalidatedAuthorizeCode)
	}},
	{"single-use/code-race-in-transactions", func(t *testing.T, s storage.Store) {
		// The shape of fosite's code exchange: consume the code and store
		// the tokens in one transaction. Exactly one transaction commits
		// tokens.
		c := createClient(t, s, "app")
		must(t, s.CreateAuthorizeCodeSession(ctx(t), "code", newRequest("req-1", c, "alice")))
		res := Together(racers, func(i int) error {
			tctx, err := s.BeginTX(ctx(t))
			if err != nil {
				return err
			}
			if err := s.InvalidateAuthorizeCodeSession(tctx, "code"); err != nil {
				_ = s.Rollback(tctx)
				return err
			}
			if err := s.CreateAccessTokenSession(tctx, fmt.Sprintf("at-%d", i), newRequest("req-1", c, "alice")); err != nil {
				_ = s.Rollback(tctx)
				return err
			}
			return s.Commit(tctx)
		})
		winner := oneWinner(t, res, fosite.ErrInvalidatedAuthorizeCode)
		for i := range racers {
			_, err := s.GetAccessTokenSession(ctx(t), fmt.Sprintf("at-%d", i), nil)
			if i == winner {
				must(t, err)
			} else {
				wantErr(t, err, fosite.ErrNotFound)
			}
		}
	}},
	{"single-use/pkce-bound-to-code", func(t *testing.T, s storage.Store) {
		// fosite deletes the PKCE row before it compares the verifier; the
		// row must outlive a failed comparison, or a retry without a
		// verifier would pass as "no PKCE was used".
		c := createClient(t, s, "app")
		r := newRequest("req-1", c, "alice")
		must(t, s.CreateAuthorizeCodeSession(ctx(t), "sig", r))
		must(t, s.CreatePKCERequestSession(ctx(t), "sig", r))
		must(t, s.DeletePKCERequestSession(ctx(t), "sig"))
		got, err := s.GetPKCERequestSession(ctx(t), "sig", nil)
		must(t, err)
		if got.GetRequestForm().Get("code_challenge") == "" {
			t.Fatal("the PKCE row lost its challenge")
		}
		// Consuming the code consumes its PKCE row.
		must(t, s.InvalidateAuthorizeCodeSession(ctx(t), "sig"))
		_, err = s.GetPKCERequestSession(ctx(t), "sig", nil)
		wantErr(t, err, fosite.ErrNotFound)
	}},
	{"single-use/openid-session-race", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "app")
		want := newRequest("req-1", c, "alice")
		must(t, s.CreateOpenIDConnectSession(ctx(t), "raw-code", want))
		got := Together(racers, func(int) result {
			r, err := s.GetOpenIDConnectSession(ctx(t), "raw-code", &fosite.Request{Session: storage.NewSession("")})
			return result{r, err}
		})
		checkRequest(t, want, got[oneWinner(t, errorsOf(got), fosite.ErrNotFound)].req)
	}},
	{"single-use/par-race", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "app")
		redirect, _ := url.Parse("https://app.example/cb")
		uri := "urn:ietf:params:oauth:request_uri:race"
		must(t, s.CreatePARSession(ctx(t), uri, &fosite.AuthorizeRequest{
			ResponseTypes: fosite.Arguments{"code"}, RedirectURI: redirect, State: "state-1234567890",
			HandledResponseTypes: fosite.Arguments{}, Request: *newRequest("req-par", c, "alice"),
		}))
		res := Together(racers, func(int) error {
			_, err := s.GetPARSession(ctx(t), uri)
			return err
		})
		oneWinner(t, res, fosite.ErrNotFound)
	}},
	{"single-use/refresh-rotation-race", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "app")
		r := newRequest("req-1", c, "alice")
		must(t, s.CreateAccessTokenSession(ctx(t), "at-1", r))
		must(t, s.CreateRefreshTokenSession(ctx(t), "rt-1", "at-1", r))
		res := Together(racers, func(int) error { return s.RotateRefreshToken(ctx(t), "req-1", "rt-1") })
		oneWinner(t, res, fosite.ErrSerializationFailure)
	}},
	{"single-use/containment-race-with-rotation", func(t *testing.T, s storage.Store) {
		// Rotations of many families of one user race the user's
		// containment: no error other than "a concurrent request won", and
		// afterwards nothing of the user is active.
		c := createClient(t, s, "app")
		const families = 8
		for i := range families {
			r := newRequest(fmt.Sprintf("req-%d", i), c, "alice")
			must(t, s.CreateAccessTokenSession(ctx(t), fmt.Sprintf("at-%d", i), r))
			must(t, s.CreateRefreshTokenSession(ctx(t), fmt.Sprintf("rt-%d", i), fmt.Sprintf("at-%d", i), r))
		}
		res := Together(families+1, func(i int) error {
			if i == families {
				_, err := s.RevokeTokensBySubject(ctx(t), "alice")
				return err
			}
			tctx, err := s.BeginTX(ctx(t))
			if err != nil {
				return err
			}
			req := newRequest(fmt.Sprintf("req-%d", i), c, "alice")
			for _, step := range []func() error{
				func() error { return s.RotateRefreshToken(tctx, req.ID, fmt.Sprintf("rt-%d", i)) },
				func() error { return s.CreateAccessTokenSession(tctx, fmt.Sprintf("at-%d-new", i), req) },
				func() error {
					return s.CreateRefreshTokenSession(tctx, fmt.Sprintf("rt-%d-new", i), fmt.Sprintf("at-%d-new", i), req)
				},
			} {
				if err := step(); err != nil {
					_ = s.Rollback(tctx)
					return err
				}
			}
			return s.Commit(tctx)
		})
		if res[families] != nil {
			t.Fatalf("containment failed: %v", res[families])
		}
		for i, err := range res[:families] {
			if err != nil && !errors.Is(err, fosite.ErrSerializationFailure) {
				t.Fatalf("rotation %d: %v", i, err)
			}
		}
		// A rotation that committed first was revoked by the containment
		// after it; one that came after found its token inactive.
		for i := range families {
			for _, sig := range []string{fmt.Sprintf("rt-%d", i), fmt.Sprintf("rt-%d-new", i)} {
				if _, err := s.GetRefreshTokenSession(ctx(t), sig, nil); err == nil {
					t.Fatalf("refresh token %s survived containment", sig)
				}
			}
			for _, sig := range []string{fmt.Sprintf("at-%d", i), fmt.Sprintf("at-%d-new", i)} {
				_, err := s.GetAccessTokenSession(ctx(t), sig, nil)
				wantErr(t, err, fosite.ErrNotFound)
			}
		}
	}},
}

type result struct {
	req fosite.Requester
	err error
}

func errorsOf(rs []result) []error {
	out := make([]error, len(rs))
	for i, r := range rs {
		out[i] = r.err
	}
	return out
}

// oneWinner checks that exactly one result is nil and every other one is
// one of losers, and returns the winner's index.
func oneWinner(t *testing.T, res []error, losers ...error) int {
	t.Helper()
	winner := -1
	for i, err := range res {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("racers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !slices.ContainsFunc(losers, func(l error) bool { return errors.Is(err, l) }):
			t.Fatalf("racer %d: want one of %v, got %v", i, losers, err)
		}
	}
	if winner < 0 {
		t.Fatal("no racer won")
	}
	return winner
}
