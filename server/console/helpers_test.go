package console_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/keys/regtoken"
	"github.com/bulwark-auth/bulwark/keys/secretbox"
	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/server/audit"
	"github.com/bulwark-auth/bulwark/server/console"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

// fastParams keep Argon2id cheap in tests; the code paths are the same.
var fastParams = hash.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// clock is a settable test clock shared by every component.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// allScopes are every admin scope.
var allScopes = []string{
	apikeys.ScopeClientsRead, apikeys.ScopeClientsWrite, apikeys.ScopeAPIKeys,
	apikeys.ScopeKeys, apikeys.ScopeUsers, apikeys.ScopeAuditRead,
}

const adminPassword = "correct horse battery staple"

// env is a console on a memory store with real services, served over HTTP.
type env struct {
	t       testing.TB
	clock   *clock
	store   *memory.Store
	box     *secretbox.Box
	hasher  *hash.Hasher
	svc     *admin.Service
	ring    *keys.Ring
	console *console.Console
	srv     *httptest.Server
}

type envOpt func(*console.Config)

func secure(c *console.Config) { c.Secure = true }

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	ctx := context.Background()
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	store := memory.New(memory.Config{Now: c.Now})
	box, err := secretbox.New([][]byte{bytes.Repeat([]byte("k"), 32)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := hash.New(fastParams)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	sink := audit.NewSink(store, log, c.Now)
	ring, err := keys.NewRing(ctx, keys.Config{
		Store: store, Locker: store, Notifier: store, Sealer: box,
		Algorithms: []string{keys.ES256}, Now: c.Now, Logger: log, Audit: sink.Record,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	ak, err := apikeys.New(apikeys.Config{
		Store: store, Locker: store, Notifier: store, Hasher: hash.NewCached(h, hash.CacheConfig{Now: c.Now}),
		Sealer: box, Now: c.Now, Logger: log, Audit: sink.Record,
	})
	if err != nil {
		t.Fatal(err)
	}
	regTok, err := regtoken.NewHasher(bytes.Repeat([]byte{5}, regtoken.MinPepperBytes))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := admin.NewService(admin.Config{
		Store: store, Hasher: h, Keys: ring, APIKeys: ak, Now: c.Now, Logger: log, Audit: sink.Record, RegistrationTokens: regTok,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := console.Config{
		Service: svc, Store: store, Hasher: h, Sealer: box, Now: c.Now, Logger: log,
		Audit: sink.Record, Issuer: "https://id.example.test",
	}
	for _, o := range opts {
		o(&cfg)
	}
	con, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	con.Register(r)
	var srv *httptest.Server
	if cfg.Secure {
		srv = httptest.NewTLSServer(r)
	} else {
		srv = httptest.NewServer(r)
	}
	t.Cleanup(srv.Close)
	return &env{t: t, clock: c, store: store, box: box, hasher: h, svc: svc, ring: ring, console: con, srv: srv}
}

// addUser creates a user with the password adminPassword.
func (e *env) addUser(name string, scopes ...string) *storage.User {
	e.t.Helper()
	h, err := e.hasher.Hash(context.Background(), []byte(adminPassword))
	if err != nil {
		e.t.Fatal(err)
	}
	u := &storage.User{ID: "u-" + name, Username: name, PasswordHash: string(h), AdminScopes: scopes,
		CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now()}
	if err := e.store.CreateUser(context.Background(), u); err != nil {
		e.t.Fatal(err)
	}
	return u
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see every 303.
type browser struct {
	t    testing.TB
	e    *env
	c    *http.Client
	base *url.URL
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{
		Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	if tr, ok := e.srv.Client().Transport.(*http.Transport); ok {
		c.Transport = tr.Clone()
		c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // test server
	}
	u, _ := url.Parse(e.srv.URL)
	return &browser{t: e.t, e: e, c: c, base: u}
}

type page struct {
	status int
	body   string
	resp   *http.Response
}

func (p page) location() string { return p.resp.Header.Get("Location") }

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, body: string(body), resp: resp}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.e.srv.URL+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf returns the CSRF token of the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	p := b.get(path)
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("no csrf token on %s (status %d)", path, p.status)
	}
	return m[1]
}

// submit posts form to action with the CSRF token of the page at from.
func (b *browser) submit(from, action string, form url.Values) page {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf_token", b.csrf(from))
	return b.post(action, form)
}

// login signs in with username and the test password and expects the
// overview redirect.
func (b *browser) login(username string) {
	b.t.Helper()
	p := b.submit("/admin/login", "/admin/login", url.Values{"username": {username}, "password": {adminPassword}})
	if p.status != http.StatusSeeOther || p.location() != "/admin/" {
		b.t.Fatalf("login: status %d location %q body %s", p.status, p.location(), p.body)
	}
}

// cookie returns the value of the named cookie in the jar.
func (b *browser) cookie(name string) string {
	for _, c := range b.c.Jar.Cookies(b.base) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *browser) setCookie(name, value string) {
	b.c.Jar.SetCookies(b.base, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}
