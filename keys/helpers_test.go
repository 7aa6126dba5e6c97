package keys_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/keys"
	"github.com/bulwark-auth/bulwark/keys/secretbox"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
)

// clock is a settable clock shared by the ring and the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// auditLog collects audit events from any number of rings.
type auditLog struct {
	mu     sync.Mutex
	events []storage.AuditEvent
}

func (a *auditLog) record(_ context.Context, e storage.AuditEvent) {
	a.mu.Lock()
	a.events = append(a.events, e)
	a.mu.Unlock()
}

func (a *auditLog) count(event, alg string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.events {
		if e.Event == event && (alg == "" || e.Details["alg"] == alg) {
			n++
		}
	}
	return n
}

// syncBuffer is a log sink safe for concurrent rings.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	secretA = bytes.Repeat([]byte("A"), 32)
	secretB = bytes.Repeat([]byte("B"), 32)
)

func newBox(t testing.TB, secrets ...[]byte) *secretbox.Box {
	t.Helper()
	if len(secrets) == 0 {
		secrets = [][]byte{secretA}
	}
	b, err := secretbox.New(secrets)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// env is one store with its clock, audit trail and log.
type env struct {
	clock *clock
	store *memory.Store
	audit *auditLog
	log   *syncBuffer
}

func newEnv() *env {
	c := newClock()
	return &env{clock: c, store: memory.New(memory.Config{Now: c.Now}), audit: &auditLog{}, log: &syncBuffer{}}
}

// config is a valid ring config over e; mod may change it.
func (e *env) config(t testing.TB, algs ...string) keys.Config {
	t.Helper()
	logger := logrus.New()
	logger.SetOutput(e.log)
	logger.SetLevel(logrus.DebugLevel)
	return keys.Config{
		Store:      e.store,
		Locker:     e.store,
		Notifier:   e.store,
		Sealer:     newBox(t),
		Algorithms: algs,
		Now:        e.clock.Now,
		Logger:     logger,
		Audit:      e.audit.record,
	}
}

func (e *env) ring(t testing.TB, cfg keys.Config) *keys.Ring {
	t.Helper()
	r, err := keys.NewRing(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *env) rows(t testing.TB) []*storage.SigningKey {
	t.Helper()
	rows, err := e.store.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func inState(rows []*storage.SigningKey, alg string, state storage.KeyState) []*storage.SigningKey {
	var out []*storage.SigningKey
	for _, k := range rows {
		if k.Algorithm == alg && k.State == state {
			out = append(out, k)
		}
	}
	return out
}

// jwksKids parses a JWKS body and returns its keys by kid, failing on any
// private part.
func jwksKids(t testing.TB, body []byte) map[string]jose.JSONWebKey {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("JWKS does not parse: %v", err)
	}
	out := map[string]jose.JSONWebKey{}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			t.Fatalf("JWKS holds a private key (kid %s)", k.KeyID)
		}
		out[k.KeyID] = k
	}
	return out
}
