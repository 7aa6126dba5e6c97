package apikeys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/keys/hash"
	"github.com/bulwark-auth/bulwark/storage"
)

// Names shared with other replicas.
const (
	// NotifyChannel carries the id of a key whose cached verifications must
	// be dropped.
	NotifyChannel = "bulwark_apikeys"
	// LockName is the Locker name the scheduler runs under.
	LockName = "bulwark:apikeys"
)

// Defaults for Config fields left zero.
const (
	DefaultRotationPeriod = 90 * 24 * time.Hour
	DefaultGracePeriod    = 7 * 24 * time.Hour
	DefaultTouchInterval  = 30 * time.Second
	DefaultTickInterval   = time.Minute

	// MinRotationPeriod and MinGracePeriod keep a policy from rotating
	// keys faster than holders can possibly follow.
	MinRotationPeriod = time.Hour
	MinGracePeriod    = time.Minute
)

// Owner types a key may have.
const (
	OwnerClient  = "client"
	OwnerUser    = "user"
	OwnerService = "service"
)

// Scopes an API key may carry. Admin scopes are fine-grained so that a key
// can be given exactly the part of the admin API it needs.
const (
	ScopeClientsRead  = "admin:clients:read"
	ScopeClientsWrite = "admin:clients:write"
	ScopeAPIKeys      = "admin:apikeys"
	ScopeKeys         = "admin:keys"
	ScopeUsers        = "admin:users"
	ScopeAuditRead    = "admin:audit:read"
	// ScopeIntrospect lets a resource server call token introspection.
	ScopeIntrospect = "introspect"
)

// AllScopes lists every scope an API key may carry.
var AllScopes = []string{
	ScopeClientsRead, ScopeClientsWrite, ScopeAPIKeys, ScopeKeys, ScopeUsers, ScopeAuditRead, ScopeIntrospect,
}

// ValidScope reports whether s is one of AllScopes.
func ValidScope(s string) bool { return slices.Contains(AllScopes, s) }

var (
	// ErrMalformed means the token is not an API key at all or fails its
	// checksum. It is decided without any I/O.
	ErrMalformed = errors.New("apikeys: malformed api key")
	// ErrInvalid means the key id is unknown or the secret is wrong; the two
	// are deliberately indistinguishable.
	ErrInvalid = errors.New("apikeys: invalid api key")
	// ErrRevoked means the secret matched a revoked key.
	ErrRevoked = errors.New("apikeys: api key revoked")
	// ErrExpired means the secret matched an expired key.
	ErrExpired = errors.New("apikeys: api key expired")
	// ErrScopeEscalation means a key would get a scope its creator lacks.
	ErrScopeEscalation = errors.New("apikeys: scope escalation")
	// ErrNotActive means the operation needs an active key (rotating a key
	// that is already rotating, revoked or expired).
	ErrNotActive = errors.New("apikeys: api key is not active")
	// ErrNoPendingSuccessor means the key is rotating but its successor's
	// secret was already collected, was issued to an admin, or is gone.
	ErrNoPendingSuccessor = errors.New("apikeys: no successor secret to collect")
	// ErrConflict means a concurrent change won; the caller may retry.
	ErrConflict = errors.New("apikeys: concurrent change")
)

// Sealer seals secrets at rest under the master secret (secretbox.Box).
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// Config holds the service's dependencies.
type Config struct {
	Store    storage.APIKeyStore
	Locker   storage.Locker
	Notifier storage.Notifier
	// Hasher verifies secrets; the service evicts from its cache.
	Hasher *hash.Cached
	Sealer Sealer
	// Now is the clock every status and expiry decision uses; nil means
	// time.Now.
	Now    func() time.Time
	Logger logrus.FieldLogger
	// Audit records security events; nil records nothing.
	Audit func(ctx context.Context, e storage.AuditEvent)
	// DefaultRotation and DefaultGrace apply to keys created without a
	// policy of their own.
	DefaultRotation, DefaultGrace time.Duration
	// TouchInterval is how often Run writes the last-use batch.
	TouchInterval time.Duration
	// TickInterval is how often Run calls Tick.
	TickInterval time.Duration
}

// cacheHasher is what the service needs of hash.Cached; tests wrap it to
// count Argon2id computations.
type cacheHasher interface {
	Hash(ctx context.Context, data []byte) ([]byte, error)
	Compare(ctx context.Context, hash, data []byte) error
	DummyCompare(ctx context.Context, data []byte)
	NeedsRehash(hash []byte) bool
	Evict(storedHash []byte)
	Purge()
}

// Service manages API keys. It is safe for concurrent use.
type Service struct {
	store    storage.APIKeyStore
	locker   storage.Locker
	notifier storage.Notifier
	hasher   cacheHasher
	sealer   Sealer
	now      func() time.Time
	log      logrus.FieldLogger
	audit    func(ctx context.Context, e storage.AuditEvent)

	rotation, grace       time.Duration
	touchEvery, tickEvery time.Duration

	touchMu sync.Mutex
	touched map[string]time.Time
}

// New checks cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	var missing []string
	if cfg.Store == nil {
		missing = append(missing, "Store")
	}
	if cfg.Locker == nil {
		missing = append(missing, "Locker")
	}
	if cfg.Notifier == nil {
		missing = append(missing, "Notifier")
	}
	if cfg.Hasher == nil {
		missing = append(missing, "Hasher")
	}
	if cfg.Sealer == nil {
		missing = append(missing, "Sealer")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("apikeys: config is missing %v", missing)
	}
	s := &Service{
		store:      cfg.Store,
		locker:     cfg.Locker,
		notifier:   cfg.Notifier,
		hasher:     cfg.Hasher,
		sealer:     cfg.Sealer,
		now:        cfg.Now,
		log:        cfg.Logger,
		audit:      cfg.Audit,
		rotation:   cfg.DefaultRotation,
		grace:      cfg.DefaultGrace,
		touchEvery: cfg.TouchInterval,
		tickEvery:  cfg.TickInterval,
		touched:    map[string]time.Time{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		s.log = l
	}
	if s.audit == nil {
		s.audit = func(context.Context, storage.AuditEvent) {}
	}
	if s.rotation <= 0 {
		s.rotation = DefaultRotationPeriod
	}
	if s.grace <= 0 {
		s.grace = DefaultGracePeriod
	}
	if s.touchEvery <= 0 {
		s.touchEvery = DefaultTouchInterval
	}
	if s.tickEvery <= 0 {
		s.tickEvery = DefaultTickInterval
	}
	if s.rotation < MinRotationPeriod || s.grace < MinGracePeriod || s.grace >= s.rotation {
		return nil, fmt.Errorf("apikeys: default rotation %v / grace %v: need rotation ≥ %v and %v ≤ grace < rotation",
			s.rotation, s.grace, MinRotationPeriod, MinGracePeriod)
	}
	return s, nil
}

// clock returns now at the precision Postgres stores (microseconds), so a
// time written and read back compares equal to the one decided on.
func (s *Service) clock() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// Principal is what an authenticated API key is allowed to act as.
type Principal struct {
	KeyID     string
	OwnerType string
	OwnerID   string
	Scopes    []string
}

// Has reports whether the key carries scope.
func (p Principal) Has(scope string) bool { return slices.Contains(p.Scopes, scope) }

// Subject names the key in audit records and logs: "apikey:<id>".
func (p Principal) Subject() string { return "apikey:" + p.KeyID }

// public returns a copy of k without the stored hash or sealed secret, for
// callers outside the service.
func public(k *storage.APIKey) *storage.APIKey {
	if k == nil {
		return nil
	}
	c := *k
	c.Hash = ""
	c.SealedSuccessorSecret = nil
	c.Scopes = slices.Clone(k.Scopes)
	return &c
}

func (s *Service) record(ctx context.Context, event, actor, outcome string, k *storage.APIKey, details map[string]string) {
	d := map[string]string{"key_id": k.ID, "owner_type": k.OwnerType, "owner_id": k.OwnerID}
	for n, v := range details {
		d[n] = v
	}
	e := storage.AuditEvent{Time: s.now().UTC(), Event: event, Actor: actor, Outcome: outcome, Details: d}
	if k.OwnerType == OwnerClient {
		e.ClientID = k.OwnerID
	}
	s.audit(ctx, e)
}

// Get returns the key with id (without hash or sealed bytes).
func (s *Service) Get(ctx context.Context, id string) (*storage.APIKey, error) {
	k, err := s.store.APIKeyByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("apikeys: get: %w", err)
	}
	return public(k), nil
}

// List pages through keys ordered by id (without hashes or sealed bytes).
func (s *Service) List(ctx context.Context, opts storage.ListOptions) ([]*storage.APIKey, error) {
	ks, err := s.store.ListAPIKeys(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("apikeys: list: %w", err)
	}
	for i, k := range ks {
		ks[i] = public(k)
	}
	return ks, nil
}

// notifyChange tells every replica (this one included) to drop cached
// verifications of key id, and drops this replica's at once.
func (s *Service) notifyChange(ctx context.Context, k *storage.APIKey) {
	s.hasher.Evict([]byte(k.Hash))
	if err := s.notifier.Notify(context.WithoutCancel(ctx), NotifyChannel, k.ID); err != nil {
		// The key row is already changed and Verify reads it every time;
		// a lost notice only leaves a verification cached until its TTL.
		s.log.WithError(err).WithField("key_id", k.ID).Warn("apikeys: change notification failed")
	}
}
