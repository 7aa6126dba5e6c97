package storagetest

import (
	"testing"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// revokerTests: access tokens, refresh tokens and authorization codes of two
// clients and two subjects, plus a client credentials token without a
// subject; each case revokes a slice of them and checks exactly that slice
// went.
var revokerTests = func() []test {
	const (
		access  = "access"
		refresh = "refresh"
		code    = "code"
	)
	type token struct {
		sig, client, subject, kind string
	}
	tokens := []token{
		{"at-a-alice", "a", "alice", access},
		{"rt-a-alice", "a", "alice", refresh},
		{"code-a-alice", "a", "alice", code},
		{"at-a-bob", "a", "bob", access},
		{"rt-a-bob", "a", "bob", refresh},
		{"code-a-bob", "a", "bob", code},
		{"at-b-alice", "b", "alice", access},
		{"rt-b-alice", "b", "alice", refresh},
		{"code-b-alice", "b", "alice", code},
		{"at-a-cc", "a", "", access}, // client credentials: no subject
	}
	// Tokens of one client and subject share a request id, as one grant's do.
	requestID := func(tok token) string { return "req-" + tok.client + "-" + tok.subject }
	cases := []struct {
		name   string
		revoke func(t *testing.T, s storage.Store) (int64, error)
		// want counts access tokens deleted and refresh tokens deactivated;
		// invalidated codes are not counted.
		want      int64
		client    string // "" matches any
		subject   string // "" matches any
		prerevoke string // refresh token rotated beforehand (not counted)
	}{
		{"case=by-client", func(t *testing.T, s storage.Store) (int64, error) {
			return s.RevokeTokensByClient(ctx(t), "a")
		}, 5, "a", "", ""},
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
		// An empty subject must not match every client credentials token.
		{"case=empty-subject-matches-nothing", func(t *testing.T, s storage.Store) (int64, error) {
			return s.RevokeTokensBySubject(ctx(t), "")
		}, 0, "none", "none", ""},
		{"case=empty-subject-and-client-matches-nothing", func(t *testing.T, s storage.Store) (int64, error) {
			return s.RevokeTokensBySubjectAndClient(ctx(t), "", "a")
		}, 0, "none", "none", ""},
	}
	var out []test
	for _, tc := range cases {
		out = append(out, test{"revoker/" + tc.name, func(t *testing.T, s storage.Store) {
			clients := map[string]*storage.Client{"a": createClient(t, s, "a"), "b": createClient(t, s, "b")}
			for _, tok := range tokens {
				r := newRequest(requestID(tok), clients[tok.client], tok.subject)
				switch tok.kind {
				case access:
					must(t, s.CreateAccessTokenSession(ctx(t), tok.sig, r))
				case refresh:
					must(t, s.CreateRefreshTokenSession(ctx(t), tok.sig, "at"+tok.sig[2:], r))
				case code:
					must(t, s.CreateAuthorizeCodeSession(ctx(t), tok.sig, r))
				}
			}
			if tc.prerevoke != "" {
				must(t, s.RotateRefreshToken(ctx(t), "req"+tc.prerevoke[2:], tc.prerevoke))
			}
			n, err := tc.revoke(t, s)
			must(t, err)
			if n != tc.want {
				t.Fatalf("revoked count: want %d, got %d", tc.want, n)
			}
			for _, tok := range tokens {
				hit := (tc.client == "" || tc.client == tok.client) && (tc.subject == "" || tc.subject == tok.subject)
				var (
					got fosite.Requester
					err error
				)
				switch tok.kind {
				case access:
					got, err = s.GetAccessTokenSession(ctx(t), tok.sig, nil)
				case refresh:
					got, err = s.GetRefreshTokenSession(ctx(t), tok.sig, nil)
				case code:
					got, err = s.GetAuthorizeCodeSession(ctx(t), tok.sig, nil)
				}
				switch {
				case hit && tok.kind == refresh:
					wantErr(t, err, fosite.ErrInactiveToken)
				case hit && tok.kind == code:
					// A code still in flight must not mint tokens after
					// containment; fosite needs the requester to revoke
					// what the code produced.
					wantErr(t, err, fosite.ErrInvalidatedAuthorizeCode)
					if got == nil || got.GetID() != requestID(tok) {
						t.Fatalf("invalidated code %s: want its requester %q, got %v", tok.sig, requestID(tok), got)
					}
				case hit:
					wantErr(t, err, fosite.ErrNotFound)
				default:
					if err != nil {
						t.Fatalf("%s token %s of another client/subject affected: %v", tok.kind, tok.sig, err)
					}
				}
			}
		}})
	}
	return out
}()
