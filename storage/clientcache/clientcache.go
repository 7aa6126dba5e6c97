package clientcache

import (
	"container/list"
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ory/fosite"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/storage"
)

// Channel is the Notifier channel on which client ids are published when a
// client changes; every replica's Run evicts them.
const Channel = "bulwark_clients"

// Defaults for the zero Config.
const (
	DefaultTTL        = 30 * time.Second
	DefaultMaxEntries = 10000
)

var _ storage.Store = (*Store)(nil)

// Config configures a Store.
type Config struct {
	// TTL bounds how long an entry is served. Notifications evict changed
	// clients within milliseconds; the TTL is the safety net for lost ones.
	// DefaultTTL when zero.
	TTL time.Duration
	// MaxEntries caps the number of cached clients; the oldest entry is
	// dropped first. DefaultMaxEntries when zero.
	MaxEntries int
	// Now is the clock for TTL expiry; time.Now when nil.
	Now func() time.Time
	// Logger receives operational warnings (lost subscription, failed
	// notify); a discarding logger when nil.
	Logger logrus.FieldLogger
}

// Stats are counters for metrics and diagnostics.
type Stats struct {
	Hits, Misses uint64
	// Evictions counts ids evicted (locally or by notification), whether
	// or not they were cached.
	Evictions uint64
	// Purges counts whole-cache purges (subscription (re)starts).
	Purges uint64
	// Entries is the number of clients currently cached.
	Entries int
	// Subscribed reports whether Run currently holds a subscription on
	// Channel, so remote changes are being evicted.
	Subscribed bool
}

// Store decorates a storage.Store with a cache of GetClient results. Every
// other method is the inner store's, except the client mutations and the
// transaction methods, which also keep the cache fresh.
type Store struct {
	storage.Store

	ttl time.Duration
	max int
	now func() time.Time
	log logrus.FieldLogger

	mu      sync.RWMutex
	entries map[string]*list.Element // values are *entry
	order   *list.List               // insertion order, oldest at the front
	// gen increases on every eviction and purge. A miss remembers it
	// before reading the inner store and inserts only if it is unchanged,
	// so a read that started before an eviction cannot put the old value
	// back after it.
	gen uint64

	hits, misses, evictions, purges atomic.Uint64
	subscribed                      atomic.Bool
}

type entry struct {
	id      string
	client  *storage.Client
	expires time.Time
}

// New wraps inner. Call Run to follow changes made by other replicas.
func New(inner storage.Store, cfg Config) *Store {
	s := &Store{
		Store:   inner,
		ttl:     cfg.TTL,
		max:     cfg.MaxEntries,
		now:     cfg.Now,
		log:     cfg.Logger,
		entries: map[string]*list.Element{},
		order:   list.New(),
	}
	if s.ttl <= 0 {
		s.ttl = DefaultTTL
	}
	if s.max <= 0 {
		s.max = DefaultMaxEntries
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		s.log = l
	}
	return s
}

// GetClient implements fosite.ClientManager from the cache when it can.
// Errors, including ErrNotFound for unknown and disabled clients, are never
// cached: a client enabled or created a moment ago must work at once.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	if st := txFrom(ctx); st != nil && st.touched(id) {
		// This transaction changed the client: only the transaction's own
		// view is right, and it must not leak into the shared cache
		// before commit.
		return s.Store.GetClient(ctx, id)
	}
	now := s.now()
	s.mu.RLock()
	if el, ok := s.entries[id]; ok {
		if e := el.Value.(*entry); now.Before(e.expires) {
			c := e.client
			s.mu.RUnlock()
			s.hits.Add(1)
			return c.Clone(), nil
		}
	}
	gen := s.gen
	s.mu.RUnlock()
	s.misses.Add(1)

	fc, err := s.Store.GetClient(ctx, id)
	if err != nil {
		return nil, err
	}
	c, ok := fc.(*storage.Client)
	if !ok || c == nil {
		return fc, nil
	}
	s.insert(id, c.Clone(), gen, now.Add(s.ttl))
	return c, nil
}

// insert caches c unless an eviction happened since gen was read.
func (s *Store) insert(id string, c *storage.Client, gen uint64, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	if el, ok := s.entries[id]; ok {
		// An expired entry, or a concurrent miss for the same id that
		// inserted first: refresh it and make it the newest.
		e := el.Value.(*entry)
		e.client, e.expires = c, expires
		s.order.MoveToBack(el)
		return
	}
	s.entries[id] = s.order.PushBack(&entry{id: id, client: c, expires: expires})
	for s.order.Len() > s.max {
		oldest := s.order.Front()
		s.order.Remove(oldest)
		delete(s.entries, oldest.Value.(*entry).id)
	}
}

// Evict drops client id from this replica's cache. It does not notify other
// replicas; mutations through Store do that themselves.
func (s *Store) Evict(id string) {
	s.mu.Lock()
	if el, ok := s.entries[id]; ok {
		s.order.Remove(el)
		delete(s.entries, id)
	}
	s.gen++
	s.mu.Unlock()
	s.evictions.Add(1)
}

// Purge empties this replica's cache.
func (s *Store) Purge() {
	s.mu.Lock()
	s.entries = map[string]*list.Element{}
	s.order.Init()
	s.gen++
	s.mu.Unlock()
	s.purges.Add(1)
}

// Stats returns the current counters.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	n := len(s.entries)
	s.mu.RUnlock()
	return Stats{
		Hits:       s.hits.Load(),
		Misses:     s.misses.Load(),
		Evictions:  s.evictions.Load(),
		Purges:     s.purges.Load(),
		Entries:    n,
		Subscribed: s.subscribed.Load(),
	}
}

// CreateClient implements storage.ClientStore. A new id cannot be cached
// positively, but a client deleted and re-created under the same id might
// still be, on a replica that missed the deletion.
func (s *Store) CreateClient(ctx context.Context, c *storage.Client) error {
	if err := s.Store.CreateClient(ctx, c); err != nil {
		return err
	}
	s.changed(ctx, c.ID)
	return nil
}

// UpdateClient implements storage.ClientStore.
func (s *Store) UpdateClient(ctx context.Context, c *storage.Client, expectVersion int64) error {
	if err := s.Store.UpdateClient(ctx, c, expectVersion); err != nil {
		return err
	}
	s.changed(ctx, c.ID)
	return nil
}

// DeleteClient implements storage.ClientStore.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	if err := s.Store.DeleteClient(ctx, id); err != nil {
		return err
	}
	s.changed(ctx, id)
	return nil
}

// changed runs after a successful write of client id: evict here, remember
// the id in the caller's transaction (evicted again on commit, when the
// change becomes visible to other readers) and tell the other replicas.
// Inside a transaction the inner Notify is delivered on commit.
func (s *Store) changed(ctx context.Context, id string) {
	if st := txFrom(ctx); st != nil {
		st.add(id)
	}
	s.Evict(id)
	if err := s.Store.Notify(ctx, Channel, id); err != nil {
		// The write stands, so it is not reported as failed (a retry
		// would hit a version conflict); other replicas catch up
		// within the TTL.
		s.log.WithError(err).WithField("client_id", id).
			Warn("clientcache: announcing client change failed; other replicas serve it until their TTL")
	}
}

// Run evicts the client ids published on Channel until ctx ends. Whenever
// the subscription starts, fails or ends early, notices may have been
// missed, so the whole cache is purged. An empty payload also purges.
func (s *Store) Run(ctx context.Context) {
	const (
		minBackoff = 100 * time.Millisecond
		maxBackoff = 10 * time.Second
	)
	backoff := minBackoff
	for ctx.Err() == nil {
		ch, err := s.Store.Subscribe(ctx, Channel)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.WithError(err).Warn("clientcache: subscribing to client changes failed")
		} else {
			// Anything cached before LISTEN took effect may have changed
			// unannounced.
			s.Purge()
			s.subscribed.Store(true)
			backoff = minBackoff
			s.follow(ctx, ch)
			s.subscribed.Store(false)
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("clientcache: subscription to client changes ended; resubscribing")
		}
		s.Purge()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// follow applies payloads from ch until it closes or ctx ends (a Notifier
// should close ch then, but Run must not hang on one that does not).
func (s *Store) follow(ctx context.Context, ch <-chan string) {
	for {
		select {
		case <-ctx.Done():
			return
		case id, ok := <-ch:
			switch {
			case !ok:
				return
			case id == "":
				s.Purge()
			default:
				s.Evict(id)
			}
		}
	}
}

// BeginTX implements fosite's storage.Transactional, remembering which
// clients the transaction changes.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	txCtx, err := s.Store.BeginTX(ctx)
	if err != nil {
		return txCtx, err
	}
	return context.WithValue(txCtx, txKey{}, &txState{parent: txFrom(ctx)}), nil
}

// Commit implements fosite's storage.Transactional. Clients the transaction
// changed were evicted when written, but a reader outside the transaction
// could have cached the committed old value since; evicting again after the
// commit closes that window on this replica (other replicas get the
// notification, which the database delivers on commit).
func (s *Store) Commit(ctx context.Context) error {
	if err := s.Store.Commit(ctx); err != nil {
		return err
	}
	st := txFrom(ctx)
	if st == nil {
		return nil
	}
	ids := st.take()
	for _, id := range ids {
		s.Evict(id)
	}
	if st.parent != nil {
		// A nested transaction (savepoint) is not visible until its
		// parent commits.
		for _, id := range ids {
			st.parent.add(id)
		}
	}
	return nil
}

type txKey struct{}

// txState is the set of clients changed in one transaction of ours.
type txState struct {
	parent *txState
	mu     sync.Mutex
	ids    map[string]struct{}
}

func txFrom(ctx context.Context) *txState {
	st, _ := ctx.Value(txKey{}).(*txState)
	return st
}

func (t *txState) add(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ids == nil {
		t.ids = map[string]struct{}{}
	}
	t.ids[id] = struct{}{}
}

// touched reports whether this transaction or an enclosing one changed id.
func (t *txState) touched(id string) bool {
	for ; t != nil; t = t.parent {
		t.mu.Lock()
		_, ok := t.ids[id]
		t.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}

func (t *txState) take() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.ids))
	for id := range t.ids {
		out = append(out, id)
	}
	t.ids = nil
	return out
}
