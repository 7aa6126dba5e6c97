package apikeys

import (
	"context"
	"crypto/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/keys/secretbox"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/memory"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
)

// fastParams keep Argon2id cheap in tests; the code paths are the same.
var fastParams = hash.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// clock is a settable test clock.
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

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// backendStore is what a replica's service needs of a backend.
type backendStore interface {
	storage.APIKeyStore
	storage.Locker
	storage.Notifier
}

// backend opens n handles on one fresh database, as n replicas see it.
type backend struct {
	name string
	open func(t *testing.T, now func() time.Time, n int) []backendStore
}

var backends = []backend{
	{"memory", func(t *testing.T, now func() time.Time, n int) []backendStore {
		s := memory.New(memory.Config{Now: now})
		out := make([]backendStore, n)
		for i := range out {
			out[i] = s
		}
		return out
	}},
	{"postgres", func(t *testing.T, now func() time.Time, n int) []backendStore {
		dsn := pgtest.NewDatabase(t) // skips, or fails under CI=true, without Postgres
		out := make([]backendStore, n)
		for i := range out {
			out[i] = pgtest.OpenStore(t, dsn, now)
		}
		return out
	}},
}

// auditLog collects audit events.
type auditLog struct {
	mu     sync.Mutex
	events []storage.AuditEvent
}

func (a *auditLog) record(_ context.Context, e storage.AuditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
}

func (a *auditLog) count(event string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, e := range a.events {
		if e.Event == event {
			n++
		}
	}
	return n
}

func newBox(t testing.TB) *secretbox.Box {
	t.Helper()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	b, err := secretbox.New([][]byte{secret})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fixture struct {
	svc    *Service
	cached *hash.Cached
	store  backendStore
	clock  *clock
	audit  *auditLog
}

// newService builds a replica's service on st with its own hash cache.
func newService(t testing.TB, st backendStore, c *clock, box *secretbox.Box, p hash.Params) *fixture {
	t.Helper()
	h, err := hash.New(p)
	if err != nil {
		t.Fatal(err)
	}
	cached := hash.NewCached(h, hash.CacheConfig{Now: c.Now})
	al := &auditLog{}
	svc, err := New(Config{
		Store: st, Locker: st, Notifier: st, Hasher: cached, Sealer: box,
		Now: c.Now, Audit: al.record,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, cached: cached, store: st, clock: c, audit: al}
}

// setup is one replica on a fresh database of backend b.
func setup(t *testing.T, b backend) *fixture {
	t.Helper()
	c := newClock()
	return newService(t, b.open(t, c.Now, 1)[0], c, newBox(t), fastParams)
}

func (f *fixture) create(t testing.TB, mutate func(*CreateRequest)) (string, *storage.APIKey) {
	t.Helper()
	req := CreateRequest{
		Name: "ci deploy", OwnerType: OwnerService, OwnerID: "deployer",
		Scopes: []string{ScopeIntrospect}, CreatedBy: "test",
	}
	if mutate != nil {
		mutate(&req)
	}
	tok, k, err := f.svc.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return tok, k
}

// countingHasher counts the calls that cost one Argon2id computation when
// they miss the cache (every Compare of a wrong secret, every DummyCompare).
type countingHasher struct {
	cacheHasher
	compares, dummies atomic.Int64
}

func (c *countingHasher) Compare(ctx context.Context, h, d []byte) error {
	c.compares.Add(1)
	return c.cacheHasher.Compare(ctx, h, d)
}

func (c *countingHasher) DummyCompare(ctx context.Context, d []byte) {
	c.dummies.Add(1)
	c.cacheHasher.DummyCompare(ctx, d)
}

// countingStore counts every call to the key store.
type countingStore struct {
	storage.APIKeyStore
	calls atomic.Int64
}

func (c *countingStore) CreateAPIKey(ctx context.Context, k *storage.APIKey) error {
	c.calls.Add(1)
	return c.APIKeyStore.CreateAPIKey(ctx, k)
}

func (c *countingStore) APIKeyByID(ctx context.Context, id string) (*storage.APIKey, error) {
	c.calls.Add(1)
	return c.APIKeyStore.APIKeyByID(ctx, id)
}

func (c *countingStore) ListAPIKeys(ctx context.Context, o storage.ListOptions) ([]*storage.APIKey, error) {
	c.calls.Add(1)
	return c.APIKeyStore.ListAPIKeys(ctx, o)
}

func (c *countingStore) UpdateAPIKey(ctx context.Context, k *storage.APIKey, v int64) error {
	c.calls.Add(1)
	return c.APIKeyStore.UpdateAPIKey(ctx, k, v)
}

func (c *countingStore) TouchAPIKeys(ctx context.Context, m map[string]time.Time) error {
	c.calls.Add(1)
	return c.APIKeyStore.TouchAPIKeys(ctx, m)
}
