package forwardauth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/storage"
)

// TokenLookup finds an access token's session by its signature (the
// store's oauth2.AccessTokenStorage method). A revoked token's session is
// gone: fosite.ErrNotFound.
type TokenLookup interface {
	GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error)
}

// Revocations answers "was this access token revoked?" from memory: a deny
// list of revoked, unexpired token keys fed by storage.RevokedAccessChannel.
// The list is only complete for tokens issued after the subscription was
// established and after the last overflow or reconnect; older tokens are
// looked up in the store (and the answer remembered until the next such
// event).
type Revocations struct {
	notifier storage.Notifier
	lookup   TokenLookup
	now      func() time.Time
	log      logrus.FieldLogger
	max      int
	// onLookup counts store lookups by result ("revoked", "valid", "error").
	onLookup func(result string)
	onSize   func(n int)

	mu sync.RWMutex
	// denied maps a revoked token's store key to its expiry.
	denied map[string]time.Time
	// checked maps a token key the store confirmed valid, since the last
	// overflow, to its expiry.
	checked map[string]time.Time
	// subscribed is false until the first subscription and while
	// resubscribing: then every token is looked up.
	subscribed bool
	// completeAfter: the list is complete for tokens issued after this
	// second (iat > completeAfter).
	completeAfter int64
	// generation changes whenever completeAfter moves, so a lookup that
	// raced with a reset does not record a stale answer.
	generation uint64
}

// RevocationsConfig configures Revocations.
type RevocationsConfig struct {
	Notifier storage.Notifier
	Lookup   TokenLookup
	// MaxEntries bounds the deny list (and the confirmed-valid list); when
	// it is full the list stops being complete and older tokens are looked
	// up. Default 100 000.
	MaxEntries int
	Now        func() time.Time
	Logger     logrus.FieldLogger
}

// NewRevocations returns a deny list that trusts nothing until Run has
// subscribed.
func NewRevocations(cfg RevocationsConfig) (*Revocations, error) {
	if cfg.Notifier == nil || cfg.Lookup == nil || cfg.Logger == nil {
		return nil, errors.New("forwardauth: revocations need Notifier, Lookup and Logger")
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Revocations{
		notifier: cfg.Notifier, lookup: cfg.Lookup, now: cfg.Now, log: cfg.Logger, max: cfg.MaxEntries,
		onLookup: func(string) {}, onSize: func(int) {},
		denied: map[string]time.Time{}, checked: map[string]time.Time{},
	}, nil
}

// Run keeps the list current until ctx ends: it subscribes, applies each
// announcement, treats a lost subscription as "everything older must be
// looked up", and trims expired entries every trimEvery.
func (d *Revocations) Run(ctx context.Context, trimEvery time.Duration) {
	trim := time.NewTicker(trimEvery)
	defer trim.Stop()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		ch, err := d.notifier.Subscribe(ctx, storage.RevokedAccessChannel)
		if err != nil {
			d.log.WithError(err).Warn("forward-auth: subscribing to revocations failed; looking up every token")
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		d.reset(true)
		d.consume(ctx, ch, trim.C)
		d.mu.Lock()
		d.subscribed = false
		d.generation++
		d.mu.Unlock()
	}
}

func (d *Revocations) consume(ctx context.Context, ch <-chan string, trim <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-trim:
			d.trim()
		case p, ok := <-ch:
			if !ok {
				return
			}
			d.apply(p)
		}
	}
}

// apply handles one payload.
func (d *Revocations) apply(p string) {
	if p == "" || p == storage.RevokedAccessOverflow {
		// Notifications were lost, or too many to list: the list is
		// complete only for tokens issued from now on.
		d.reset(true)
		return
	}
	key, exp, err := storage.ParseRevokedAccess(p)
	if err != nil {
		d.log.WithError(err).Warn("forward-auth: ignoring a malformed revocation notice; looking up older tokens")
		d.reset(true)
		return
	}
	d.add(key, exp)
}

// reset forgets what the store confirmed and marks tokens issued up to now
// as needing a lookup. The deny list itself is kept: its entries stay true.
func (d *Revocations) reset(subscribed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.subscribed = subscribed
	d.completeAfter = d.now().Unix()
	d.generation++
	clear(d.checked)
}

func (d *Revocations) add(key string, exp time.Time) {
	now := d.now()
	if !exp.After(now) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.checked, key)
	if len(d.denied) >= d.max {
		d.trimLocked(now)
	}
	if len(d.denied) >= d.max {
		// Full: this token is not remembered, so tokens issued up to now
		// are looked up instead.
		d.completeAfter = now.Unix()
		d.generation++
		clear(d.checked)
		return
	}
	d.denied[key] = exp
	d.onSize(len(d.denied))
}

func (d *Revocations) trim() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.trimLocked(d.now())
}

func (d *Revocations) trimLocked(now time.Time) {
	for k, exp := range d.denied {
		if !exp.After(now) {
			delete(d.denied, k)
		}
	}
	for k, exp := range d.checked {
		if !exp.After(now) {
			delete(d.checked, k)
		}
	}
	d.onSize(len(d.denied))
}

// errRevoked means the token was revoked.
var errRevoked = errors.New("forwardauth: token revoked")

// Check returns errRevoked for a revoked token, nil for a valid one, or a
// store error when a needed lookup failed. key is storage.HashKey of the
// token's signature, signature the signature itself (for the lookup).
func (d *Revocations) Check(ctx context.Context, key, signature string, issuedAt, expiresAt time.Time) error {
	d.mu.RLock()
	_, denied := d.denied[key]
	_, confirmed := d.checked[key]
	complete := d.subscribed && issuedAt.Unix() > d.completeAfter
	d.mu.RUnlock()
	switch {
	case denied:
		return errRevoked
	case complete || confirmed:
		return nil
	}
	// The list may be missing this token: ask the store. Remember the
	// answer only if no reset happened meanwhile.
	d.mu.RLock()
	gen, subscribed := d.generation, d.subscribed
	d.mu.RUnlock()
	_, err := d.lookup.GetAccessTokenSession(ctx, signature, nil)
	switch {
	case errors.Is(err, fosite.ErrNotFound) || errors.Is(err, storage.ErrNotFound):
		d.onLookup("revoked")
		d.add(key, expiresAt)
		return errRevoked
	case err != nil:
		d.onLookup("error")
		return fmt.Errorf("forwardauth: revocation lookup: %w", err)
	}
	d.onLookup("valid")
	if subscribed {
		d.mu.Lock()
		if d.subscribed && d.generation == gen && len(d.checked) < d.max {
			if _, revoked := d.denied[key]; !revoked {
				d.checked[key] = expiresAt
			}
		}
		d.mu.Unlock()
	}
	return nil
}

// Ready reports whether the subscription is established (tests and
// readiness: before it, every token costs a lookup).
func (d *Revocations) Ready() bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.subscribed
}
