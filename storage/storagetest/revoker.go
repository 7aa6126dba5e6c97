package storagetest

import (
	"testing"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// revokerTests: tokens of two clients and two subjects; each case revokes a
// slice of them and checks exactly that slice went.
var revokerTests = func() []test {
	type token struct {
		sig, client, subject string
		refresh              bool
	}
	tokens := []token{
		{"at-a-alice", "a", "alice", false},
		{"rt-a-alice", "a", "alice", true},
		{"at-a-bob", "a", "bob", false},
		{"rt-a-bob", "a", "bob", true},
		{"at-b-alice", "b", "alice", false},
		{"rt-b-alice", "b", "alice", true},
	}
	cases := []struct {
		name      string
		revoke    func(t *testing.T, s storage.Store) (int64, error)
		want      int64
		client    string // "" matches any
		subject   string // "" matches any
		prerevoke string // refresh token made inactive beforehand (not counted)
	}{
		{"case=by-client", func(t *testing.T, s storage.Store) (int64, error) {
			return s.RevokeTokensByClient(ctx(t), "a")
		}, 4, "a", "", ""},
		{"case=by-subject", func(t *testing.T, s storage.Store) (int64, error) {
			return s.RevokeTokensBySubject(ctx(t), "alice")
		}, 4, "", "alice", ""},
		{"case=by-subject-and-client", func(t *testing.T, s storage.Store) (int64, error) {
			return s.RevokeTokensBySubjectAndClient(ctx(t), "alice", "a")
		}, 2, "a", "alice", ""},
		{"case=already-inactive-not-counted", func(t *testing.T, s storage.Store) (int64, error) {
			return s.RevokeTokensBySubject(ctx(t), "alice")
		}, 2, "", "alice", "rt-a-alice"}, // rotation already removed at-a-alice
		{"case=nothing-matches", func(t *testing.T, s storage.Store) (int64, error) {
			return s.RevokeTokensByClient(ctx(t), "unknown")
		}, 0, "none", "none", ""},
	}
	var out []test
	for _, tc := range cases {
		out = append(out, test{"revoker/" + tc.name, func(t *testing.T, s storage.Store) {
			clients := map[string]*storage.Client{"a": createClient(t, s, "a"), "b": createClient(t, s, "b")}
			for i, tok := range tokens {
				r := newRequest("req-"+tok.sig[3:], clients[tok.client], tok.subject)
				if tok.refresh {
					must(t, s.CreateRefreshTokenSession(ctx(t), tok.sig, tokens[i-1].sig, r))
				} else {
					must(t, s.CreateAccessTokenSession(ctx(t), tok.sig, r))
				}
			}
			if tc.prerevoke != "" {
				must(t, s.RotateRefreshToken(ctx(t), "req-"+tc.prerevoke[3:], tc.prerevoke))
			}
			n, err := tc.revoke(t, s)
			must(t, err)
			if n != tc.want {
				t.Fatalf("revoked count: want %d, got %d", tc.want, n)
			}
			for _, tok := range tokens {
				hit := (tc.client == "" || tc.client == tok.client) && (tc.subject == "" || tc.subject == tok.subject)
				var err error
				if tok.refresh {
					_, err = s.GetRefreshTokenSession(ctx(t), tok.sig, nil)
				} else {
					_, err = s.GetAccessTokenSession(ctx(t), tok.sig, nil)
				}
				switch {
				case hit && tok.refresh:
					wantErr(t, err, fosite.ErrInactiveToken)
				case hit:
					wantErr(t, err, fosite.ErrNotFound)
				default:
					if err != nil {
						t.Fatalf("token %s of another client/subject affected: %v", tok.sig, err)
					}
				}
			}
		}})
	}
	return out
}()
