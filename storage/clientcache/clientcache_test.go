package clientcache_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/storage/clientcache"
	"github.com/bulwark-auth/bulwark/storage/memory"
	"github.com/bulwark-auth/bulwark/storage/postgres/pgtest"
	"github.com/bulwark-auth/bulwark/storage/storagetest"
)

// backends are the inner stores every behavioural test runs on.
var backends = []struct {
	name string
	open func(t *testing.T) storage.Store
}{
	{"backend=memory", func(*testing.T) storage.Store { return memory.New(memory.Config{}) }},
	{"backend=postgres", func(t *testing.T) storage.Store { return pgtest.NewStore(t) }},
}

// counting is an inner store that counts GetClient calls and can run a
// hook between reading the client and returning it.
type counting struct {
	storage.Store
	gets atomic.Int64
	// afterRead, when set before use, runs after the inner read.
	afterRead func(id string)
}

func (c *counting) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c.gets.Add(1)
	fc, err := c.Store.GetClient(ctx, id)
	if c.afterRead != nil {
		c.afterRead(id)
	}
	return fc, err
}

func newClient(id string) *storage.Client {
	return &storage.Client{
		ID:                      id,
		SecretHash:              "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", // #nosec G101 -- fixed test fixture hash, not a credential
		Name:                    "Client " + id,
		RedirectURIs:            []string{"https://app.example/cb"},
		GrantTypes:              []string{"client_credentials"},
		ResponseTypes:           []string{"code"},
		Scopes:                  []string{"read", "write"},
		Audience:                []string{"https://api.example"},
		TokenEndpointAuthMethod: storage.AuthMethodSecretBasic,
		ApplicationType:         storage.AppTypeWeb,
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func getClient(t *testing.T, s storage.Store, id string) *storage.Client {
	t.Helper()
	fc, err := s.GetClient(t.Context(), id)
	must(t, err)
	c, ok := fc.(*storage.Client)
	if !ok {
		t.Fatalf("GetClient returned %T, want *storage.Client", fc)
	}
	return c
}

func wantNotFound(t *testing.T, s storage.Store, id string) {
	t.Helper()
	if fc, err := s.GetClient(t.Context(), id); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetClient(%q) = %v, %v; want ErrNotFound", id, fc, err)
	}
}

// eventually polls cond every few milliseconds for at most d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// run starts s.Run, waits until it is subscribed and stops it when the
// test ends (before the inner store is closed).
func run(t *testing.T, s *clientcache.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	eventually(t, 5*time.Second, "subscription", func() bool { return s.Stats().Subscribed })
}

// TestConformance: the decorator changes no semantic of the store it wraps,
// with Run following its own notifications.
func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			storagetest.Run(t, func(t *testing.T) storage.Store {
				s := clientcache.New(b.open(t), clientcache.Config{})
				run(t, s)
				return s
			})
		})
	}
}

func TestSecondGetServedFromCache(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			inner := &counting{Store: b.open(t)}
			s := clientcache.New(inner, clientcache.Config{})
			must(t, s.CreateClient(t.Context(), newClient("app")))

			first := getClient(t, s, "app")
			second := getClient(t, s, "app")
			if n := inner.gets.Load(); n != 1 {
				t.Fatalf("inner GetClient called %d times, want 1", n)
			}
			if first.Name != second.Name || !slices.Equal(first.Scopes, second.Scopes) || first.Version != second.Version {
				t.Fatalf("cached client differs: %+v vs %+v", first, second)
			}
			if st := s.Stats(); st.Hits != 1 || st.Misses != 1 || st.Entries != 1 {
				t.Fatalf("stats %+v, want 1 hit, 1 miss, 1 entry", st)
			}
		})
	}
}

// TestReturnsCopies: a caller changing its client cannot change the cache.
func TestReturnsCopies(t *testing.T) {
	s := clientcache.New(memory.New(memory.Config{}), clientcache.Config{})
	must(t, s.CreateClient(t.Context(), newClient("app")))
	for range 2 { // the miss path and the hit path
		c := getClient(t, s, "app")
		c.Scopes[0] = "admin"
		c.Scopes = append(c.Scopes, "root")
		c.Name = "changed"
	}
	c := getClient(t, s, "app")
	if !slices.Equal(c.Scopes, []string{"read", "write"}) || c.Name != "Client app" {
		t.Fatalf("cache was mutated through a returned client: %+v", c)
	}
}

// TestErrorsNotCached: an unknown or disabled client is asked again every
// time, so creating or enabling it takes effect at once (here done behind
// the cache's back, as another replica would).
func TestErrorsNotCached(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			inner := b.open(t)
			s := clientcache.New(inner, clientcache.Config{})

			wantNotFound(t, s, "late")
			must(t, inner.CreateClient(ctx, newClient("late")))
			getClient(t, s, "late")

			off := newClient("off")
			off.Disabled = true
			must(t, inner.CreateClient(ctx, off))
			wantNotFound(t, s, "off")
			off.Disabled = false
			must(t, inner.UpdateClient(ctx, off, off.Version))
			getClient(t, s, "off")
		})
	}
}

// TestAdminReadsBypassCache: ClientByID and ListClients show the stored
// client even while GetClient still serves a cached copy of a change made
// behind the cache's back.
func TestAdminReadsBypassCache(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			inner := b.open(t)
			s := clientcache.New(inner, clientcache.Config{TTL: time.Hour})
			c := newClient("app")
			must(t, s.CreateClient(ctx, c))
			getClient(t, s, "app")

			c.Name = "Renamed"
			must(t, inner.UpdateClient(ctx, c, c.Version))

			if got := getClient(t, s, "app"); got.Name != "Client app" {
				t.Fatalf("GetClient name %q: want the cached copy (no notification was sent)", got.Name)
			}
			byID, err := s.ClientByID(ctx, "app")
			must(t, err)
			if byID.Name != "Renamed" {
				t.Fatalf("ClientByID name %q, want the stored Renamed", byID.Name)
			}
			list, err := s.ListClients(ctx, storage.ListOptions{})
			must(t, err)
			if len(list) != 1 || list[0].Name != "Renamed" {
				t.Fatalf("ListClients = %+v, want the stored client", list)
			}
		})
	}
}

// TestMutationsVisibleAtOnce: every client write through the decorator is
// seen by the next GetClient on the same replica, and is announced on
// Channel for the others.
func TestMutationsVisibleAtOnce(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(ctx context.Context, s storage.Store, c *storage.Client) error
		check  func(t *testing.T, s storage.Store)
	}{
		{"case=disable", func(ctx context.Context, s storage.Store, c *storage.Client) error {
			c.Disabled = true
			return s.UpdateClient(ctx, c, c.Version)
		}, func(t *testing.T, s storage.Store) { wantNotFound(t, s, "app") }},
		{"case=change-scopes", func(ctx context.Context, s storage.Store, c *storage.Client) error {
			c.Scopes = []string{"read"}
			return s.UpdateClient(ctx, c, c.Version)
		}, func(t *testing.T, s storage.Store) {
			if got := getClient(t, s, "app"); !slices.Equal(got.Scopes, []string{"read"}) {
				t.Fatalf("scopes %v, want [read]", got.Scopes)
			}
		}},
		{"case=delete", func(ctx context.Context, s storage.Store, c *storage.Client) error {
			return s.DeleteClient(ctx, c.ID)
		}, func(t *testing.T, s storage.Store) { wantNotFound(t, s, "app") }},
		{"case=delete-recreate", func(ctx context.Context, s storage.Store, c *storage.Client) error {
			if err := s.DeleteClient(ctx, c.ID); err != nil {
				return err
			}
			n := newClient(c.ID)
			n.Name = "Reborn"
			return s.CreateClient(ctx, n)
		}, func(t *testing.T, s storage.Store) {
			if got := getClient(t, s, "app"); got.Name != "Reborn" {
				t.Fatalf("name %q, want Reborn", got.Name)
			}
		}},
	}
	for _, b := range backends {
		for _, tc := range cases {
			t.Run(b.name+"/"+tc.name, func(t *testing.T) {
				ctx := t.Context()
				inner := b.open(t)
				s := clientcache.New(inner, clientcache.Config{TTL: time.Hour})
				c := newClient("app")
				must(t, s.CreateClient(ctx, c))
				getClient(t, s, "app")

				notes, err := inner.Subscribe(ctx, clientcache.Channel)
				must(t, err)
				must(t, tc.mutate(ctx, s, c))
				tc.check(t, s)
				select {
				case p := <-notes:
					if p != "app" {
						t.Fatalf("notified %q, want app", p)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("no notification on " + clientcache.Channel)
				}
			})
		}
	}
}

// TestFailedMutationKeepsCache: a write the store refuses (stale version)
// changes nothing, so it neither evicts nor notifies.
func TestFailedMutationKeepsCache(t *testing.T) {
	ctx := t.Context()
	inner := &counting{Store: memory.New(memory.Config{})}
	s := clientcache.New(inner, clientcache.Config{})
	c := newClient("app")
	must(t, s.CreateClient(ctx, c))
	getClient(t, s, "app")
	notes, err := inner.Subscribe(ctx, clientcache.Channel)
	must(t, err)

	c.Disabled = true
	if err := s.UpdateClient(ctx, c, c.Version+5); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("UpdateClient with a stale version: %v, want ErrPreconditionFailed", err)
	}
	if err := s.DeleteClient(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("DeleteClient of an unknown client: %v, want ErrNotFound", err)
	}
	getClient(t, s, "app")
	if n := inner.gets.Load(); n != 1 {
		t.Fatalf("inner GetClient called %d times, want 1 (cache kept)", n)
	}
	if len(notes) != 0 {
		t.Fatalf("%d notifications for failed writes, want none", len(notes))
	}
}

func TestTTL(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := t0
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	set := func(at time.Time) { mu.Lock(); clock = at; mu.Unlock() }

	inner := &counting{Store: memory.New(memory.Config{})}
	s := clientcache.New(inner, clientcache.Config{TTL: 30 * time.Second, Now: now})
	c := newClient("app")
	must(t, s.CreateClient(ctx, c))
	getClient(t, s, "app")

	// A change the cache was not told about (a lost notification).
	c.Name = "Renamed"
	must(t, inner.UpdateClient(ctx, c, c.Version))

	steps := []struct {
		at        time.Time
		wantName  string
		wantInner int64
	}{
		{t0.Add(29 * time.Second), "Client app", 1},
		{t0.Add(30 * time.Second), "Renamed", 2}, // expired exactly at TTL
		{t0.Add(59 * time.Second), "Renamed", 2}, // re-cached at 30s
		{t0.Add(61 * time.Second), "Renamed", 3},
	}
	for _, st := range steps {
		set(st.at)
		got := getClient(t, s, "app")
		if got.Name != st.wantName || inner.gets.Load() != st.wantInner {
			t.Fatalf("at +%v: name %q after %d inner reads, want %q after %d",
				st.at.Sub(t0), got.Name, inner.gets.Load(), st.wantName, st.wantInner)
		}
	}
}

func TestMaxEntries(t *testing.T) {
	ctx := t.Context()
	inner := &counting{Store: memory.New(memory.Config{})}
	s := clientcache.New(inner, clientcache.Config{MaxEntries: 3})
	ids := []string{"a", "b", "c", "d"}
	for _, id := range ids {
		must(t, s.CreateClient(ctx, newClient(id)))
		getClient(t, s, id)
	}
	if n := s.Stats().Entries; n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
	before := inner.gets.Load()
	for _, id := range []string{"b", "c", "d"} {
		getClient(t, s, id)
	}
	if n := inner.gets.Load() - before; n != 0 {
		t.Fatalf("newest entries cost %d inner reads, want 0", n)
	}
	getClient(t, s, "a") // the oldest, dropped first
	if n := inner.gets.Load() - before; n != 1 {
		t.Fatalf("oldest entry cost %d inner reads, want 1", n)
	}
	if n := s.Stats().Entries; n != 3 {
		t.Fatalf("%d entries after re-adding a, want 3", n)
	}
}

// TestStaleReinsert: a GetClient that read the client before an eviction
// and returns after it must not put the old value back in the cache.
func TestStaleReinsert(t *testing.T) {
	cases := []struct {
		name  string
		evict func(t *testing.T, s *clientcache.Store, inner storage.Store, c *storage.Client)
	}{
		{"case=update-through-cache", func(t *testing.T, s *clientcache.Store, _ storage.Store, c *storage.Client) {
			c.Disabled = true
			must(t, s.UpdateClient(t.Context(), c, c.Version))
		}},
		{"case=notification-from-other-replica", func(t *testing.T, s *clientcache.Store, inner storage.Store, c *storage.Client) {
			c.Disabled = true
			must(t, inner.UpdateClient(t.Context(), c, c.Version))
			ev := s.Stats().Evictions
			must(t, inner.Notify(t.Context(), clientcache.Channel, c.ID))
			eventually(t, 5*time.Second, "eviction", func() bool { return s.Stats().Evictions > ev })
		}},
		{"case=purge", func(t *testing.T, s *clientcache.Store, inner storage.Store, c *storage.Client) {
			c.Disabled = true
			must(t, inner.UpdateClient(t.Context(), c, c.Version))
			s.Purge()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			mem := memory.New(memory.Config{})
			inner := &counting{Store: mem}
			s := clientcache.New(inner, clientcache.Config{TTL: time.Hour})
			run(t, s)
			c := newClient("app")
			must(t, s.CreateClient(ctx, c))

			read, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			inner.afterRead = func(string) {
				once.Do(func() { // block the first read only
					close(read)
					<-release
				})
			}
			slow := make(chan error, 1)
			go func() {
				_, err := s.GetClient(ctx, "app")
				slow <- err
			}()
			<-read // the slow reader holds the enabled client
			tc.evict(t, s, mem, c)
			close(release)
			if err := <-slow; err != nil {
				t.Fatalf("slow GetClient: %v", err)
			}
			wantNotFound(t, s, "app")
		})
	}
}

// TestTransactionCommitEvicts: a reader outside a transaction that changes
// a client caches the committed old value; the commit must evict it.
func TestTransactionCommitEvicts(t *testing.T) {
	cases := []struct {
		name   string
		commit bool
	}{
		{"case=commit", true},
		{"case=rollback", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := clientcache.New(pgtest.NewStore(t), clientcache.Config{TTL: time.Hour})
			c := newClient("app")
			must(t, s.CreateClient(ctx, c))

			tx, err := s.BeginTX(ctx)
			must(t, err)
			// An open transaction would keep the store from closing if the test fails.
			t.Cleanup(func() { _ = s.Rollback(tx) })
			c.Disabled = true
			must(t, s.UpdateClient(tx, c, c.Version))
			// Inside the transaction its own change is visible ...
			if _, err := s.GetClient(tx, "app"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("GetClient in the transaction: %v, want ErrNotFound", err)
			}
			// ... outside it is not yet, and the old value gets cached.
			getClient(t, s, "app")
			if n := s.Stats().Entries; n != 1 {
				t.Fatalf("%d entries, want the committed client cached", n)
			}
			if tc.commit {
				must(t, s.Commit(tx))
				wantNotFound(t, s, "app")
			} else {
				must(t, s.Rollback(tx))
				getClient(t, s, "app")
			}
		})
	}
}

// TestNestedTransaction: a savepoint's changes count as the outer
// transaction's until that commits.
func TestNestedTransaction(t *testing.T) {
	ctx := t.Context()
	s := clientcache.New(pgtest.NewStore(t), clientcache.Config{TTL: time.Hour})
	c := newClient("app")
	must(t, s.CreateClient(ctx, c))

	outer, err := s.BeginTX(ctx)
	must(t, err)
	// An open transaction would keep the store from closing if the test fails.
	t.Cleanup(func() { _ = s.Rollback(outer) })
	inner, err := s.BeginTX(outer)
	must(t, err)
	c.Disabled = true
	must(t, s.UpdateClient(inner, c, c.Version))
	must(t, s.Commit(inner))
	getClient(t, s, "app") // outside: still enabled, cached
	if _, err := s.GetClient(outer, "app"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetClient in the outer transaction: %v, want ErrNotFound", err)
	}
	must(t, s.Commit(outer))
	wantNotFound(t, s, "app")
}

// TestTwoReplicas: replica A disables a client that replica B has cached;
// B stops serving it as soon as the notification arrives, long before the
// TTL.
func TestTwoReplicas(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.NewDatabase(t)
	innerA := pgtest.OpenStore(t, dsn, nil)
	innerB := &counting{Store: pgtest.OpenStore(t, dsn, nil)}
	a := clientcache.New(innerA, clientcache.Config{TTL: time.Hour})
	b := clientcache.New(innerB, clientcache.Config{TTL: time.Hour})
	run(t, a)
	run(t, b)

	// Created under the decorators (no notification), so no in-flight
	// eviction of "x" can race with B's caching below.
	c := newClient("x")
	must(t, innerA.CreateClient(ctx, c))
	getClient(t, a, "x")
	getClient(t, b, "x")
	getClient(t, b, "x")
	if n := innerB.gets.Load(); n != 1 {
		t.Fatalf("B read the store %d times, want 1 (second read cached)", n)
	}

	c.Disabled = true
	must(t, a.UpdateClient(ctx, c, c.Version))
	wantNotFound(t, a, "x")
	start := time.Now()
	eventually(t, 5*time.Second, "B to refuse the disabled client", func() bool {
		_, err := b.GetClient(ctx, "x")
		return errors.Is(err, storage.ErrNotFound)
	})
	t.Logf("B refused the disabled client %v after A's update", time.Since(start))
}

// flaky is an inner store whose subscriptions the test ends at will.
type flaky struct {
	storage.Store
	mu   sync.Mutex
	subs []chan string
}

func (f *flaky) Subscribe(ctx context.Context, channel string) (<-chan string, error) {
	ch := make(chan string, 1)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	return ch, nil
}

func (f *flaky) last() chan string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs[len(f.subs)-1]
}

func (f *flaky) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// TestRunPurges: everything cached is dropped when the subscription ends
// (notices may have been missed) and on an empty payload.
func TestRunPurges(t *testing.T) {
	ctx := t.Context()
	inner := &flaky{Store: memory.New(memory.Config{})}
	s := clientcache.New(inner, clientcache.Config{TTL: time.Hour})
	run(t, s)
	must(t, s.CreateClient(ctx, newClient("a")))
	must(t, s.CreateClient(ctx, newClient("b")))

	fill := func() {
		getClient(t, s, "a")
		getClient(t, s, "b")
		if n := s.Stats().Entries; n != 2 {
			t.Fatalf("%d entries, want 2", n)
		}
	}
	fill()
	inner.last() <- "a"
	eventually(t, 5*time.Second, "eviction of a", func() bool { return s.Stats().Entries == 1 })

	fill()
	inner.last() <- ""
	eventually(t, 5*time.Second, "purge on empty payload", func() bool { return s.Stats().Entries == 0 })

	fill()
	close(inner.last())
	eventually(t, 5*time.Second, "purge and resubscription", func() bool {
		return inner.count() == 2 && s.Stats().Subscribed && s.Stats().Entries == 0
	})
	fill()
	inner.last() <- "b"
	eventually(t, 5*time.Second, "eviction on the new subscription", func() bool { return s.Stats().Entries == 1 })
}

// TestTransactionViewStaysPrivate: what a transaction reads of a client it
// changed is its own uncommitted view; it must neither come from the cache
// nor go into it, or other requests would see a change that may roll back.
func TestTransactionViewStaysPrivate(t *testing.T) {
	ctx := t.Context()
	s := clientcache.New(pgtest.NewStore(t), clientcache.Config{TTL: time.Hour})
	c := newClient("app")
	must(t, s.CreateClient(ctx, c))

	tx, err := s.BeginTX(ctx)
	must(t, err)
	// An open transaction would keep the store from closing if the test fails.
	t.Cleanup(func() { _ = s.Rollback(tx) })
	c.Scopes = []string{"admin"}
	must(t, s.UpdateClient(tx, c, c.Version))
	getClient(t, s, "app") // a concurrent request caches the committed client
	for range 2 {
		fc, err := s.GetClient(tx, "app")
		must(t, err)
		if got := fc.(*storage.Client).Scopes; !slices.Equal(got, []string{"admin"}) {
			t.Fatalf("scopes in the transaction %v, want its own [admin]", got)
		}
		if got := getClient(t, s, "app").Scopes; !slices.Equal(got, []string{"read", "write"}) {
			t.Fatalf("scopes outside the transaction %v, want the committed [read write]", got)
		}
	}
	must(t, s.Rollback(tx))
	if got := getClient(t, s, "app").Scopes; !slices.Equal(got, []string{"read", "write"}) {
		t.Fatalf("scopes after rollback %v, want [read write]", got)
	}
}

// TestRunPurgesOnStart: what was cached before the subscription existed
// may have changed unannounced, so subscribing drops it.
func TestRunPurgesOnStart(t *testing.T) {
	ctx := t.Context()
	inner := memory.New(memory.Config{})
	s := clientcache.New(inner, clientcache.Config{TTL: time.Hour})
	c := newClient("app")
	must(t, s.CreateClient(ctx, c))
	getClient(t, s, "app")
	c.Name = "Renamed"
	must(t, inner.UpdateClient(ctx, c, c.Version)) // nobody is told
	run(t, s)
	if got := getClient(t, s, "app"); got.Name != "Renamed" {
		t.Fatalf("name %q after Run subscribed, want Renamed", got.Name)
	}
}
