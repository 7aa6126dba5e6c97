package storagetest

import (
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// allTokenTypes are the expiries a session carries; tests set all of them,
// so the suite does not depend on which one a backend reads per table.
var allTokenTypes = []fosite.TokenType{
	fosite.AuthorizeCode, fosite.AccessToken, fosite.RefreshToken, fosite.IDToken,
	fosite.PushedAuthorizeRequestContext,
}

// newSession returns a *storage.Session with claims in every part.
func newSession(subject, clientID string, exp time.Time) *storage.Session {
	s := storage.NewSession(subject)
	s.ClientID = clientID
	s.Username = subject + "@example.com"
	s.Claims.Issuer = "https://bulwark.example"
	s.Claims.Nonce = "n-0S6_WzA2Mj"
	s.Claims.AuthTime = now().Add(-time.Minute)
	s.Claims.Extra["email"] = subject + "@example.com"
	s.AccessClaims.Issuer = "https://bulwark.example"
	s.AccessClaims.Extra["client_id"] = clientID
	s.AccessHeader.Extra["kid"] = "key-1"
	for _, tt := range allTokenTypes {
		s.SetExpiresAt(tt, exp)
	}
	return s
}

// newRequest returns a fosite request for client c and subject, expiring in
// an hour.
func newRequest(id string, c *storage.Client, subject string) *fosite.Request {
	return newRequestExp(id, c, subject, now().Add(time.Hour))
}

func newRequestExp(id string, c *storage.Client, subject string, exp time.Time) *fosite.Request {
	return &fosite.Request{
		ID:                id,
		RequestedAt:       now().Add(-time.Second),
		Client:            c,
		RequestedScope:    fosite.Arguments{"openid", "offline_access", "read"},
		GrantedScope:      fosite.Arguments{"openid", "read"},
		RequestedAudience: fosite.Arguments{"https://api.example"},
		GrantedAudience:   fosite.Arguments{"https://api.example"},
		Form: url.Values{
			"redirect_uri":          {"https://app.example/cb"},
			"code_challenge":        {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
			"code_challenge_method": {"S256"},
			"nonce":                 {"n-0S6_WzA2Mj"},
			"client_secret":         {"s3cret"},
			"code_verifier":         {"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"},
			"refresh_token":         {"old-refresh"},
			"code":                  {"the-code"},
		},
		Session: newSession(subject, c.GetID(), exp),
	}
}

// checkRequest verifies that got is want after a trip through the store.
func checkRequest(t *testing.T, want *fosite.Request, got fosite.Requester) {
	t.Helper()
	if got == nil {
		t.Fatal("requester is nil")
	}
	if got.GetID() != want.ID {
		t.Fatalf("request id: want %q, got %q", want.ID, got.GetID())
	}
	if !got.GetRequestedAt().Equal(want.RequestedAt) {
		t.Fatalf("requested at: want %s, got %s", want.RequestedAt, got.GetRequestedAt())
	}
	c, ok := got.GetClient().(*storage.Client)
	if !ok || c.ID != want.Client.GetID() {
		t.Fatalf("client: want *storage.Client %q, got %#v", want.Client.GetID(), got.GetClient())
	}
	wantEqual(t, "requested scope", want.RequestedScope, got.GetRequestedScopes())
	wantEqual(t, "granted scope", want.GrantedScope, got.GetGrantedScopes())
	wantEqual(t, "requested audience", want.RequestedAudience, got.GetRequestedAudience())
	wantEqual(t, "granted audience", want.GrantedAudience, got.GetGrantedAudience())
	form := got.GetRequestForm()
	for _, k := range []string{"redirect_uri", "code_challenge", "code_challenge_method", "nonce"} {
		if form.Get(k) != want.Form.Get(k) {
			t.Fatalf("form %s: want %q, got %q", k, want.Form.Get(k), form.Get(k))
		}
	}
	for _, k := range []string{"client_secret", "code_verifier", "refresh_token", "code"} {
		if form.Has(k) {
			t.Fatalf("form field %s must not be stored", k)
		}
	}
	ws := want.Session.(*storage.Session)
	gs, ok := got.GetSession().(*storage.Session)
	if !ok {
		t.Fatalf("session: want *storage.Session, got %T", got.GetSession())
	}
	if gs.GetSubject() != ws.GetSubject() || gs.Username != ws.Username || gs.ClientID != ws.ClientID {
		t.Fatalf("session identity: want %q/%q/%q, got %q/%q/%q",
			ws.GetSubject(), ws.Username, ws.ClientID, gs.GetSubject(), gs.Username, gs.ClientID)
	}
	for _, tt := range allTokenTypes {
		if !gs.GetExpiresAt(tt).Equal(ws.GetExpiresAt(tt)) {
			t.Fatalf("session expiry %s: want %s, got %s", tt, ws.GetExpiresAt(tt), gs.GetExpiresAt(tt))
		}
	}
	if gs.Claims.Issuer != ws.Claims.Issuer || gs.Claims.Nonce != ws.Claims.Nonce ||
		!gs.Claims.AuthTime.Equal(ws.Claims.AuthTime) || gs.Claims.Extra["email"] != ws.Claims.Extra["email"] {
		t.Fatalf("id token claims: want %+v, got %+v", ws.Claims, gs.Claims)
	}
	if gs.AccessClaims.Issuer != ws.AccessClaims.Issuer || gs.AccessClaims.Extra["client_id"] != ws.AccessClaims.Extra["client_id"] {
		t.Fatalf("access claims: want %+v, got %+v", ws.AccessClaims, gs.AccessClaims)
	}
	if gs.AccessHeader.Extra["kid"] != "key-1" {
		t.Fatalf("access header: got %+v", gs.AccessHeader.Extra)
	}
}

// sessionStorage abstracts the create/get/delete triple shared by PKCE,
// OpenID Connect and the token tables.
type sessionStorage struct {
	name   string
	create func(s storage.Store, t *testing.T, key string, r fosite.Requester) error
	get    func(s storage.Store, t *testing.T, key string, sess fosite.Session) (fosite.Requester, error)
	delete func(s storage.Store, t *testing.T, key string) error
}

var sessionStorages = []sessionStorage{
	{
		name: "authorize-code",
		create: func(s storage.Store, t *testing.T, k string, r fosite.Requester) error {
			return s.CreateAuthorizeCodeSession(ctx(t), k, r)
		},
		get: func(s storage.Store, t *testing.T, k string, sess fosite.Session) (fosite.Requester, error) {
			return s.GetAuthorizeCodeSession(ctx(t), k, sess)
		},
	},
	{
		name: "access-token",
		create: func(s storage.Store, t *testing.T, k string, r fosite.Requester) error {
			return s.CreateAccessTokenSession(ctx(t), k, r)
		},
		get: func(s storage.Store, t *testing.T, k string, sess fosite.Session) (fosite.Requester, error) {
			return s.GetAccessTokenSession(ctx(t), k, sess)
		},
		delete: func(s storage.Store, t *testing.T, k string) error { return s.DeleteAccessTokenSession(ctx(t), k) },
	},
	{
		name: "refresh-token",
		create: func(s storage.Store, t *testing.T, k string, r fosite.Requester) error {
			return s.CreateRefreshTokenSession(ctx(t), k, "access-"+k, r)
		},
		get: func(s storage.Store, t *testing.T, k string, sess fosite.Session) (fosite.Requester, error) {
			return s.GetRefreshTokenSession(ctx(t), k, sess)
		},
		delete: func(s storage.Store, t *testing.T, k string) error { return s.DeleteRefreshTokenSession(ctx(t), k) },
	},
	{
		name: "pkce",
		create: func(s storage.Store, t *testing.T, k string, r fosite.Requester) error {
			return s.CreatePKCERequestSession(ctx(t), k, r)
		},
		get: func(s storage.Store, t *testing.T, k string, sess fosite.Session) (fosite.Requester, error) {
			return s.GetPKCERequestSession(ctx(t), k, sess)
		},
		// No delete: the row is consumed with its code (singleUseTests).
	},
	{
		name: "openid",
		create: func(s storage.Store, t *testing.T, k string, r fosite.Requester) error {
			return s.CreateOpenIDConnectSession(ctx(t), k, r)
		},
		get: func(s storage.Store, t *testing.T, k string, sess fosite.Session) (fosite.Requester, error) {
			var holder fosite.Requester
			if sess != nil {
				holder = &fosite.Request{Session: sess}
			}
			return s.GetOpenIDConnectSession(ctx(t), k, holder)
		},
		delete: func(s storage.Store, t *testing.T, k string) error { return s.DeleteOpenIDConnectSession(ctx(t), k) },
	},
}

// sessionStorageTests runs the same round-trip cases on every table.
func sessionStorageTests() []test {
	var out []test
	for _, ss := range sessionStorages {
		out = append(out,
			test{ss.name + "/round-trip", func(t *testing.T, s storage.Store) {
				c := createClient(t, s, "app")
				want := newRequest("req-1", c, "alice")
				// Keys look like real ones: signatures and raw codes with dots.
				key := "aGVsbG8.d29ybGQ-" + ss.name
				must(t, ss.create(s, t, key, want))
				got, err := ss.get(s, t, key, storage.NewSession(""))
				must(t, err)
				checkRequest(t, want, got)
			}},
			test{ss.name + "/nil-session", func(t *testing.T, s storage.Store) {
				c := createClient(t, s, "app")
				want := newRequest("req-1", c, "alice")
				must(t, ss.create(s, t, "key", want))
				got, err := ss.get(s, t, "key", nil)
				must(t, err)
				checkRequest(t, want, got)
			}},
			test{ss.name + "/unknown", func(t *testing.T, s storage.Store) {
				createClient(t, s, "app")
				_, err := ss.get(s, t, "unknown", storage.NewSession(""))
				wantErr(t, err, fosite.ErrNotFound)
			}},
		)
		if ss.delete != nil {
			out = append(out, test{ss.name + "/delete", func(t *testing.T, s storage.Store) {
				c := createClient(t, s, "app")
				must(t, ss.create(s, t, "key-1", newRequest("req-1", c, "alice")))
				must(t, ss.create(s, t, "key-2", newRequest("req-2", c, "alice")))
				must(t, ss.delete(s, t, "key-1"))
				_, err := ss.get(s, t, "key-1", storage.NewSession(""))
				wantErr(t, err, fosite.ErrNotFound)
				_, err = ss.get(s, t, "key-2", storage.NewSession(""))
				must(t, err)
			}})
		}
	}
	return out
}

var oauth2Tests = append(sessionStorageTests(), []test{
	{"authorize-code/invalidate", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "app")
		want := newRequest("req-1", c, "alice")
		must(t, s.CreateAuthorizeCodeSession(ctx(t), "code", want))
		must(t, s.InvalidateAuthorizeCodeSession(ctx(t), "code"))
		// fosite needs the requester to revoke the tokens issued with the
		// code (RFC 6749 §4.1.2).
		got, err := s.GetAuthorizeCodeSession(ctx(t), "code", storage.NewSession(""))
		wantErr(t, err, fosite.ErrInvalidatedAuthorizeCode)
		checkRequest(t, want, got)
		got, err = s.GetAuthorizeCodeSession(ctx(t), "code", nil)
		wantErr(t, err, fosite.ErrInvalidatedAuthorizeCode)
		checkRequest(t, want, got)
	}},
	{"authorize-code/invalidate-unknown", func(t *testing.T, s storage.Store) {
		wantErr(t, s.InvalidateAuthorizeCodeSession(ctx(t), "unknown"), fosite.ErrNotFound)
	}},
	{"access-token/revoke-by-request-id", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "app")
		must(t, s.CreateAccessTokenSession(ctx(t), "at-1", newRequest("req-1", c, "alice")))
		must(t, s.CreateAccessTokenSession(ctx(t), "at-2", newRequest("req-1", c, "alice")))
		must(t, s.CreateAccessTokenSession(ctx(t), "at-3", newRequest("req-2", c, "alice")))
		must(t, s.RevokeAccessToken(ctx(t), "req-1"))
		for _, sig := range []string{"at-1", "at-2"} {
			_, err := s.GetAccessTokenSession(ctx(t), sig, nil)
			wantErr(t, err, fosite.ErrNotFound)
		}
		_, err := s.GetAccessTokenSession(ctx(t), "at-3", nil)
		must(t, err)
	}},
	{"refresh-token/rotate", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "app")
		want := newRequest("req-1", c, "alice")
		must(t, s.CreateAccessTokenSession(ctx(t), "at-1", want))
		must(t, s.CreateRefreshTokenSession(ctx(t), "rt-1", "at-1", want))
		must(t, s.CreateAccessTokenSession(ctx(t), "at-other", newRequest("req-2", c, "alice")))
		must(t, s.CreateRefreshTokenSession(ctx(t), "rt-other", "at-other", newRequest("req-2", c, "alice")))

		must(t, s.RotateRefreshToken(ctx(t), "req-1", "rt-1"))
		// The old token is kept, inactive, so its reuse is detected.
		got, err := s.GetRefreshTokenSession(ctx(t), "rt-1", storage.NewSession(""))
		wantErr(t, err, fosite.ErrInactiveToken)
		checkRequest(t, want, got)
		_, err = s.GetAccessTokenSession(ctx(t), "at-1", nil)
		wantErr(t, err, fosite.ErrNotFound)
		// The other family is untouched.
		_, err = s.GetRefreshTokenSession(ctx(t), "rt-other", nil)
		must(t, err)
		_, err = s.GetAccessTokenSession(ctx(t), "at-other", nil)
		must(t, err)

		// fosite then stores the successor under the same request id.
		must(t, s.CreateAccessTokenSession(ctx(t), "at-2", want))
		must(t, s.CreateRefreshTokenSession(ctx(t), "rt-2", "at-2", want))
		got, err = s.GetRefreshTokenSession(ctx(t), "rt-2", nil)
		must(t, err)
		checkRequest(t, want, got)
	}},
	{"refresh-token/rotate-inactive-or-unknown", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "app")
		r := newRequest("req-1", c, "alice")
		must(t, s.CreateAccessTokenSession(ctx(t), "at-1", r))
		must(t, s.CreateRefreshTokenSession(ctx(t), "rt-1", "at-1", r))
		must(t, s.RotateRefreshToken(ctx(t), "req-1", "rt-1"))
		// The winner of the rotation stores its successor tokens under the
		// same request id.
		must(t, s.CreateAccessTokenSession(ctx(t), "at-2", r))
		must(t, s.CreateRefreshTokenSession(ctx(t), "rt-2", "at-2", r))

		// Rotating the already rotated token again is a lost race, and it
		// must not take the winner's access token with it.
		wantErr(t, s.RotateRefreshToken(ctx(t), "req-1", "rt-1"), fosite.ErrSerializationFailure)
		_, err := s.GetAccessTokenSession(ctx(t), "at-2", nil)
		must(t, err)
		_, err = s.GetRefreshTokenSession(ctx(t), "rt-2", nil)
		must(t, err)

		// A revoked token is inactive too.
		r2 := newRequest("req-2", c, "alice")
		must(t, s.CreateRefreshTokenSession(ctx(t), "rt-3", "at-3", r2))
		must(t, s.RevokeRefreshToken(ctx(t), "req-2"))
		wantErr(t, s.RotateRefreshToken(ctx(t), "req-2", "rt-3"), fosite.ErrSerializationFailure)

		err = s.RotateRefreshToken(ctx(t), "req-1", "unknown")
		wantErr(t, err, fosite.ErrNotFound)
		if errors.Is(err, fosite.ErrSerializationFailure) {
			t.Fatalf("unknown refresh token reported as a lost race: %v", err)
		}
	}},
	{"refresh-token/concurrent-rotate", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "app")
		// rotate is what one token request does: fosite wraps the refresh
		// in a transaction; callers without one use the store directly.
		rotate := func(inTx bool, requestID, sig string) error {
			if !inTx {
				return s.RotateRefreshToken(ctx(t), requestID, sig)
			}
			tx, err := s.BeginTX(ctx(t))
			if err != nil {
				return err
			}
			if err := s.RotateRefreshToken(tx, requestID, sig); err != nil {
				_ = s.Rollback(tx)
				return err
			}
			return s.Commit(tx)
		}
		cases := []struct {
			name string
			inTx bool
		}{
			{"case=plain", false},
			{"case=each-in-transaction", true},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				id := fmt.Sprintf("req-%d", i)
				r := newRequest(id, c, "alice")
				must(t, s.CreateAccessTokenSession(ctx(t), "at-"+id, r))
				must(t, s.CreateRefreshTokenSession(ctx(t), "rt-"+id, "at-"+id, r))
				const n = 2
				errs := make([]error, n)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for g := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						errs[g] = rotate(tc.inTx, id, "rt-"+id)
					}()
				}
				close(start)
				wg.Wait()
				wins := 0
				for _, err := range errs {
					if err == nil {
						wins++
						continue
					}
					wantErr(t, err, fosite.ErrSerializationFailure)
				}
				if wins != 1 {
					t.Fatalf("%d concurrent rotations of one refresh token succeeded, want exactly 1", wins)
				}
				_, err := s.GetRefreshTokenSession(ctx(t), "rt-"+id, nil)
				wantErr(t, err, fosite.ErrInactiveToken)
				_, err = s.GetAccessTokenSession(ctx(t), "at-"+id, nil)
				wantErr(t, err, fosite.ErrNotFound)
			})
		}
	}},
	{"refresh-token/revoke-family", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "app")
		must(t, s.CreateRefreshTokenSession(ctx(t), "rt-1", "at-1", newRequest("req-1", c, "alice")))
		must(t, s.CreateRefreshTokenSession(ctx(t), "rt-2", "at-2", newRequest("req-1", c, "alice")))
		must(t, s.CreateRefreshTokenSession(ctx(t), "rt-3", "at-3", newRequest("req-2", c, "alice")))
		must(t, s.RevokeRefreshToken(ctx(t), "req-1"))
		for _, sig := range []string{"rt-1", "rt-2"} {
			_, err := s.GetRefreshTokenSession(ctx(t), sig, nil)
			if !errors.Is(err, fosite.ErrInactiveToken) && !errors.Is(err, fosite.ErrNotFound) {
				t.Fatalf("revoked refresh token %s: want ErrInactiveToken or ErrNotFound, got %v", sig, err)
			}
		}
		_, err := s.GetRefreshTokenSession(ctx(t), "rt-3", nil)
		must(t, err)
	}},
	{"par/round-trip", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "app")
		redirect, _ := url.Parse("https://app.example/cb?x=1")
		want := &fosite.AuthorizeRequest{
			ResponseTypes:        fosite.Arguments{"code"},
			RedirectURI:          redirect,
			State:                "state-1234567890",
			HandledResponseTypes: fosite.Arguments{},
			ResponseMode:         fosite.ResponseModeQuery,
			DefaultResponseMode:  fosite.ResponseModeQuery,
			Request:              *newRequest("req-par", c, "alice"),
		}
		uri := "urn:ietf:params:oauth:request_uri:abc.def"
		must(t, s.CreatePARSession(ctx(t), uri, want))
		got, err := s.GetPARSession(ctx(t), uri)
		must(t, err)
		checkRequest(t, &want.Request, got)
		if got.GetRedirectURI() == nil || got.GetRedirectURI().String() != redirect.String() {
			t.Fatalf("redirect uri: want %s, got %v", redirect, got.GetRedirectURI())
		}
		if got.GetState() != want.State || !got.GetResponseTypes().ExactOne("code") ||
			got.GetResponseMode() != fosite.ResponseModeQuery || got.GetDefaultResponseMode() != fosite.ResponseModeQuery {
			t.Fatalf("authorize fields lost: %+v", got)
		}

		must(t, s.DeletePARSession(ctx(t), uri))
		_, err = s.GetPARSession(ctx(t), uri)
		wantErr(t, err, fosite.ErrNotFound)
		_, err = s.GetPARSession(ctx(t), "urn:ietf:params:oauth:request_uri:unknown")
		wantErr(t, err, fosite.ErrNotFound)
	}},
}...)
