package forwardauth

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ory/fosite/token/jwt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/keys/secretbox"
	"github.com/bulwark-auth/bulwark/server/dpop"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

const benchIssuer = "https://auth.example"

// env is a forward-auth handler over a real Postgres store, key ring and
// API key service, subscribed to revocations, with one API key.
type env struct {
	h      *Handler
	ring   *keys.Ring
	apiKey string
}

const benchRules = "rules:\n  - name: api\n    path: /api/**\n    scopes: [introspect]\n"

func newEnv(tb testing.TB, rules string, mod func(*Config)) *env {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	store := pgtest.NewStore(tb)
	log, _ := test.NewNullLogger()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	box, err := secretbox.New([][]byte{secret})
	if err != nil {
		tb.Fatal(err)
	}
	ring, err := keys.NewRing(ctx, keys.Config{Store: store, Locker: store, Notifier: store, Sealer: box, Algorithms: []string{"ES256"}, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	if err := ring.Bootstrap(ctx); err != nil {
		tb.Fatal(err)
	}
	hasher, err := hash.New(hash.DefaultParams())
	if err != nil {
		tb.Fatal(err)
	}
	keySvc, err := apikeys.New(apikeys.Config{Store: store, Locker: store, Notifier: store, Sealer: box,
		Hasher: hash.NewCached(hasher, hash.CacheConfig{}), Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	apiKey, _, err := keySvc.Create(ctx, apikeys.CreateRequest{Name: "bench", OwnerType: apikeys.OwnerService, OwnerID: "bench", Scopes: []string{apikeys.ScopeIntrospect}})
	if err != nil {
		tb.Fatal(err)
	}
	set, err := ParseRules([]byte(rules))
	if err != nil {
		tb.Fatal(err)
	}
	revs, err := NewRevocations(RevocationsConfig{Notifier: store, Lookup: store, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	proofs, err := dpop.New(dpop.Config{Store: store, NonceKeys: [][]byte{secret}})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := Config{Issuer: benchIssuer, JWT: ring.Signer("ES256"), KeyPublished: published(ring), Revocations: revs, APIKeys: keySvc, Notifier: store,
		Rules: StaticRules(set), Metrics: NewMetrics(prometheus.NewRegistry()), Logger: log, Rate: 1e9, Burst: 1e9, DPoP: proofs}
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	go revs.Run(ctx, time.Minute)
	go h.Run(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for !revs.Ready() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// Tokens issued in a later second than the subscription are vouched
	// for by the deny list alone.
	for sec := time.Now().Unix(); time.Now().Unix() <= sec; {
		time.Sleep(20 * time.Millisecond)
	}
	return &env{h: h, ring: ring, apiKey: apiKey}
}

func published(ring *keys.Ring) func(string) bool {
	return func(kid string) bool { _, ok := ring.VerificationKey(kid); return ok }
}

// mint signs an access token like the token endpoint does; set overrides
// claims (nil deletes one), typ replaces the header's typ.
func (e *env) mint(tb testing.TB, typ string, set jwt.MapClaims) string {
	tb.Helper()
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": benchIssuer, "sub": "svc", "client_id": "svc", "scope": "introspect", "aud": []string{"svc"},
		"jti": fmt.Sprint(now.UnixNano()), "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range set {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	hdr := jwt.NewHeaders()
	hdr.Add("typ", typ)
	tok, _, err := e.ring.Signer("ES256").Generate(context.Background(), claims, hdr)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func checkRequest(target string, cred map[string]string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, target, nil)
	r.Header.Set("X-Forwarded-Method", "GET")
	r.Header.Set("X-Forwarded-Host", "api.example")
	r.Header.Set("X-Forwarded-Uri", "/api/orders/42?x=1")
	for k, v := range cred {
		r.Header.Set(k, v)
	}
	return r
}

// BenchmarkCheck measures checks per second in process (the handler alone)
// and over real HTTP with keep-alive (client and server share the CPUs, so
// it understates what a separate gateway would see). Steady state: the
// token or key was seen before. case=jwt-first-sight verifies the ES256
// signature every time.
func BenchmarkCheck(b *testing.B) {
	env := newEnv(b, benchRules, nil)
	creds := map[string]map[string]string{
		"jwt":     {"Authorization": "Bearer " + env.mint(b, "at+jwt", nil)},
		"api-key": {"X-API-Key": env.apiKey},
	}
	for _, name := range []string{"jwt", "api-key"} {
		cred := creds[name]
		b.Run("case="+name+"/in-process", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w := httptest.NewRecorder()
					env.h.ServeHTTP(w, checkRequest("/forward-auth", cred))
					if w.Code != http.StatusOK {
						b.Fatalf("status %d %s", w.Code, w.Body)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
		})
		b.Run("case="+name+"/http", func(b *testing.B) {
			srv := httptest.NewServer(env.h)
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.SetParallelism(8)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := client.Do(checkRequest(srv.URL+"/forward-auth", cred))
					if err != nil {
						b.Fatal(err)
					}
					_ = res.Body.Close()
					if res.StatusCode != http.StatusOK {
						b.Fatalf("status %d", res.StatusCode)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
		})
	}
	b.Run("case=jwt-first-sight/in-process", func(b *testing.B) {
		cred := creds["jwt"]
		b.ReportAllocs()
		for b.Loop() {
			env.h.jwts.Clear()
			w := httptest.NewRecorder()
			env.h.ServeHTTP(w, checkRequest("/forward-auth", cred))
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	})
}
