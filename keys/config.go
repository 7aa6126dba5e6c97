package keys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/storage"
)

// Supported signing algorithms (JWA names, RFC 7518 §3.1 and RFC 8037 §3.1).
const (
	ES256 = "ES256" // ECDSA P-256 with SHA-256
	RS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256, always RSA-3072
	EdDSA = "EdDSA" // Ed25519
)

// RSABits is the modulus size of every RSA key the ring generates: 2048 bits
// give only 112-bit security, below ASVS level 2.
const RSABits = 3072

// Channel is the Notifier channel on which key ring changes are announced;
// the payload is the kid that changed.
const Channel = "bulwark_keys"

// LockName is the Locker name under which one replica changes the ring.
const LockName = "bulwark:keys"

// Defaults applied by NewRing to zero Config fields.
const (
	DefaultRotationPeriod = 30 * 24 * time.Hour
	DefaultLeadTime       = 48 * time.Hour
	DefaultRetention      = 7 * 24 * time.Hour
	DefaultTickInterval   = time.Minute
	DefaultReloadInterval = 30 * time.Second
	// DefaultVerifiedTokens bounds the verified-token cache (~2 KB each).
	DefaultVerifiedTokens = 10_000
	// DefaultMaxJWKSMaxAge caps the default JWKSMaxAge. The JWKS max-age is
	// also how long a revoked key may still be trusted by a resource server
	// that caches our JWKS, so it is kept short: a quarter of LeadTime, at
	// most 15 minutes.
	DefaultMaxJWKSMaxAge = 15 * time.Minute
)

// ErrInvalidConfig is wrapped by every configuration error NewRing returns.
var ErrInvalidConfig = errors.New("keys: invalid configuration")

// Sealer encrypts private key material at rest. keys/secretbox.Box
// satisfies it. The ring passes the kid as additional authenticated data, so
// a sealed key copied onto another row does not open.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
	// NeedsReseal reports whether sealed was not produced under the newest
	// master secret.
	NeedsReseal(sealed []byte) bool
}

// Config is everything a Ring needs.
type Config struct {
	Store    storage.SigningKeyStore
	Locker   storage.Locker
	Notifier storage.Notifier
	Sealer   Sealer
	// Algorithms the ring keeps an active key for, e.g. {"ES256","RS256"};
	// the first is the default signing algorithm. Default {"ES256"}.
	Algorithms []string
	// RotationPeriod is how long a key signs before its successor takes
	// over. Default 30 days.
	RotationPeriod time.Duration
	// LeadTime is the minimum time a next key is published before it
	// signs. Default 48h; must be ≤ RotationPeriod. In the normal timeline a
	// next key is created when its predecessor activates, so it is
	// published for a whole RotationPeriod.
	LeadTime time.Duration
	// JWKSMaxAge is the Cache-Control max-age of the JWKS. It must be ≤
	// LeadTime so that caches see a next key before it signs, and it bounds
	// how long a caching resource server may still accept a revoked key.
	// Default min(LeadTime/4, 15 minutes).
	JWKSMaxAge time.Duration
	// Retention is how long a retired key stays published; it must be ≥
	// the longest token lifetime plus leeway. Default 7 days.
	Retention time.Duration
	// TickInterval is how often Run calls Tick. Default 1 minute.
	TickInterval time.Duration
	// ReloadInterval is how often Run reloads the ring even without a
	// notification (the safety net for lost notifications). Default 30s.
	ReloadInterval time.Duration
	// VerifiedTokens bounds how many verified tokens Decode remembers (see
	// package keys/verified). Default DefaultVerifiedTokens.
	VerifiedTokens int
	// Now is the clock; default time.Now.
	Now    func() time.Time
	Logger logrus.FieldLogger
	// Audit receives one event per key transition; may be nil.
	Audit func(ctx context.Context, e storage.AuditEvent)
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if len(c.Algorithms) == 0 {
		c.Algorithms = []string{ES256}
	}
	if c.RotationPeriod == 0 {
		c.RotationPeriod = DefaultRotationPeriod
	}
	if c.LeadTime == 0 {
		c.LeadTime = min(DefaultLeadTime, c.RotationPeriod)
	}
	if c.JWKSMaxAge == 0 {
		c.JWKSMaxAge = min(c.LeadTime/4, DefaultMaxJWKSMaxAge)
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.TickInterval == 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	if c.VerifiedTokens == 0 {
		c.VerifiedTokens = DefaultVerifiedTokens
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		c.Logger = l
	}
	c.Algorithms = append([]string(nil), c.Algorithms...)
	return c
}

// validate reports every problem at once.
func (c Config) validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Store == nil {
		add("Store is required")
	}
	if c.Locker == nil {
		add("Locker is required")
	}
	if c.Notifier == nil {
		add("Notifier is required")
	}
	if c.Sealer == nil {
		add("Sealer is required")
	}
	seen := map[string]bool{}
	for _, alg := range c.Algorithms {
		if !supported(alg) {
			add("algorithm %q is not supported (want ES256, RS256 or EdDSA)", alg)
		}
		if seen[alg] {
			add("algorithm %q listed twice", alg)
		}
		seen[alg] = true
	}
	if c.RotationPeriod < 0 {
		add("RotationPeriod must be positive")
	}
	if c.LeadTime <= 0 {
		add("LeadTime must be positive")
	}
	if c.LeadTime > c.RotationPeriod {
		add("LeadTime (%s) must be ≤ RotationPeriod (%s)", c.LeadTime, c.RotationPeriod)
	}
	if c.JWKSMaxAge <= 0 {
		add("JWKSMaxAge must be positive")
	}
	if c.JWKSMaxAge > c.LeadTime {
		add("JWKSMaxAge (%s) must be ≤ LeadTime (%s), or caches miss a next key before it signs", c.JWKSMaxAge, c.LeadTime)
	}
	if c.Retention <= 0 {
		add("Retention must be positive")
	}
	if c.TickInterval <= 0 {
		add("TickInterval must be positive")
	}
	if c.ReloadInterval <= 0 {
		add("ReloadInterval must be positive")
	}
	return errors.Join(errs...)
}

func supported(alg string) bool {
	switch alg {
	case ES256, RS256, EdDSA:
		return true
	}
	return false
}
