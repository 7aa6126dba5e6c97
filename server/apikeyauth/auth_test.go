package apikeyauth_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/bulwark-auth/bulwark/keys/apikey"
	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/keys/secretbox"
	"github.com/bulwark-auth/bulwark/server/apikeyauth"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingStore counts key-store calls and can fail them all.
type countingStore struct {
	*memory.Store
	calls atomic.Int64
	down  atomic.Bool
}

func (s *countingStore) APIKeyByID(ctx context.Context, id string) (*storage.APIKey, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return nil, fmt.Errorf("test: %w", storage.ErrUnavailable)
	}
	return s.Store.APIKeyByID(ctx, id)
}

type env struct {
	svc   *apikeys.Service
	store *countingStore
	clock *clock
	srv   *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := &countingStore{Store: memory.New(memory.Config{Now: c.Now})}
	h, err := hash.New(hash.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	box, err := secretbox.New([][]byte{secret})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := apikeys.New(apikeys.Config{
		Store: st, Locker: st, Notifier: st, Sealer: box, Now: c.Now,
		Hasher: hash.NewCached(h, hash.CacheConfig{Now: c.Now}),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	r.Handle("/apikeys/self/rotate", apikeyauth.SelfRotate(svc))
	api := r.PathPrefix("/admin").Subrouter()
	api.Use(apikeyauth.Middleware(svc))
	whoami := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := apikeyauth.PrincipalFrom(r.Context())
		if !ok {
			http.Error(w, "no principal", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s %s/%s %s", p.KeyID, p.OwnerType, p.OwnerID, strings.Join(p.Scopes, ","))
	})
	api.Handle("/whoami", whoami)
	api.Handle("/keys", apikeyauth.RequireScope(apikeys.ScopeKeys)(whoami))
	api.Handle("/introspect", apikeyauth.RequireScope(apikeys.ScopeIntrospect)(whoami))
	r.Handle("/unauthenticated-scope", apikeyauth.RequireScope(apikeys.ScopeKeys)(whoami))
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &env{svc: svc, store: st, clock: c, srv: srv}
}

func (e *env) create(t *testing.T, mutate func(*apikeys.CreateRequest)) (string, *storage.APIKey) {
	t.Helper()
	req := apikeys.CreateRequest{Name: "rs", OwnerType: apikeys.OwnerClient, OwnerID: "rs-1",
		Scopes: []string{apikeys.ScopeIntrospect}, CreatedBy: "test"}
	if mutate != nil {
		mutate(&req)
	}
	tok, k, err := e.svc.Create(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return tok, k
}

type answer struct {
	status int
	header http.Header
	body   string
	json   map[string]any
}

func (e *env) do(t *testing.T, method, path string, auth ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	_ = json.Unmarshal(b, &a.json)
	return a
}

func TestMiddleware(t *testing.T) {
	e := newEnv(t)
	good, k := e.create(t, nil)
	revTok, rev := e.create(t, nil)
	expTok, _ := e.create(t, func(r *apikeys.CreateRequest) { r.ExpiresIn = time.Hour })
	if err := e.svc.Revoke(context.Background(), rev.ID, "admin:alice"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	parsed, _ := apikey.Parse(good)
	other, _ := apikey.Generate(nil)
	unknownID := apikey.Key{ID: other.ID, Secret: parsed.Secret}.String()
	wrongSecret := apikey.Key{ID: parsed.ID, Secret: other.Secret}.String()
	badSum := good[:len(good)-1] + map[bool]string{true: "B", false: "A"}[good[len(good)-1] == 'A']

	for _, tc := range []struct {
		name      string
		auth      []string
		status    int
		desc      string
		challenge string
		noStore   bool // decided without a store call
	}{
		{"case=valid", []string{"Bearer " + good}, 200, "", "", false},
		{"case=scheme-case-insensitive", []string{"bearer " + good}, 200, "", "", false},
		{"case=missing", nil, 401, "missing bearer api key", `Bearer realm="bulwark"`, true},
		{"case=basic-scheme", []string{"Basic dXNlcjpwYXNz"}, 401, "missing bearer api key", `Bearer realm="bulwark"`, true},
		{"case=two-headers", []string{"Bearer " + good, "Bearer " + good}, 401, "missing bearer api key", `Bearer realm="bulwark"`, true},
		{"case=malformed", []string{"Bearer bwk_nope"}, 401, "malformed api key", `error="invalid_token"`, true},
		{"case=truncated", []string{"Bearer " + good[:40]}, 401, "malformed api key", `error="invalid_token"`, true},
		{"case=bad-checksum", []string{"Bearer " + badSum}, 401, "malformed api key", `error="invalid_token"`, true},
		{"case=unknown-id", []string{"Bearer " + unknownID}, 401, "invalid api key", `error_description="invalid api key"`, false},
		{"case=wrong-secret", []string{"Bearer " + wrongSecret}, 401, "invalid api key", `error_description="invalid api key"`, false},
		{"case=revoked", []string{"Bearer " + revTok}, 401, "api key revoked", `error_description="api key revoked"`, false},
		{"case=expired", []string{"Bearer " + expTok}, 401, "api key expired", `error_description="api key expired"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.store.calls.Load()
			a := e.do(t, http.MethodGet, "/admin/whoami", tc.auth...)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d (%s)", a.status, tc.status, a.body)
			}
			if tc.noStore && e.store.calls.Load() != before {
				t.Fatal("rejected after a database call")
			}
			if tc.status == 200 {
				if want := k.ID + " client/rs-1 introspect"; a.body != want {
					t.Fatalf("handler saw %q, want %q", a.body, want)
				}
				return
			}
			if a.json["error"] != "invalid_token" || a.json["error_description"] != tc.desc {
				t.Fatalf("body %s", a.body)
			}
			if ch := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, `Bearer realm="bulwark"`) || !strings.Contains(ch, tc.challenge) {
				t.Fatalf("WWW-Authenticate %q", ch)
			}
			if a.header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
				t.Fatal("error answer is cacheable or not JSON")
			}
			if strings.Contains(a.body, "bwk_") {
				t.Fatal("token echoed")
			}
		})
	}
	// Unknown id and wrong secret are answered identically.
	a1 := e.do(t, http.MethodGet, "/admin/whoami", "Bearer "+unknownID)
	a2 := e.do(t, http.MethodGet, "/admin/whoami", "Bearer "+wrongSecret)
	if a1.body != a2.body || a1.header.Get("WWW-Authenticate") != a2.header.Get("WWW-Authenticate") {
		t.Fatalf("unknown id and wrong secret differ: %q vs %q", a1.body, a2.body)
	}
}

func TestDatabaseUnavailableIs503(t *testing.T) {
	e := newEnv(t)
	good, _ := e.create(t, nil)
	e.store.down.Store(true)
	a := e.do(t, http.MethodGet, "/admin/whoami", "Bearer "+good)
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" || a.json["error"] != "temporarily_unavailable" {
		t.Fatalf("status %d retry-after %q body %s", a.status, a.header.Get("Retry-After"), a.body)
	}
}

func TestRequireScope(t *testing.T) {
	e := newEnv(t)
	tok, _ := e.create(t, nil) // introspect only
	for _, tc := range []struct {
		name, path string
		status     int
	}{
		{"case=has-scope", "/admin/introspect", 200},
		{"case=lacks-scope", "/admin/keys", 403},
		{"case=no-middleware", "/unauthenticated-scope", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do(t, http.MethodGet, tc.path, "Bearer "+tok)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d (%s)", a.status, tc.status, a.body)
			}
			if tc.status == 403 {
				if a.json["error"] != "insufficient_scope" || a.json["scope"] != apikeys.ScopeKeys {
					t.Fatalf("body %s", a.body)
				}
				if ch := a.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="admin:keys"`) {
					t.Fatalf("WWW-Authenticate %q", ch)
				}
			}
		})
	}
}

func TestSelfRotateCollectsScheduledSuccessorOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	old, k := e.create(t, func(r *apikeys.CreateRequest) { r.RotationPeriod, r.GracePeriod = 2*time.Hour, time.Hour })
	e.clock.Advance(2 * time.Hour)
	if err := e.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	// Any response tells the holder its key is rotating.
	a := e.do(t, http.MethodGet, "/admin/whoami", "Bearer "+old)
	wantEnd := e.clock.Now().Add(time.Hour).UTC()
	if a.status != 200 || a.header.Get(apikeyauth.HeaderKeyStatus) != "rotating" ||
		a.header.Get(apikeyauth.HeaderKeyExpires) != wantEnd.Format(time.RFC3339) {
		t.Fatalf("status %d, rotation headers %q %q", a.status, a.header.Get(apikeyauth.HeaderKeyStatus), a.header.Get(apikeyauth.HeaderKeyExpires))
	}

	if a := e.do(t, http.MethodGet, "/apikeys/self/rotate", "Bearer "+old); a.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", a.status)
	}
	a = e.do(t, http.MethodPost, "/apikeys/self/rotate", "Bearer "+old)
	if a.status != 200 || a.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("collect: %d %s", a.status, a.header.Get("Cache-Control"))
	}
	var resp apikeyauth.SelfRotateResponse
	if err := json.Unmarshal([]byte(a.body), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.OldKeyID != k.ID || resp.OldKeyExpiresAt == nil || !resp.OldKeyExpiresAt.Equal(wantEnd) || resp.ExpiresAt != nil {
		t.Fatalf("response %s", a.body)
	}
	if p, err := apikey.Parse(resp.APIKey); err != nil || p.ID != resp.ID {
		t.Fatal("api_key is not the successor's token")
	}
	if a := e.do(t, http.MethodGet, "/admin/whoami", "Bearer "+resp.APIKey); a.status != 200 || a.header.Get(apikeyauth.HeaderKeyStatus) != "" {
		t.Fatalf("successor: %d %s", a.status, a.body)
	}
	a = e.do(t, http.MethodPost, "/apikeys/self/rotate", "Bearer "+old)
	if a.status != http.StatusConflict || a.json["error"] != "no_pending_successor" || strings.Contains(a.body, "bwk_") {
		t.Fatalf("second collect: %d %s", a.status, a.body)
	}
	// The old key still works until the end of grace, then says expired.
	e.clock.Advance(time.Hour)
	a = e.do(t, http.MethodGet, "/admin/whoami", "Bearer "+old)
	if a.status != 401 || a.json["error_description"] != "api key expired" {
		t.Fatalf("old key after grace: %d %s", a.status, a.body)
	}
}

func TestSelfRotateEarly(t *testing.T) {
	e := newEnv(t)
	old, _ := e.create(t, func(r *apikeys.CreateRequest) { r.GracePeriod = 24 * time.Hour })
	a := e.do(t, http.MethodPost, "/apikeys/self/rotate", "Bearer "+old)
	if a.status != 200 {
		t.Fatalf("early rotate: %d %s", a.status, a.body)
	}
	var resp apikeyauth.SelfRotateResponse
	_ = json.Unmarshal([]byte(a.body), &resp)
	if resp.OldKeyExpiresAt == nil || !resp.OldKeyExpiresAt.Equal(e.clock.Now().Add(24*time.Hour)) || resp.RotateAt == nil {
		t.Fatalf("response %s", a.body)
	}
	for _, tok := range []string{old, resp.APIKey} {
		if a := e.do(t, http.MethodGet, "/admin/whoami", "Bearer "+tok); a.status != 200 {
			t.Fatalf("key after early rotation: %d", a.status)
		}
	}
	for _, tc := range []struct {
		name, auth string
		status     int
	}{
		{"case=no-auth", "", 401},
		{"case=malformed", "Bearer bwk_x", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var auth []string
			if tc.auth != "" {
				auth = append(auth, tc.auth)
			}
			if a := e.do(t, http.MethodPost, "/apikeys/self/rotate", auth...); a.status != tc.status || a.json["error"] != "invalid_token" {
				t.Fatalf("%d %s", a.status, a.body)
			}
		})
	}
}
