package main

// A client registered through RFC 7591 with private_key_jwt and a jwks_uri,
// end to end on Postgres over real HTTP: the client signs RFC 7523 client
// assertions with lestrrat-go/jwx, publishes its public keys at a URL of
// its own (a loopback server the egress rules are told to allow), rotates
// them there, and a key it never published is refused.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/bulwark-auth/bulwark/server/egress"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// keyServer is a client's jwks_uri: it publishes the public halves of the
// keys it is given, and counts how often it is fetched.
type keyServer struct {
	url     string
	fetches atomic.Int32

	mu  sync.Mutex
	set []byte
}

func newKeyServer(t *testing.T) *keyServer {
	t.Helper()
	ks := &keyServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		ks.fetches.Add(1)
		ks.mu.Lock()
		body := ks.set
		ks.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	ks.url = srv.URL + "/jwks.json"
	return ks
}

// publish replaces the published set by the public halves of keys.
func (ks *keyServer) publish(t *testing.T, keys ...jwk.Key) {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := jwk.PublicKeyOf(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := set.AddKey(pub); err != nil {
			t.Fatal(err)
		}
	}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	ks.mu.Lock()
	ks.set = body
	ks.mu.Unlock()
}

// newClientKey is a client's ES256 signing key named kid.
func newClientKey(t *testing.T, kid string) jwk.Key {
	t.Helper()
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jwa.ES256(), jwk.KeyUsageKey: "sig"} {
		if err := k.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// clientAssertion is an RFC 7523 §2.2 client assertion for clientID,
// signed with key (its kid in the header), aimed at tokenURL.
func clientAssertion(t *testing.T, key jwk.Key, clientID, tokenURL string) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewBuilder().Issuer(clientID).Subject(clientID).Audience([]string{tokenURL}).
		JwtID(rand.Text()).IssuedAt(now).Expiration(now.Add(time.Minute)).Build()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), key))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// TestE2ERegisteredPrivateKeyJWTWithJWKSURI: a client registers itself with
// private_key_jwt and a jwks_uri and gets client_credentials tokens with
// signed assertions; a key it rotates in at its jwks_uri (new kid) works
// at once; an assertion signed by a key not in its set, whatever kid it
// names, is 401 invalid_client.
func TestE2ERegisteredPrivateKeyJWTWithJWKSURI(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ks := newKeyServer(t)
	k1 := newClientKey(t, "k1")
	ks.publish(t, k1)
	// The key server listens on loopback over http: allow exactly that
	// (--egress-allowed-networks would, for https, in production).
	s := startRegistrationServer(t, dsn, nil, false, func(c *config) {
		c.testEgress = &egress.Options{AllowHTTP: true, Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	})
	adminKey := cliCreateKey(t, dsn, "--name", "ops", "--owner-type", "service", "--owner-id", "ops", "--scopes", "admin:clients:read admin:clients:write")
	_, initial := issueInitialToken(t, s, adminKey, map[string]any{"max_clients": 1, "expires_in": "1h"})

	st, reg, _ := regCall(t, http.MethodPost, s.issuer+"/oauth2/register", initial, mustJSON(map[string]any{
		"client_name": "Key-holding service", "grant_types": []string{"client_credentials"}, "scope": "profile",
		"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256", "jwks_uri": ks.url,
	}))
	if st != http.StatusCreated {
		t.Fatalf("register: %d %v", st, reg)
	}
	id, _ := reg["client_id"].(string)
	if reg["jwks_uri"] != ks.url || reg["token_endpoint_auth_method"] != "private_key_jwt" || reg["client_secret"] != nil {
		t.Fatalf("registration response: %v", reg)
	}
	if n := ks.fetches.Load(); n != 0 {
		t.Fatalf("registration fetched the jwks_uri %d times; keys are fetched when an assertion needs them", n)
	}

	tokenURL := s.issuer + "/oauth2/token"
	token := func(key jwk.Key) (int, map[string]any) {
		t.Helper()
		return s.post("/oauth2/token", url.Values{
			"grant_type": {"client_credentials"}, "scope": {"profile"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {clientAssertion(t, key, id, tokenURL)},
		}, "", "")
	}

	// 1. The published key works; the set is fetched once and cached.
	for range 2 {
		st, out := token(k1)
		if st != http.StatusOK {
			t.Fatalf("token with the published key: %d %v", st, out)
		}
		if claims := s.verifyAccessToken(out["access_token"].(string)); claims["client_id"] != id || claims["scope"] != "profile" {
			t.Fatalf("access token claims: %v", claims)
		}
	}
	if n := ks.fetches.Load(); n != 1 {
		t.Fatalf("jwks_uri fetched %d times for two assertions with one key, want 1 (cached)", n)
	}

	// 2. Rotation at the jwks_uri: k2 is published and k1 retired. An
	// assertion naming the new kid makes the server refetch at once.
	k2 := newClientKey(t, "k2")
	ks.publish(t, k2)
	if st, out := token(k2); st != http.StatusOK {
		t.Fatalf("token with the rotated-in key: %d %v", st, out)
	}
	if n := ks.fetches.Load(); n != 2 {
		t.Fatalf("jwks_uri fetched %d times, want 2 (one refetch for the new kid)", n)
	}

	// 3. A key the client never published is refused with 401, whether it
	// names a kid the set lacks, one the set has, or none.
	evil := newClientKey(t, "evil")
	posing := newClientKey(t, "k2")
	anonymous := newClientKey(t, "")
	if err := anonymous.Remove(jwk.KeyIDKey); err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]jwk.Key{"case=unknown kid": evil, "case=the published kid": posing, "case=no kid": anonymous} {
		t.Run(name, func(t *testing.T) {
			st, out := token(key)
			if st != http.StatusUnauthorized || out["error"] != "invalid_client" || out["access_token"] != nil {
				t.Fatalf("assertion signed by an unpublished key: %d %v, want 401 invalid_client", st, out)
			}
		})
	}
	// The real key still works afterwards.
	if st, out := token(k2); st != http.StatusOK {
		t.Fatalf("token after the refusals: %d %v", st, out)
	}
}
