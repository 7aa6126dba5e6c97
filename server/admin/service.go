package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/keys/regtoken"
	"github.com/bulwark-auth/bulwark/storage"
)

// DefaultSecretOverlap is how long a rotated client secret keeps working
// when Config.SecretOverlap is zero: a day is enough to roll a deployment.
const DefaultSecretOverlap = 24 * time.Hour

// MinPasswordLength is the shortest password an admin may set for a user
// (NIST SP 800-63B allows 8; admins choosing for others can afford 12).
const MinPasswordLength = 12

// maxPasswordLength bounds the Argon2id input an admin may submit.
const maxPasswordLength = 1024

// Errors the Service returns besides the storage sentinels
// (storage.ErrNotFound, ErrConflict, ErrPreconditionFailed, ErrUnavailable).
var (
	// ErrScopeEscalation means the caller tried to grant (or obtain a token
	// carrying) a scope it does not hold itself.
	ErrScopeEscalation = errors.New("admin: cannot grant a scope the caller does not hold")
	// ErrNoSecret means a secret operation was asked of a client that does
	// not authenticate with a client secret.
	ErrNoSecret = errors.New("admin: client does not use a client secret")
)

// InvalidError is bad input. Code is the JSON error code
// ("invalid_client_metadata" for clients, "invalid_request" otherwise);
// Problems name each offending field.
type InvalidError struct {
	Code        string
	Description string
	Problems    []storage.FieldProblem
}

func (e *InvalidError) Error() string {
	parts := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		parts = append(parts, p.Field+": "+p.Problem)
	}
	if len(parts) == 0 {
		return "admin: " + e.Description
	}
	return "admin: " + e.Description + ": " + strings.Join(parts, "; ")
}

func invalid(code, desc string, problems ...storage.FieldProblem) *InvalidError {
	return &InvalidError{Code: code, Description: desc, Problems: problems}
}

// KeyRing is what the Service needs of the signing key ring (*keys.Ring).
type KeyRing interface {
	Rotate(ctx context.Context, alg, actor string) error
	Revoke(ctx context.Context, kid, actor string) error
	Algorithms() []string
}

// APIKeyService is what the Service needs of the API key service
// (*apikeys.Service).
type APIKeyService interface {
	Create(ctx context.Context, req apikeys.CreateRequest) (string, *storage.APIKey, error)
	Get(ctx context.Context, id string) (*storage.APIKey, error)
	List(ctx context.Context, opts storage.ListOptions) ([]*storage.APIKey, error)
	Rotate(ctx context.Context, id, actor string) (string, *storage.APIKey, error)
	Revoke(ctx context.Context, id, actor string) error
	RevokeOwner(ctx context.Context, ownerType, ownerID, actor string) (int64, error)
}

// Config holds the Service's dependencies.
type Config struct {
	Store storage.Store
	// Hasher hashes client secrets and passwords (Argon2id, keys/hash).
	Hasher fosite.Hasher
	Keys   KeyRing
	// APIKeys manages API keys; nil disables the API key operations.
	APIKeys APIKeyService
	// Evict drops cached verifications of a client secret that stopped
	// being valid (client disabled, deleted, secret method dropped). May be
	// nil.
	Evict func(storedHash []byte)
	// AllowedScopes, when non-empty, is the set of OAuth scopes a client
	// may be registered for.
	AllowedScopes []string
	// SecretOverlap is how long a rotated client secret stays valid.
	SecretOverlap time.Duration
	Now           func() time.Time
	Logger        logrus.FieldLogger
	// Audit records every mutation; nil records nothing.
	Audit func(ctx context.Context, e storage.AuditEvent)
	// Random is the entropy source for ids, secrets and passwords; nil means
	// crypto/rand.
	Random io.Reader
	// RegistrationTokens makes and hashes initial access tokens for dynamic
	// client registration; nil disables the initial token operations.
	RegistrationTokens *regtoken.Hasher
	// Blocks, when set, lifts anomaly blocks so every replica stops
	// refusing the source at once (protect.Detector.Lift: store, local
	// cache, NOTIFY). Nil deletes the stored block only, and replicas
	// notice at their next reload.
	Blocks BlockLifter
}

// Service is every admin operation, shared by the JSON API and the console.
// It is safe for concurrent use.
type Service struct {
	store   storage.Store
	hasher  fosite.Hasher
	keys    KeyRing
	apiKeys APIKeyService
	evict   func([]byte)
	scopes  []string
	overlap time.Duration
	now     func() time.Time
	log     logrus.FieldLogger
	audit   func(context.Context, storage.AuditEvent)
	random  io.Reader
	blocks  BlockLifter
	regTok  *regtoken.Hasher
}

// Actor is who performs an operation.
type Actor struct {
	// ID names the caller in the audit trail: "apikey:<id>" for the API,
	// "user:<id>" for the console.
	ID string
	// Scopes are the admin scopes the caller holds; the Service never lets
	// it grant more.
	Scopes []string
}

// NewService checks cfg and returns a Service.
func NewService(cfg Config) (*Service, error) {
	var missing []string
	if cfg.Store == nil {
		missing = append(missing, "Store")
	}
	if cfg.Hasher == nil {
		missing = append(missing, "Hasher")
	}
	if cfg.Keys == nil {
		missing = append(missing, "Keys")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("admin: config is missing %s", strings.Join(missing, ", "))
	}
	if cfg.SecretOverlap < 0 {
		return nil, errors.New("admin: SecretOverlap must not be negative")
	}
	s := &Service{
		store:   cfg.Store,
		hasher:  cfg.Hasher,
		keys:    cfg.Keys,
		apiKeys: cfg.APIKeys,
		evict:   cfg.Evict,
		scopes:  slices.Clone(cfg.AllowedScopes),
		overlap: cfg.SecretOverlap,
		now:     cfg.Now,
		log:     cfg.Logger,
		audit:   cfg.Audit,
		random:  cfg.Random,
		blocks:  cfg.Blocks,
		regTok:  cfg.RegistrationTokens,
	}
	if s.overlap == 0 {
		s.overlap = DefaultSecretOverlap
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
	if s.evict == nil {
		s.evict = func([]byte) {}
	}
	if s.random == nil {
		s.random = rand.Reader
	}
	return s, nil
}

// clock returns now at the precision Postgres stores.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// record writes one audit event of a successful mutation.
func (s *Service) record(ctx context.Context, a Actor, event string, e storage.AuditEvent) {
	e.Event = event
	e.Actor = a.ID
	if e.Outcome == "" {
		e.Outcome = "success"
	}
	if e.Time.IsZero() {
		e.Time = s.now().UTC()
	}
	s.audit(ctx, e)
}

// randomToken returns n random bytes, base64url without padding.
func (s *Service) randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.random, b); err != nil {
		return "", fmt.Errorf("admin: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// randomID returns a 128-bit identifier in lowercase hex (safe in URLs,
// client ids and usernames alike).
func (s *Service) randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(s.random, b); err != nil {
		return "", fmt.Errorf("admin: random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// inTx runs fn in one store transaction, so containment is all or nothing.
func (s *Service) inTx(ctx context.Context, fn func(ctx context.Context) error) error {
	tctx, err := s.store.BeginTX(ctx)
	if err != nil {
		return fmt.Errorf("admin: begin: %w", err)
	}
	if err := fn(tctx); err != nil {
		if rerr := s.store.Rollback(tctx); rerr != nil {
			s.log.WithError(rerr).Warn("admin: rollback failed")
		}
		return err
	}
	if err := s.store.Commit(tctx); err != nil {
		return fmt.Errorf("admin: commit: %w", err)
	}
	return nil
}

// retryVersion repeats a read-modify-write that lost a race with another
// writer (ErrPreconditionFailed): operations like disable have no If-Match
// of their own and must simply win. It also repeats a transaction the
// database aborted as a serialization failure or deadlock (40001/40P01,
// fosite.ErrSerializationFailure): the store can only report those inside
// our transaction, and containment must not answer 500 under load. The
// bound keeps a persistent failure from looping.
func retryVersion(fn func() error) error {
	var err error
	for range 5 {
		if err = fn(); !retryable(err) {
			return err
		}
	}
	return err
}

func retryable(err error) bool {
	return errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, fosite.ErrSerializationFailure)
}

// missingScopes returns the entries of want that have is lacking.
func missingScopes(want, have []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(have, w) && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// adminScope reports whether sc is an admin scope a user may hold.
func adminScope(sc string) bool {
	return strings.HasPrefix(sc, "admin:") && apikeys.ValidScope(sc)
}

// ListAudit returns audit events matching f, newest first. A zero or
// excessive Limit is clamped to [1, MaxPageSize].
func (s *Service) ListAudit(ctx context.Context, f storage.AuditFilter) ([]*storage.AuditEvent, error) {
	f.Limit = clampLimit(f.Limit)
	evs, err := s.store.ListAudit(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("admin: list audit: %w", err)
	}
	return evs, nil
}

// ListBlocks returns the blocks in force now.
func (s *Service) ListBlocks(ctx context.Context) ([]*storage.Block, error) {
	bs, err := s.store.ListBlocks(ctx, s.now())
	if err != nil {
		return nil, fmt.Errorf("admin: list blocks: %w", err)
	}
	return bs, nil
}

// BlockLifter lifts a block everywhere (protect.Detector).
type BlockLifter interface {
	Lift(ctx context.Context, kind, value string) error
}

// LiftBlock removes the block of (kind, value); ErrNotFound if none.
func (s *Service) LiftBlock(ctx context.Context, a Actor, kind, value string) error {
	if kind != "ip" && kind != "client" {
		return invalid("invalid_request", "unknown block kind", storage.FieldProblem{Field: "kind", Problem: "must be ip or client"})
	}
	lift := s.store.DeleteBlock
	if s.blocks != nil {
		lift = s.blocks.Lift
	}
	if err := lift(ctx, kind, value); err != nil {
		return fmt.Errorf("admin: lift block: %w", err)
	}
	e := storage.AuditEvent{Details: map[string]string{"kind": kind, "value": value}}
	if kind == "client" {
		e.ClientID = value
	}
	s.record(ctx, a, "block.lifted", e)
	return nil
}

// Page sizes for listings.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return n
}
