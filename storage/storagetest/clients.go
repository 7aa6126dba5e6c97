package storagetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
)

// newClient returns a client with every field set, so round trips prove
// each column survives.
func newClient(id string) *storage.Client {
	t0 := now()
	return &storage.Client{
		ID:                               id,
		SecretHash:                       "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", // #nosec G101 -- a fixed test fixture hash, not a credential
		RotatedSecrets:                   []storage.RotatedSecret{{Hash: "$argon2id$old", ExpiresAt: t0.Add(time.Hour)}},
		Name:                             "Client " + id,
		RedirectURIs:                     []string{"https://app.example/cb", "http://127.0.0.1/cb"},
		GrantTypes:                       []string{"authorization_code", "refresh_token", "client_credentials"},
		ResponseTypes:                    []string{"code"},
		Scopes:                           []string{"openid", "offline_access", "read"},
		Audience:                         []string{"https://api.example"},
		TokenEndpointAuthMethod:          storage.AuthMethodSecretBasic,
		TokenEndpointAuthSigningAlg:      "ES256",
		RequestObjectSigningAlg:          "ES256",
		ApplicationType:                  storage.AppTypeWeb,
		LogoURI:                          "https://app.example/logo.png",
		ClientURI:                        "https://app.example",
		Contacts:                         []string{"ops@app.example"},
		SkipConsent:                      true,
		PKCEOptional:                     true,
		AllowedCORSOrigins:               []string{"+", "https://spa.example"},
		DPoPBoundAccessTokens:            true,
		BackchannelLogoutURI:             "https://app.example/backchannel",
		BackchannelLogoutSessionRequired: true,
		JWKSURI:                          "https://app.example/jwks.json",
		RegisteredVia:                    "iat-1",
		IDTokenSignedResponseAlg:         "ES256",
		AccessTokenLifespan:              5 * time.Minute,
		RefreshTokenLifespan:             24 * time.Hour,
		IDTokenLifespan:                  10 * time.Minute,
		Owner:                            "admin-1",
		CreatedAt:                        t0,
		UpdatedAt:                        t0,
	}
}

func createClient(t *testing.T, s storage.Store, id string) *storage.Client {
	t.Helper()
	c := newClient(id)
	must(t, s.CreateClient(ctx(t), c))
	return c
}

var clientTests = []test{
	{"client/create-get", func(t *testing.T, s storage.Store) {
		c := newClient("app")
		must(t, s.CreateClient(ctx(t), c))
		if c.Version != 1 {
			t.Fatalf("CreateClient set Version %d, want 1", c.Version)
		}
		want := c.Clone()
		c.RedirectURIs[0] = "https://mutated.example" // the store must hold its own copy
		got, err := s.ClientByID(ctx(t), "app")
		must(t, err)
		wantEqual(t, "client", want, got)
		got.Scopes[0] = "mutated"
		again, err := s.ClientByID(ctx(t), "app")
		must(t, err)
		wantEqual(t, "client after mutating a returned copy", want, again)

		fc, err := s.GetClient(ctx(t), "app")
		must(t, err)
		sc, ok := fc.(*storage.Client)
		if !ok {
			t.Fatalf("GetClient returned %T, want *storage.Client", fc)
		}
		wantEqual(t, "GetClient", want, sc)
		if fc.GetID() != "app" || !fc.GetGrantTypes().Has("client_credentials") || fc.IsPublic() {
			t.Fatalf("GetClient result not usable by fosite: %+v", fc)
		}
	}},
	{"client/disabled", func(t *testing.T, s storage.Store) {
		// fosite looks clients up through GetClient only, so a disabled
		// client must be unknown there to be refused everywhere (token,
		// authorize, introspection, revocation); the admin API still sees it.
		c := newClient("off")
		c.Disabled = true
		must(t, s.CreateClient(ctx(t), c))
		_, err := s.GetClient(ctx(t), "off")
		wantErr(t, err, fosite.ErrNotFound)
		got, err := s.ClientByID(ctx(t), "off")
		must(t, err)
		wantEqual(t, "disabled client", c, got)

		got.Disabled = false
		must(t, s.UpdateClient(ctx(t), got, got.Version))
		_, err = s.GetClient(ctx(t), "off")
		must(t, err)
		got.Disabled = true
		must(t, s.UpdateClient(ctx(t), got, got.Version))
		_, err = s.GetClient(ctx(t), "off")
		wantErr(t, err, fosite.ErrNotFound)
	}},
	{"client/create-duplicate", func(t *testing.T, s storage.Store) {
		createClient(t, s, "app")
		wantErr(t, s.CreateClient(ctx(t), newClient("app")), storage.ErrConflict)
	}},
	{"client/unknown", func(t *testing.T, s storage.Store) {
		_, err := s.ClientByID(ctx(t), "nope")
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.GetClient(ctx(t), "nope")
		wantErr(t, err, fosite.ErrNotFound)
		wantErr(t, s.UpdateClient(ctx(t), newClient("nope"), 1), storage.ErrNotFound)
		wantErr(t, s.DeleteClient(ctx(t), "nope"), storage.ErrNotFound)
	}},
	{"client/jwks", func(t *testing.T, s storage.Store) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(t, err)
		c := newClient("jwt-app")
		c.TokenEndpointAuthMethod = storage.AuthMethodPrivateKeyJWT
		c.JWKS = &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
		must(t, s.CreateClient(ctx(t), c))
		got, err := s.ClientByID(ctx(t), "jwt-app")
		must(t, err)
		wantJSON, _ := json.Marshal(c.JWKS)
		gotJSON, _ := json.Marshal(got.GetJSONWebKeys())
		if string(wantJSON) != string(gotJSON) {
			t.Fatalf("JWKS: want %s, got %s", wantJSON, gotJSON)
		}
	}},
	{"client/list", func(t *testing.T, s storage.Store) {
		for i, name := range []string{"Alpha", "beta", "Gamma", "alphabet", "delta"} {
			c := newClient(fmt.Sprintf("c-%d", i+1))
			c.Name = name
			must(t, s.CreateClient(ctx(t), c))
		}
		cases := []struct {
			name string
			opts storage.ListOptions
			want []string
		}{
			{"case=all", storage.ListOptions{}, []string{"c-1", "c-2", "c-3", "c-4", "c-5"}},
			{"case=after-limit", storage.ListOptions{After: "c-2", Limit: 2}, []string{"c-3", "c-4"}},
			{"case=after-last", storage.ListOptions{After: "c-5"}, nil},
			{"case=name-contains-case-insensitive", storage.ListOptions{NameContains: "ALPHA"}, []string{"c-1", "c-4"}},
			{"case=name-and-after", storage.ListOptions{NameContains: "alpha", After: "c-1"}, []string{"c-4"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ListClients(ctx(t), tc.opts)
				must(t, err)
				var ids []string
				for _, c := range got {
					ids = append(ids, c.ID)
				}
				wantEqual(t, "ids", tc.want, ids)
			})
		}
	}},
	{"client/update-versioned", func(t *testing.T, s storage.Store) {
		c := createClient(t, s, "app")
		c.Name = "Renamed"
		c.RedirectURIs = []string{"https://new.example/cb"}
		must(t, s.UpdateClient(ctx(t), c, 1))
		if c.Version != 2 {
			t.Fatalf("UpdateClient set Version %d, want 2", c.Version)
		}
		got, err := s.ClientByID(ctx(t), "app")
		must(t, err)
		wantEqual(t, "updated client", c, got)

		stale := c.Clone()
		stale.Name = "Lost update"
		wantErr(t, s.UpdateClient(ctx(t), stale, 1), storage.ErrPreconditionFailed)
		got, err = s.ClientByID(ctx(t), "app")
		must(t, err)
		if got.Name != "Renamed" || got.Version != 2 {
			t.Fatalf("stale update changed the client: %q v%d", got.Name, got.Version)
		}
	}},
	{"client/delete-removes-tokens-and-consents", func(t *testing.T, s storage.Store) {
		createClient(t, s, "app")
		other := createClient(t, s, "other")
		a := newRequest("req-1", newClient("app"), "alice")
		must(t, s.CreateAccessTokenSession(ctx(t), "at-app", a))
		must(t, s.CreateRefreshTokenSession(ctx(t), "rt-app", "at-app", a))
		must(t, s.CreateAuthorizeCodeSession(ctx(t), "code-app", a))
		must(t, s.CreateAccessTokenSession(ctx(t), "at-other", newRequest("req-2", other, "alice")))
		for _, id := range []string{"app", "other"} {
			must(t, s.SaveConsent(ctx(t), &storage.Consent{Subject: "alice", ClientID: id, Scopes: []string{"openid"}, GrantedAt: now()}))
		}

		must(t, s.DeleteClient(ctx(t), "app"))
		_, err := s.ClientByID(ctx(t), "app")
		wantErr(t, err, storage.ErrNotFound)
		_, err = s.GetAccessTokenSession(ctx(t), "at-app", nil)
		wantErr(t, err, fosite.ErrNotFound)
		_, err = s.GetRefreshTokenSession(ctx(t), "rt-app", nil)
		wantErr(t, err, fosite.ErrNotFound)
		_, err = s.GetAuthorizeCodeSession(ctx(t), "code-app", nil)
		wantErr(t, err, fosite.ErrNotFound)
		// A client re-created under the same id must not inherit consents.
		_, err = s.GetConsent(ctx(t), "alice", "app")
		wantErr(t, err, storage.ErrNotFound)

		_, err = s.GetAccessTokenSession(ctx(t), "at-other", nil)
		must(t, err)
		_, err = s.GetConsent(ctx(t), "alice", "other")
		must(t, err)
	}},
	{"client/assertion-jti", func(t *testing.T, s storage.Store) {
		t0 := now()
		must(t, s.ClientAssertionJWTValid(ctx(t), "jti-1"))
		must(t, s.SetClientAssertionJWT(ctx(t), "jti-1", t0.Add(time.Hour)))
		wantErr(t, s.ClientAssertionJWTValid(ctx(t), "jti-1"), fosite.ErrJTIKnown)
		wantErr(t, s.SetClientAssertionJWT(ctx(t), "jti-1", t0.Add(2*time.Hour)), fosite.ErrJTIKnown)
		must(t, s.ClientAssertionJWTValid(ctx(t), "jti-2"))

		// An expired JTI cannot be replayed (the assertion itself expired),
		// so it may be recorded again.
		must(t, s.SetClientAssertionJWT(ctx(t), "jti-old", t0.Add(-time.Hour)))
		must(t, s.ClientAssertionJWTValid(ctx(t), "jti-old"))
		must(t, s.SetClientAssertionJWT(ctx(t), "jti-old", t0.Add(time.Hour)))
		wantErr(t, s.ClientAssertionJWTValid(ctx(t), "jti-old"), fosite.ErrJTIKnown)
	}},
}
