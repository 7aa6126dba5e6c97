package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"github.com/ory/fosite"
	"html"
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

	"github.com/go-jose/go-jose/v3"
	"github.com/gorilla/mux"
	"github.com/ory/fosite/token/jwt"
	"github.com/sirupsen/logrus"
	"golang.org/x/oauth2"

	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/server/dpop"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

const (
	testPassword   = "correct horse battery staple"
	webSecret      = "web-client-secret-0123456789"
	svcSecret      = "svc-client-secret-0123456789"
	legacySecret   = "legacy-client-secret-0123456"
	webRedirect    = "https://client.example/cb"
	nativeRedirect = "http://127.0.0.1/callback"
	apiAudience    = "https://api.example"
)

type env struct {
	t       *testing.T
	srv     *httptest.Server
	store   *memory.Store
	p       *Provider
	hasher  *hash.Hasher
	jwksRaw []byte
	// clientKey signs private_key_jwt assertions of "jwt-client".
	clientKey *ecdsa.PrivateKey

	mu     sync.Mutex
	events []storage.AuditEvent
}

func (e *env) audited(event string) []storage.AuditEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []storage.AuditEvent
	for _, ev := range e.events {
		if ev.Event == event {
			out = append(out, ev)
		}
	}
	return out
}

func (e *env) url(path string) string { return e.srv.URL + path }

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	hasher := fastHasher(t)
	clientKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	e := &env{t: t, hasher: hasher, clientKey: clientKey, srv: srv}
	p, store, jwks := newTestProvider(t, srv.URL, hasher, testLogger(t), func(_ context.Context, ev storage.AuditEvent) {
		e.mu.Lock()
		e.events = append(e.events, ev)
		e.mu.Unlock()
	})
	e.store, e.jwksRaw = store, jwks
	p.Register(r)
	e.p = p

	hashOf := func(s string) string {
		h, err := hasher.Hash(ctx, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(store.CreateUser(ctx, &storage.User{ID: "user-alice", Username: "alice", Email: "alice@example.com", PasswordHash: hashOf(testPassword)}))
	must(store.CreateUser(ctx, &storage.User{ID: "user-bob", Username: "bob", PasswordHash: hashOf(testPassword), Disabled: true}))
	code := []string{"authorization_code", "refresh_token"}
	must(store.CreateClient(ctx, &storage.Client{
		ID: "web-app", Name: "Web App", SecretHash: hashOf(webSecret),
		RedirectURIs: []string{webRedirect}, GrantTypes: code, ResponseTypes: []string{"code"},
		Scopes: []string{"openid", "profile", "email", "offline_access", "api:read"}, Audience: []string{apiAudience},
		TokenEndpointAuthMethod: storage.AuthMethodSecretBasic, ApplicationType: storage.AppTypeWeb,
	}))
	must(store.CreateClient(ctx, &storage.Client{
		ID: "native-app", Name: "Native App",
		RedirectURIs: []string{nativeRedirect}, GrantTypes: code, ResponseTypes: []string{"code"},
		Scopes: []string{"openid", "offline_access"}, TokenEndpointAuthMethod: storage.AuthMethodNone,
		ApplicationType: storage.AppTypeNative,
	}))
	must(store.CreateClient(ctx, &storage.Client{
		ID: "web-loopback", Name: "Loopback Web", SecretHash: hashOf(webSecret),
		RedirectURIs: []string{"http://127.0.0.1:9999/cb"}, GrantTypes: code, ResponseTypes: []string{"code"},
		Scopes: []string{"openid"}, TokenEndpointAuthMethod: storage.AuthMethodSecretBasic, ApplicationType: storage.AppTypeWeb,
	}))
	must(store.CreateClient(ctx, &storage.Client{
		ID: "legacy", Name: "Legacy", SecretHash: hashOf(legacySecret), PKCEOptional: true, SkipConsent: true,
		RedirectURIs: []string{webRedirect}, GrantTypes: code, ResponseTypes: []string{"code"},
		Scopes: []string{"openid"}, TokenEndpointAuthMethod: storage.AuthMethodSecretPost, ApplicationType: storage.AppTypeWeb,
	}))
	must(store.CreateClient(ctx, &storage.Client{
		ID: "svc", Name: "Service", SecretHash: hashOf(svcSecret),
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"api:read", "api:write"}, Audience: []string{apiAudience},
		TokenEndpointAuthMethod: storage.AuthMethodSecretBasic,
	}))
	must(store.CreateClient(ctx, &storage.Client{
		ID: "jwt-client", Name: "JWT Client",
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"api:read"},
		TokenEndpointAuthMethod: storage.AuthMethodPrivateKeyJWT, TokenEndpointAuthSigningAlg: "ES256",
		JWKS: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &clientKey.PublicKey, KeyID: "client-kid", Algorithm: "ES256", Use: "sig"}}},
	}))
	return e
}

func (e *env) webConfig(scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: "web-app", ClientSecret: webSecret, RedirectURL: webRedirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: e.url(pathAuthorize), TokenURL: e.url(pathToken), AuthStyle: oauth2.AuthStyleInHeader},
	}
}

// browser is a scripted user agent: a cookie jar, and redirects followed
// only while they stay on the server under test.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	return &browser{e: e, c: &http.Client{
		Jar:     jar,
		Timeout: 20 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != host || len(via) > 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}}
}

var hiddenField = regexp.MustCompile(`name="(csrf_token|return_to)" value="([^"]*)"`)

func formFields(body string) url.Values {
	v := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (b *browser) get(u string) *http.Response {
	b.e.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return resp
}

func (b *browser) post(u string, v url.Values) *http.Response {
	b.e.t.Helper()
	resp, err := b.c.PostForm(u, v)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return resp
}

// authorize drives the pages from start until the server redirects away
// from itself, signing in as alice and answering consent with decision.
// It returns that final redirect and which pages were shown.
func (b *browser) authorize(start, decision string) (*url.URL, []string) {
	t := b.e.t
	t.Helper()
	var pages []string
	resp := b.get(start)
	for i := 0; i < 6; i++ {
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			resp.Body.Close()
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			return loc, pages
		}
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("page status %d: %s", resp.StatusCode, body)
		}
		fields := formFields(body)
		switch {
		case strings.Contains(body, `action="/login"`):
			pages = append(pages, "login")
			fields.Set("username", "alice")
			fields.Set("password", testPassword)
			resp = b.post(b.e.url(pathLogin), fields)
		case strings.Contains(body, `action="/consent"`):
			pages = append(pages, "consent")
			fields.Set("decision", decision)
			resp = b.post(b.e.url(pathConsent), fields)
		default:
			t.Fatalf("unexpected page: %s", body)
		}
	}
	t.Fatal("too many pages")
	return nil, nil
}

// postForm sends a form to the server, optionally with HTTP Basic.
func (e *env) postForm(path string, v url.Values, user, pass string) (*http.Response, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url(path), strings.NewReader(v.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	body := readBody(e.t, resp)
	var out map[string]any
	_ = json.Unmarshal([]byte(body), &out)
	return resp, out
}

func (e *env) introspect(token string) map[string]any {
	e.t.Helper()
	resp, out := e.postForm(pathIntrospect, url.Values{"token": {token}}, "svc", svcSecret)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("introspect status %d: %v", resp.StatusCode, out)
	}
	return out
}

// testLogger sends the provider's log to the test log, so a failing test
// shows why the server refused a request.
func testLogger(t *testing.T) logrus.FieldLogger {
	l := logrus.New()
	l.SetLevel(logrus.DebugLevel)
	l.SetOutput(testWriter{t})
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func ecdsaKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// fastHasher is Argon2id with tiny parameters: the tests exercise the
// protocol, not the cost of hashing.
func fastHasher(tb testing.TB) *hash.Hasher {
	tb.Helper()
	h, err := hash.New(hash.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// newTestProvider builds a provider on a fresh memory store, signing with
// a fresh ES256 test key; it returns the provider, the store and the JWKS
// the provider serves. audit may be nil.
func newTestProvider(tb testing.TB, issuer string, hasher fosite.Hasher, log logrus.FieldLogger, audit func(context.Context, storage.AuditEvent)) (*Provider, *memory.Store, []byte) {
	tb.Helper()
	signKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	priv := &jose.JSONWebKey{Key: signKey, KeyID: "test-kid-1", Algorithm: "ES256", Use: "sig"}
	signer := &jwt.DefaultSigner{GetPrivateKey: func(context.Context) (interface{}, error) { return priv, nil }}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{priv.Public()}})
	if err != nil {
		tb.Fatal(err)
	}
	store := memory.New(memory.Config{})
	// DPoP is on, as in production; nonces are required at the token
	// endpoint (the default policy).
	proofs, err := dpop.New(dpop.Config{Store: store, NonceKeys: [][]byte{[]byte("dpop-nonce-key-0123456789-0123456789")}})
	if err != nil {
		tb.Fatal(err)
	}
	p, err := New(Config{
		DPoP:              proofs,
		Issuer:            issuer,
		Store:             store,
		AccessTokenSigner: signer,
		IDTokenSigner:     signer,
		AccessTokenAlg:    "ES256",
		IDTokenAlg:        "ES256",
		JWKS:              func() ([]byte, string) { return jwks, "jwks-v1" },
		Hasher:            hasher,
		GlobalSecret:      []byte("0123456789abcdef0123456789abcdef"),
		Logger:            log,
		Audit:             audit,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return p, store, jwks
}
