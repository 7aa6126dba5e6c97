package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/keys/regtoken"
	"github.com/bulwark-auth/bulwark/keys/secretbox"
	"github.com/bulwark-auth/bulwark/server/apikeyauth"
	"github.com/bulwark-auth/bulwark/server/audit"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// fastParams keep Argon2id cheap in tests; the code paths are the same.
var fastParams = hash.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

type backend struct {
	name string
	open func(t *testing.T) storage.Store
}

var backends = []backend{
	{"memory", func(*testing.T) storage.Store { return memory.New(memory.Config{}) }},
	{"postgres", func(t *testing.T) storage.Store { return pgtest.NewStore(t) }},
}

// eachBackend runs fn against every backend.
func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run("backend="+b.name, func(t *testing.T) { fn(t, newEnv(t, b.open(t))) })
	}
}

// evictLog records Evict calls.
type evictLog struct {
	mu     sync.Mutex
	hashes []string
}

func (l *evictLog) evict(h []byte) {
	l.mu.Lock()
	l.hashes = append(l.hashes, string(h))
	l.mu.Unlock()
}

// env is a whole admin API over real components: a store, Argon2id, the
// signing key ring, the API key service and the real apikeyauth
// middleware. Every request in these tests carries a real API key.
type env struct {
	t      *testing.T
	store  storage.Store
	svc    *Service
	hasher *hash.Hasher
	ring   *keys.Ring
	keys   *apikeys.Service
	srv    *httptest.Server
	evicts *evictLog
	// tokens by label; ids likewise.
	tokens map[string]string
	ids    map[string]string
}

// keyScopes are the API keys every env holds.
var keyScopes = map[string][]string{
	"root":         apikeys.AllScopes,
	"clients-read": {apikeys.ScopeClientsRead},
	"clients":      {apikeys.ScopeClientsRead, apikeys.ScopeClientsWrite},
	"users":        {apikeys.ScopeUsers},
	"apikeys":      {apikeys.ScopeAPIKeys},
	"apikeys-only": {apikeys.ScopeAPIKeys, apikeys.ScopeIntrospect},
	"keys":         {apikeys.ScopeKeys},
	"audit":        {apikeys.ScopeAuditRead},
	"none":         {apikeys.ScopeIntrospect},
}

func quietLogger() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func newEnv(t *testing.T, store storage.Store) *env {
	t.Helper()
	ctx := context.Background()
	h, err := hash.New(fastParams)
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New([][]byte{bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	log := quietLogger()
	sink := audit.NewSink(store, log, nil)
	ring, err := keys.NewRing(ctx, keys.Config{
		Store: store, Locker: store, Notifier: store, Sealer: box,
		Algorithms: []string{"ES256", "EdDSA"}, Logger: log, Audit: sink.Record,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	aks, err := apikeys.New(apikeys.Config{
		Store: store, Locker: store, Notifier: store, Hasher: hash.NewCached(h, hash.CacheConfig{}),
		Sealer: box, Logger: log, Audit: sink.Record,
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := &evictLog{}
	regTok, err := regtoken.NewHasher(bytes.Repeat([]byte{9}, regtoken.MinPepperBytes))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(Config{
		Store: store, Hasher: h, Keys: ring, APIKeys: aks, Evict: ev.evict, RegistrationTokens: regTok,
		AllowedScopes: []string{"openid", "profile", "email", "offline_access", "read", "write"},
		Logger:        log, Audit: sink.Record,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	NewAPI(svc, apikeyauth.Middleware(aks, apikeyauth.WithLogger(log))).Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	e := &env{t: t, store: store, svc: svc, hasher: h, ring: ring, keys: aks, srv: srv, evicts: ev,
		tokens: map[string]string{}, ids: map[string]string{}}
	for label, scopes := range keyScopes {
		tok, k, err := aks.Create(ctx, apikeys.CreateRequest{
			Name: "test " + label, OwnerType: apikeys.OwnerService, OwnerID: label, Scopes: scopes, CreatedBy: "test",
		})
		if err != nil {
			t.Fatalf("create key %s: %v", label, err)
		}
		e.tokens[label], e.ids[label] = tok, k.ID
	}
	return e
}

// resp is a decoded response.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v: %s", r.status, err, r.body)
	}
	return m
}

// do sends a request as key label ("" = no Authorization). body may be a
// string (sent as is) or a value (JSON-encoded); headers are pairs.
func (e *env) do(label, method, path string, body any, headers ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+Prefix+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if label != "" {
		tok, ok := e.tokens[label]
		if !ok {
			tok = label // a raw token
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// expect fails unless r has status (and, when code is set, that error code).
func expect(t *testing.T, r resp, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if len(r.body) == 0 {
		return nil
	}
	m := r.json(t)
	if code != "" && m["error"] != code {
		t.Fatalf("error %v, want %s: %s", m["error"], code, r.body)
	}
	return m
}

// hasField reports whether an error body names field among its problems.
func hasField(m map[string]any, field string) bool {
	fs, _ := m["fields"].([]any)
	for _, f := range fs {
		if fm, _ := f.(map[string]any); fm["field"] == field {
			return true
		}
	}
	return false
}

// issueTokens stores an access token and a refresh token of subject for
// client, as fosite would, under signatures prefix+"-at"/"-rt".
func (e *env) issueTokens(prefix, clientID, subject string) {
	e.t.Helper()
	ctx := context.Background()
	c, err := e.store.ClientByID(ctx, clientID)
	if err != nil {
		e.t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	sess := storage.NewSession(subject)
	sess.ClientID = clientID
	for _, tt := range []fosite.TokenType{fosite.AccessToken, fosite.RefreshToken} {
		sess.SetExpiresAt(tt, now.Add(time.Hour))
	}
	req := &fosite.Request{
		ID: prefix + "-req", RequestedAt: now, Client: c,
		RequestedScope: fosite.Arguments{"read"}, GrantedScope: fosite.Arguments{"read"}, Session: sess,
	}
	if err := e.store.CreateAccessTokenSession(ctx, prefix+"-at", req); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.CreateRefreshTokenSession(ctx, prefix+"-rt", prefix+"-at", req); err != nil {
		e.t.Fatal(err)
	}
}

// tokenLive reports whether the access token prefix+"-at" still exists.
func (e *env) tokenLive(prefix string) bool {
	e.t.Helper()
	_, err := e.store.GetAccessTokenSession(context.Background(), prefix+"-at", storage.NewSession(""))
	return err == nil
}

// auditEvents returns the stored audit events named event.
func (e *env) auditEvents(event string) []*storage.AuditEvent {
	e.t.Helper()
	evs, err := e.store.ListAudit(context.Background(), storage.AuditFilter{Event: event, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
