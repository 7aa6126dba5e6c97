package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

var _ storage.Store = (*Store)(nil)

// Config configures a Store.
type Config struct {
	// Now is the store's clock (expiry of login sessions, consents and
	// client assertion JTIs). Nil means time.Now.
	Now func() time.Time
}

// stamp is the time the store assigns to a record (CreatedAt, UpdatedAt,
// GrantedAt, audit Time), at the microsecond precision Postgres keeps, so a
// caller sees the same values from either backend.
func (s *Store) stamp() time.Time { return s.now().Truncate(time.Microsecond) }

// created fills zero creation timestamps as Postgres does: created defaults
// to now and updated to created.
func (s *Store) created(created, updated time.Time) (time.Time, time.Time) {
	if created.IsZero() {
		created = s.stamp()
	}
	if updated.IsZero() {
		updated = created
	}
	return created, updated
}

// Store is an in-memory storage.Store. The zero value is not usable; call New.
type Store struct {
	now func() time.Time

	// txMu is held exclusively by an open transaction and shared by every
	// other call, so a transaction sees no concurrent writer and its journal
	// can be replayed without clobbering anyone.
	txMu sync.RWMutex
	// mu guards the maps below among concurrent non-transactional calls.
	mu sync.RWMutex

	clients     map[string]*storage.Client
	jtis        map[string]time.Time
	tokens      map[tokenKind]map[string]*tokenRow
	users       map[string]*storage.User
	consents    map[pairKey]*storage.Consent
	logins      map[string]*storage.LoginSession
	signingKeys map[string]*storage.SigningKey
	apiKeys     map[string]*storage.APIKey
	audit       map[int64]*storage.AuditEvent
	nextAuditID int64
	blocks      map[pairKey]*storage.Block
	// Registration (registration.go): initial access tokens by id, and
	// registration access token hashes by client id.
	initialTokens map[string]*initialTokenRow
	regTokens     map[string]regTokenRow

	lockMu sync.Mutex
	locks  map[string]struct{}

	// guards holds attempt counters and used marks (guards.go).
	guards guardState
	// devices holds device authorizations (device.go).
	devices deviceState

	// bc holds RP sessions and the back-channel logout outbox
	// (backchannel.go).
	bc backchannelState

	// dpop holds used DPoP proofs (dpop.go).
	dpop dpopState

	subMu sync.Mutex
	subs  map[string]map[chan string]struct{}

	closed atomic.Bool
}

type pairKey struct{ a, b string }

// New returns an empty store.
func New(cfg Config) *Store {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	s := &Store{
		now:           now,
		clients:       map[string]*storage.Client{},
		jtis:          map[string]time.Time{},
		tokens:        map[tokenKind]map[string]*tokenRow{},
		users:         map[string]*storage.User{},
		consents:      map[pairKey]*storage.Consent{},
		logins:        map[string]*storage.LoginSession{},
		signingKeys:   map[string]*storage.SigningKey{},
		apiKeys:       map[string]*storage.APIKey{},
		audit:         map[int64]*storage.AuditEvent{},
		blocks:        map[pairKey]*storage.Block{},
		initialTokens: map[string]*initialTokenRow{},
		regTokens:     map[string]regTokenRow{},
		locks:         map[string]struct{}{},
		subs:          map[string]map[chan string]struct{}{},
		bc:            newBackchannelState(),
	}
	for _, k := range allKinds {
		s.tokens[k] = map[string]*tokenRow{}
	}
	return s
}

// errNoTx is returned by Commit and Rollback on a context without an open
// transaction of this store.
var errNoTx = errors.New("memory: no open transaction in context")

type txKey struct{}

// txn is an open transaction: the undo journal of the writes made through
// its context and the notifications to deliver on commit.
type txn struct {
	store   *Store
	undo    []func()
	notify  [][2]string
	done    bool
	release sync.Once
}

// txFrom returns the open transaction of s carried by ctx, if any.
func (s *Store) txFrom(ctx context.Context) *txn {
	tx, _ := ctx.Value(txKey{}).(*txn)
	if tx == nil || tx.store != s || tx.done {
		return nil
	}
	return tx
}

// BeginTX implements fosite's storage.Transactional. Nested transactions are
// refused: the caller already holds the store-wide lock.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if s.txFrom(ctx) != nil {
		return ctx, errors.New("memory: transaction already open in context")
	}
	s.txMu.Lock()
	return context.WithValue(ctx, txKey{}, &txn{store: s}), nil
}

// Commit implements fosite's storage.Transactional.
func (s *Store) Commit(ctx context.Context) error {
	tx := s.txFrom(ctx)
	if tx == nil {
		return errNoTx
	}
	s.mu.Lock()
	tx.done = true
	tx.undo = nil
	s.mu.Unlock()
	pending := tx.notify
	tx.release.Do(s.txMu.Unlock)
	for _, n := range pending {
		s.publish(n[0], n[1])
	}
	return nil
}

// Rollback implements fosite's storage.Transactional. fosite may call it
// after a failed Commit; a finished transaction yields errNoTx.
func (s *Store) Rollback(ctx context.Context) error {
	tx := s.txFrom(ctx)
	if tx == nil {
		return errNoTx
	}
	s.mu.Lock()
	for i := len(tx.undo) - 1; i >= 0; i-- {
		tx.undo[i]()
	}
	tx.undo = nil
	tx.notify = nil
	tx.done = true
	s.mu.Unlock()
	tx.release.Do(s.txMu.Unlock)
	return nil
}

// read locks the store for reading and returns the unlock function.
func (s *Store) read(ctx context.Context) func() {
	if s.txFrom(ctx) != nil {
		s.mu.RLock()
		return s.mu.RUnlock
	}
	s.txMu.RLock()
	s.mu.RLock()
	return func() {
		s.mu.RUnlock()
		s.txMu.RUnlock()
	}
}

// write locks the store for writing and returns the transaction to journal
// into (nil outside one) and the unlock function.
func (s *Store) write(ctx context.Context) (*txn, func()) {
	if tx := s.txFrom(ctx); tx != nil {
		s.mu.Lock()
		return tx, s.mu.Unlock
	}
	s.txMu.RLock()
	s.mu.Lock()
	return nil, func() {
		s.mu.Unlock()
		s.txMu.RUnlock()
	}
}

// put sets m[k] = v, journaling the previous state when inside tx.
func put[K comparable, V any](tx *txn, m map[K]V, k K, v V) {
	if tx != nil {
		old, ok := m[k]
		tx.undo = append(tx.undo, func() {
			if ok {
				m[k] = old
			} else {
				delete(m, k)
			}
		})
	}
	m[k] = v
}

// del deletes m[k], journaling it when inside tx.
func del[K comparable, V any](tx *txn, m map[K]V, k K) {
	old, ok := m[k]
	if !ok {
		return
	}
	if tx != nil {
		tx.undo = append(tx.undo, func() { m[k] = old })
	}
	delete(m, k)
}

// Ping implements storage.Store.
func (s *Store) Ping(context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("memory: store closed: %w", storage.ErrUnavailable)
	}
	return nil
}

// Close implements storage.Store. Records stay readable; Ping fails.
func (s *Store) Close() { s.closed.Store(true) }

func cloneStrings(in []string) []string {
	if in == nil {
		return nil
	}
	return append([]string{}, in...)
}

func cloneStringMap(in map[string]string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func cloneBytes(in []byte) []byte {
	if in == nil {
		return nil
	}
	return append([]byte{}, in...)
}
