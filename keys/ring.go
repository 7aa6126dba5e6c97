package keys

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite/token/jwt"

	"github.com/bulwark-auth/bulwark/keys/verified"
	"github.com/bulwark-auth/bulwark/storage"
)

var (
	// ErrUnsupportedAlgorithm is returned for an algorithm the ring is not
	// configured for (or does not implement).
	ErrUnsupportedAlgorithm = errors.New("keys: unsupported algorithm")
	// ErrNoActiveKey is returned by SigningKey when the ring holds no usable
	// active key for the algorithm (not bootstrapped, or its key did not
	// open).
	ErrNoActiveKey = errors.New("keys: no active signing key")
	// ErrUnknownKey is returned when a kid is unknown, revoked or already
	// in the target state.
	ErrUnknownKey = errors.New("keys: unknown or unusable key id")
	// ErrWrongSecret is returned, before anything is written, when the
	// configured master secret(s) cannot open a stored signing key: a
	// command that wrote key material now would seal it under a secret the
	// other replicas do not have.
	ErrWrongSecret = errors.New("keys: the configured master secret does not open the stored signing keys")
	// ErrTooEarly is returned by Advance when the next key has not been
	// published for the lead time yet: resource servers caching the JWKS
	// might not know it.
	ErrTooEarly = errors.New("keys: the next key has not been published for the lead time")
)

// Ring is the signing key ring of one replica. Readers (SigningKey,
// VerificationKey, JWKS, Signer) take no lock: they read an immutable
// snapshot that Load swaps atomically.
type Ring struct {
	cfg  Config
	snap atomic.Pointer[snapshot]

	// loadMu serialises Load so that a slow Load that read older rows
	// cannot overwrite the snapshot of a later one.
	loadMu sync.Mutex
	// private caches opened private keys by kid (guarded by loadMu): a kid's
	// key material never changes, so a key is unsealed and parsed once,
	// and a transient unseal failure does not take away a working key.
	private map[string]*jose.JSONWebKey

	// verified remembers tokens Decode verified (keyed by the token's
	// hash, until they expire), for every Signer of the ring.
	verified *verified.Cache[*jwt.Token]

	// blocked counts activations the scheduler refused because the next
	// key did not open (an alert metric, see Health).
	blocked atomic.Uint64
}

// Health is the ring's state for readiness and metrics.
type Health struct {
	// Usable is, per configured algorithm, whether this replica holds an
	// active private key it can sign with.
	Usable map[string]bool
	// BlockedActivations counts scheduled activations refused because the
	// next key could not be unsealed with the configured master secret.
	BlockedActivations uint64
}

// Health reports whether every configured algorithm can sign.
func (r *Ring) Health() Health {
	s := r.snap.Load()
	h := Health{Usable: map[string]bool{}, BlockedActivations: r.blocked.Load()}
	for _, alg := range r.cfg.Algorithms {
		_, h.Usable[alg] = s.signing[alg]
	}
	return h
}

// Ready returns nil when every configured algorithm has a usable active
// key, else an error naming the algorithms that cannot sign (/readyz).
func (r *Ring) Ready() error {
	var bad []string
	h := r.Health()
	for _, alg := range r.cfg.Algorithms {
		if !h.Usable[alg] {
			bad = append(bad, alg)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %v", ErrNoActiveKey, bad)
	}
	return nil
}

// snapshot is one immutable view of the ring.
type snapshot struct {
	// signing is the active private key per algorithm.
	signing map[string]*jose.JSONWebKey
	// public holds next, active and retired keys by kid.
	public map[string]*jose.JSONWebKey
	jwks   []byte
	etag   string
}

// NewRing validates cfg and returns an empty ring; call Bootstrap (or Load)
// before signing.
func NewRing(ctx context.Context, cfg Config) (*Ring, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Ring{cfg: cfg, private: map[string]*jose.JSONWebKey{}, verified: verified.New[*jwt.Token](cfg.VerifiedTokens)}
	empty, err := render(nil)
	if err != nil {
		return nil, err
	}
	r.snap.Store(empty)
	return r, nil
}

// Algorithms returns the configured algorithms; the first is the default.
func (r *Ring) Algorithms() []string { return slices.Clone(r.cfg.Algorithms) }

// DefaultAlgorithm is the algorithm tokens are signed with unless a client
// asks for another.
func (r *Ring) DefaultAlgorithm() string { return r.cfg.Algorithms[0] }

// MaxAge is the Cache-Control max-age for JWKS responses.
func (r *Ring) MaxAge() time.Duration { return r.cfg.JWKSMaxAge }

// JWKS returns the pre-rendered JWK Set (next, active and retired keys,
// public parts only) and its strong ETag (a quoted SHA-256). The returned
// slice is shared: do not modify it.
func (r *Ring) JWKS() (body []byte, etag string) {
	s := r.snap.Load()
	return s.jwks, s.etag
}

// SigningKey returns the active private key for alg as a go-jose v3 JWK
// with KeyID and Algorithm set, as fosite's jwt.DefaultSigner expects.
func (r *Ring) SigningKey(alg string) (*jose.JSONWebKey, error) {
	k, ok := r.snap.Load().signing[alg]
	if !ok {
		if !slices.Contains(r.cfg.Algorithms, alg) {
			return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, alg)
		}
		return nil, fmt.Errorf("%w for %s", ErrNoActiveKey, alg)
	}
	c := *k
	return &c, nil
}

// VerificationKey returns the public key of a next, active or retired key;
// false for revoked or unknown kids.
func (r *Ring) VerificationKey(kid string) (*jose.JSONWebKey, bool) {
	k, ok := r.snap.Load().public[kid]
	if !ok {
		return nil, false
	}
	c := *k
	return &c, true
}

// Load reads every key from the store, opens the private keys of active and
// next keys and swaps in a new snapshot. A key whose material is unusable is
// left out (and reported in the returned error) but never stops the rest of
// the ring, notably revocations, from taking effect.
func (r *Ring) Load(ctx context.Context) error {
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	rows, err := r.cfg.Store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("keys: list signing keys: %w", err)
	}
	var problems []error
	var entries []entry
	keep := map[string]bool{}
	for _, row := range rows {
		if row.State == storage.KeyRevoked {
			continue
		}
		pub, err := parsePublic(row)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		e := entry{row: row, public: pub}
		if row.State == storage.KeyActive || row.State == storage.KeyNext {
			keep[row.KID] = true
			priv := r.private[row.KID]
			if priv == nil {
				priv, err = openPrivate(r.cfg.Sealer, row, pub)
				if err != nil {
					problems = append(problems, err)
				} else {
					r.private[row.KID] = priv
				}
			}
			e.private = priv
		}
		entries = append(entries, e)
	}
	for kid := range r.private {
		if !keep[kid] {
			delete(r.private, kid)
		}
	}
	s, err := render(entries)
	if err != nil {
		return err
	}
	r.snap.Store(s)
	if len(problems) > 0 {
		for _, p := range problems {
			r.cfg.Logger.WithError(p).Error("signing key unusable")
		}
		return errors.Join(problems...)
	}
	return nil
}

type entry struct {
	row     *storage.SigningKey
	public  *jose.JSONWebKey
	private *jose.JSONWebKey // nil unless active/next and opened
}

var stateOrder = map[storage.KeyState]int{storage.KeyActive: 0, storage.KeyNext: 1, storage.KeyRetired: 2}

// render builds a snapshot. Keys are ordered by algorithm, then active,
// next, retired, then creation, so equal rings render equal bytes and the
// ETag only changes when the ring does.
func render(entries []entry) (*snapshot, error) {
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(
			cmp.Compare(a.row.Algorithm, b.row.Algorithm),
			cmp.Compare(stateOrder[a.row.State], stateOrder[b.row.State]),
			a.row.CreatedAt.Compare(b.row.CreatedAt),
			cmp.Compare(a.row.KID, b.row.KID),
		)
	})
	s := &snapshot{signing: map[string]*jose.JSONWebKey{}, public: map[string]*jose.JSONWebKey{}}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	activatedAt := map[string]time.Time{}
	for _, e := range entries {
		s.public[e.row.KID] = e.public
		set.Keys = append(set.Keys, *e.public)
		// Between the two conditional updates of an activation two keys
		// are briefly active; the newer one signs.
		if e.row.State == storage.KeyActive && e.private != nil {
			if t, ok := activatedAt[e.row.Algorithm]; !ok || e.row.ActivatedAt.After(t) {
				activatedAt[e.row.Algorithm] = e.row.ActivatedAt
				s.signing[e.row.Algorithm] = e.private
			}
		}
	}
	body, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("keys: render JWKS: %w", err)
	}
	sum := sha256.Sum256(body)
	s.jwks = body
	s.etag = `"` + hex.EncodeToString(sum[:]) + `"`
	return s, nil
}
