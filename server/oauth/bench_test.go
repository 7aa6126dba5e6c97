package oauth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/storage"
)

// benchTokenHandler builds a provider on the memory store whose client
// secrets verify through h, with one client-credentials client.
func benchTokenHandler(b *testing.B, h fosite.Hasher) http.Handler {
	b.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	p, store, _ := newTestProvider(b, "https://bench.example", h, log, nil)
	secret, err := h.Hash(context.Background(), []byte(svcSecret))
	if err != nil {
		b.Fatal(err)
	}
	if err := store.CreateClient(context.Background(), &storage.Client{
		ID: "svc", SecretHash: string(secret), GrantTypes: []string{"client_credentials"},
		Scopes: []string{"api:read"}, TokenEndpointAuthMethod: storage.AuthMethodSecretBasic,
	}); err != nil {
		b.Fatal(err)
	}
	r := mux.NewRouter()
	p.Register(r)
	return r
}

// BenchmarkTokenEndpointClientCredentials measures a whole client
// credentials request (parse, client authentication, ES256 signature,
// store) with production Argon2id parameters, with and without the
// verification cache. The ratio is the point: without the cache the token
// endpoint is capped by Argon2id.
func BenchmarkTokenEndpointClientCredentials(b *testing.B) {
	plain, err := hash.New(hash.DefaultParams())
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		hasher fosite.Hasher
	}{
		{"hasher=argon2id-uncached", plain},
		{"hasher=argon2id-cached", hash.NewCached(plain, hash.CacheConfig{})},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := benchTokenHandler(b, tc.hasher)
			body := url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}}.Encode()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth("svc", svcSecret)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
				var out map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out["access_token"] == nil {
					b.Fatalf("bad response: %s", rec.Body)
				}
			}
		})
	}
}

// BenchmarkIntrospectJWT measures introspection of a JWT access token
// (RFC 7662) on the memory store: caller authentication through the
// verification cache, signature check with the key for the token's kid,
// the revocation lookup and the JSON answer.
func BenchmarkIntrospectJWT(b *testing.B) {
	plain, err := hash.New(hash.DefaultParams())
	if err != nil {
		b.Fatal(err)
	}
	h := benchTokenHandler(b, hash.NewCached(plain, hash.CacheConfig{}))
	post := func(path string, form url.Values) map[string]any {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", svcSecret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: status %d: %s", path, rec.Code, rec.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			b.Fatalf("%s: %v", path, err)
		}
		return out
	}
	tok, _ := post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"api:read"}})["access_token"].(string)
	form := url.Values{"token": {tok}}
	b.ReportAllocs()
	for b.Loop() {
		if out := post("/oauth2/introspect", form); out["active"] != true {
			b.Fatalf("token inactive: %v", out)
		}
	}
}
