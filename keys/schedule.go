package keys

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/storage"
)

// actorSchedule is the actor of transitions made by Tick.
const actorSchedule = "schedule"

// lockPoll is how often Bootstrap, Rotate and Revoke retry a Locker that
// another replica holds.
const lockPoll = 50 * time.Millisecond

// Bootstrap makes sure every configured algorithm has an active and a next
// key, then loads the ring. With a master secret that does not open the
// stored keys it writes nothing and returns ErrWrongSecret. It waits for the ring lock, so when several
// replicas start at once one creates the keys and the others find them.
func (r *Ring) Bootstrap(ctx context.Context) error {
	err := r.withLock(ctx, true, func(cs *changes) error {
		rows, err := r.cfg.Store.ListSigningKeys(ctx)
		if err != nil {
			return fmt.Errorf("keys: list signing keys: %w", err)
		}
		// A replica started with the wrong master secret must not add keys
		// the others cannot open: refuse to start instead.
		if err := r.checkSealed(rows); err != nil {
			return err
		}
		now := r.cfg.Now()
		for _, alg := range r.cfg.Algorithms {
			if err := r.ensure(ctx, cs, byAlg(rows, alg), alg, now, actorSchedule); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return r.Load(ctx)
}

// Tick runs one scheduler step if no other replica is running one: per
// configured algorithm it activates a next key whose time has come (the
// active key retires), creates a missing next or active key, and deletes
// retired and revoked keys whose retention has passed. While the configured
// master secret does not open every stored key it does nothing but count
// the refusal (Health().BlockedActivations) and return ErrWrongSecret.
func (r *Ring) Tick(ctx context.Context) error {
	return r.withLock(ctx, false, func(cs *changes) error {
		rows, err := r.cfg.Store.ListSigningKeys(ctx)
		if err != nil {
			return fmt.Errorf("keys: list signing keys: %w", err)
		}
		// Never write key material (a missing key, an activation) while
		// the configured secret does not open the ring: raise the alert.
		if err := r.checkSealed(rows); err != nil {
			r.blocked.Add(1)
			r.cfg.Logger.WithError(err).Error("key ring: scheduled step refused")
			return err
		}
		now := r.cfg.Now()
		var errs []error
		for _, alg := range r.cfg.Algorithms {
			keys := byAlg(rows, alg)
			nexts := inState(keys, storage.KeyNext)
			actives := inState(keys, storage.KeyActive)
			if len(nexts) > 0 && len(actives) > 0 {
				n := nexts[0]
				if !now.Before(n.ActivateAt) && !now.Before(n.CreatedAt.Add(r.cfg.LeadTime)) {
					// A key this replica cannot unseal would stop signing
					// (every token request failing) the moment it became
					// active: keep the working key and raise the alert.
					if err := r.opens(n); err != nil {
						r.blocked.Add(1)
						r.cfg.Logger.WithError(err).WithFields(logrus.Fields{"kid": n.KID, "alg": alg}).
							Error("key ring: not activating a next key that does not open with the configured master secret")
						errs = append(errs, err)
						continue
					}
					if err := r.activate(ctx, cs, n, actives, now, actorSchedule); err != nil {
						errs = append(errs, err)
						continue
					}
					keys = r.afterActivate(keys, n, actives, now)
				}
			}
			if err := r.ensure(ctx, cs, keys, alg, now, actorSchedule); err != nil {
				errs = append(errs, err)
			}
		}
		for _, k := range rows {
			var until time.Time
			switch k.State {
			case storage.KeyRetired:
				until = r.deleteAfter(k)
			case storage.KeyRevoked:
				until = k.RevokedAt.Add(r.cfg.Retention)
			default:
				continue
			}
			if now.Before(until) {
				continue
			}
			if err := r.cfg.Store.DeleteSigningKey(ctx, k.KID); err != nil && !errors.Is(err, storage.ErrNotFound) {
				errs = append(errs, fmt.Errorf("keys: delete %s: %w", k.KID, err))
				continue
			}
			r.record(ctx, cs, k, k.State, "deleted", actorSchedule, now)
		}
		return errors.Join(errs...)
	})
}

// Rotate replaces the active key of alg at once (emergency use): the next
// key, already published, becomes active however briefly it has been
// published (resource servers whose JWKS cache predates it reject its
// tokens until they refetch); only if there is none is a fresh key
// generated. The old active key retires and a new next key is created.
// Nothing is written unless the configured master secret opens every
// stored key (ErrWrongSecret).
func (r *Ring) Rotate(ctx context.Context, alg, actor string) error {
	return r.rotate(ctx, alg, actor, true)
}

// Advance is the careful manual rotation: like Rotate, but it refuses
// (ErrTooEarly, nothing written) while the next key of alg has been
// published for less than LeadTime, so every JWKS cache already knows the
// key that starts signing.
func (r *Ring) Advance(ctx context.Context, alg, actor string) error {
	return r.rotate(ctx, alg, actor, false)
}

func (r *Ring) rotate(ctx context.Context, alg, actor string, force bool) error {
	if !slices.Contains(r.cfg.Algorithms, alg) {
		return fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, alg)
	}
	return r.withLock(ctx, true, func(cs *changes) error {
		rows, err := r.cfg.Store.ListSigningKeys(ctx)
		if err != nil {
			return fmt.Errorf("keys: list signing keys: %w", err)
		}
		if err := r.checkSealed(rows); err != nil {
			return err
		}
		now := r.cfg.Now()
		keys := byAlg(rows, alg)
		actives := inState(keys, storage.KeyActive)
		if !force {
			nexts := inState(keys, storage.KeyNext)
			if len(nexts) == 0 {
				return fmt.Errorf("%w: there is no published next %s key", ErrTooEarly, alg)
			}
			if ready := nexts[0].CreatedAt.Add(r.cfg.LeadTime); now.Before(ready) {
				return fmt.Errorf("%w: the next %s key %s is published since %s and may activate from %s", ErrTooEarly, alg, nexts[0].KID,
					nexts[0].CreatedAt.UTC().Format(time.RFC3339), ready.UTC().Format(time.RFC3339))
			}
		}
		if nexts := inState(keys, storage.KeyNext); len(nexts) > 0 {
			if err := r.activate(ctx, cs, nexts[0], actives, now, actor); err != nil {
				return err
			}
			keys = r.afterActivate(keys, nexts[0], actives, now)
		} else {
			k, err := r.create(ctx, cs, alg, storage.KeyActive, now, now, actor)
			if err != nil {
				return err
			}
			if err := r.retireAll(ctx, cs, actives, now, actor); err != nil {
				return err
			}
			keys = r.afterActivate(keys, k, actives, now)
		}
		return r.ensure(ctx, cs, keys, alg, now, actor)
	})
}

// Revoke removes kid from the JWKS at once; tokens it signed fail
// validation. If it was the active key, the next key (or a fresh one)
// takes over so signing never stops.
func (r *Ring) Revoke(ctx context.Context, kid, actor string) error {
	return r.withLock(ctx, true, func(cs *changes) error {
		rows, err := r.cfg.Store.ListSigningKeys(ctx)
		if err != nil {
			return fmt.Errorf("keys: list signing keys: %w", err)
		}
		i := slices.IndexFunc(rows, func(k *storage.SigningKey) bool { return k.KID == kid })
		if i < 0 || rows[i].State == storage.KeyRevoked {
			return fmt.Errorf("%w: %s", ErrUnknownKey, kid)
		}
		k := rows[i]
		now := r.cfg.Now()
		keys := slices.DeleteFunc(byAlg(rows, k.Algorithm), func(x *storage.SigningKey) bool { return x.KID == kid })
		if err := r.revokeAndPromote(ctx, cs, k, keys, now, actor); err != nil {
			return err
		}
		if !slices.Contains(r.cfg.Algorithms, k.Algorithm) {
			return nil
		}
		rows, err = r.cfg.Store.ListSigningKeys(ctx)
		if err != nil {
			return fmt.Errorf("keys: list signing keys: %w", err)
		}
		return r.ensure(ctx, cs, byAlg(rows, k.Algorithm), k.Algorithm, now, actor)
	})
}

// revokeAndPromote revokes k. When k is the active key of a configured
// algorithm, its replacement (the published next key, or a new key when
// there is none) becomes active in the same store transaction: signing
// never finds the algorithm without an active key, on any replica.
func (r *Ring) revokeAndPromote(ctx context.Context, cs *changes, k *storage.SigningKey, others []*storage.SigningKey, now time.Time, actor string) error {
	var (
		repl *storage.SigningKey
		priv *jose.JSONWebKey
	)
	if k.State == storage.KeyActive && slices.Contains(r.cfg.Algorithms, k.Algorithm) &&
		len(inState(others, storage.KeyActive)) == 0 {
		if nexts := inState(others, storage.KeyNext); len(nexts) > 0 {
			repl = nexts[0]
		} else {
			row, p, err := newSigningKey(r.cfg.Sealer, k.Algorithm)
			if err != nil {
				return err
			}
			row.State, row.CreatedAt, row.ActivateAt, row.ActivatedAt = storage.KeyActive, now, now, now
			repl, priv = row, p
		}
	}
	err := r.cfg.Store.RevokeSigningKey(ctx, k.KID, k.State, now, repl)
	if errors.Is(err, storage.ErrPreconditionFailed) {
		// Another replica changed the key first; reload and report.
		cs.kids = append(cs.kids, k.KID)
		return fmt.Errorf("%w: %s changed concurrently", ErrUnknownKey, k.KID)
	}
	if err != nil {
		return fmt.Errorf("keys: revoke %s: %w", k.KID, err)
	}
	r.record(ctx, cs, k, k.State, string(storage.KeyRevoked), actor, now)
	switch {
	case repl == nil:
	case priv != nil:
		r.loadMu.Lock()
		r.private[repl.KID] = priv
		r.loadMu.Unlock()
		r.record(ctx, cs, repl, "none", string(storage.KeyActive), actor, now)
	default:
		r.record(ctx, cs, repl, storage.KeyNext, string(storage.KeyActive), actor, now)
	}
	return nil
}

// Reseal re-encrypts every sealed private key that was not sealed under the
// newest master secret, so an old master secret can be removed. Revoked
// keys are skipped: they never sign again. When the configured secrets do
// not open every other key it writes nothing (ErrWrongSecret). It returns
// how many keys it resealed.
func (r *Ring) Reseal(ctx context.Context) (int, error) {
	rows, err := r.cfg.Store.ListSigningKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("keys: list signing keys: %w", err)
	}
	if err := r.checkSealed(rows); err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, k := range rows {
		if k.State == storage.KeyRevoked || len(k.SealedPrivate) == 0 || !r.cfg.Sealer.NeedsReseal(k.SealedPrivate) {
			continue
		}
		plain, err := r.cfg.Sealer.Open(k.SealedPrivate, []byte(k.KID))
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: kid %s: cannot unseal: %w", ErrKeyMaterial, k.KID, err))
			continue
		}
		sealed, err := r.cfg.Sealer.Seal(plain, []byte(k.KID))
		clear(plain)
		if err != nil {
			errs = append(errs, fmt.Errorf("keys: reseal %s: %w", k.KID, err))
			continue
		}
		if err := r.cfg.Store.ResealSigningKey(ctx, k.KID, sealed); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				continue // deleted meanwhile
			}
			errs = append(errs, fmt.Errorf("keys: reseal %s: %w", k.KID, err))
			continue
		}
		n++
		r.cfg.Logger.WithFields(logrus.Fields{"kid": k.KID, "alg": k.Algorithm}).Info("signing key resealed")
	}
	return n, errors.Join(errs...)
}

// CheckSecret proves that the configured master secret(s) open every stored
// signing key that may still sign (all but revoked ones). Commands that
// write key material call it first, so a mistyped secret is refused before
// anything is sealed under it.
func (r *Ring) CheckSecret(ctx context.Context) error {
	rows, err := r.cfg.Store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("keys: list signing keys: %w", err)
	}
	return r.checkSealed(rows)
}

// checkSealed unseals every non-revoked key of rows and names the ones
// that do not open.
func (r *Ring) checkSealed(rows []*storage.SigningKey) error {
	var bad []string
	for _, k := range rows {
		if k.State == storage.KeyRevoked || len(k.SealedPrivate) == 0 {
			continue
		}
		if err := r.opens(k); err != nil {
			bad = append(bad, k.KID)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: none of the configured master secrets (BULWARK_SECRET or BULWARK_SECRET_FILE) opens signing key(s) %s; nothing was written",
			ErrWrongSecret, strings.Join(bad, ", "))
	}
	return nil
}

// opens reports whether k's private key unseals and matches its public key.
func (r *Ring) opens(k *storage.SigningKey) error {
	r.loadMu.Lock()
	_, cached := r.private[k.KID]
	r.loadMu.Unlock()
	if cached {
		return nil
	}
	pub, err := parsePublic(k)
	if err != nil {
		return err
	}
	_, err = openPrivate(r.cfg.Sealer, k, pub)
	return err
}

// Run keeps the ring current until ctx ends: Tick every TickInterval, Load
// on every change notification from any replica, and Load every
// ReloadInterval in case a notification was lost.
func (r *Ring) Run(ctx context.Context) {
	log := r.cfg.Logger
	tick := time.NewTicker(r.cfg.TickInterval)
	defer tick.Stop()
	reload := time.NewTicker(r.cfg.ReloadInterval)
	defer reload.Stop()
	var notes <-chan string
	subscribe := func() {
		ch, err := r.cfg.Notifier.Subscribe(ctx, Channel)
		if err != nil {
			log.WithError(err).Warn("key ring: subscribe failed; relying on periodic reload")
			return
		}
		notes = ch
	}
	subscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := r.Tick(ctx); err != nil && ctx.Err() == nil {
				log.WithError(err).Error("key ring: scheduled step failed")
			}
		case _, ok := <-notes:
			if !ok {
				notes = nil // resubscribed on the next reload
				continue
			}
			if err := r.Load(ctx); err != nil && ctx.Err() == nil {
				log.WithError(err).Error("key ring: reload after notification failed")
			}
		case <-reload.C:
			if notes == nil {
				subscribe()
			}
			if err := r.Load(ctx); err != nil && ctx.Err() == nil {
				log.WithError(err).Error("key ring: periodic reload failed")
			}
		}
	}
}

// changes collects the kids a locked operation changed.
type changes struct{ kids []string }

// withLock runs fn under the ring lock. With wait it polls until the lock
// is free (or ctx ends); without, it returns nil at once when another
// replica holds the lock, since that replica is doing the same work. After
// fn, every changed kid is announced and the ring reloaded, even if fn
// failed half-way, so this replica never serves a stale view of its own
// changes.
func (r *Ring) withLock(ctx context.Context, wait bool, fn func(*changes) error) error {
	var release func()
	for {
		rel, ok, err := r.cfg.Locker.TryLock(ctx, LockName)
		if err != nil {
			return fmt.Errorf("keys: lock: %w", err)
		}
		if ok {
			release = rel
			break
		}
		if !wait {
			return nil
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("keys: waiting for the ring lock: %w", ctx.Err())
		case <-t.C:
		}
	}
	cs := &changes{}
	err := fn(cs)
	release()
	if len(cs.kids) == 0 {
		return err
	}
	for _, kid := range cs.kids {
		if nerr := r.cfg.Notifier.Notify(ctx, Channel, kid); nerr != nil {
			r.cfg.Logger.WithError(nerr).Warn("key ring: notify failed; other replicas reload on their timer")
		}
	}
	if lerr := r.Load(ctx); lerr != nil {
		err = errors.Join(err, lerr)
	}
	return err
}

// ensure makes sure keys (the rows of alg, already reflecting this step's
// changes) contain an active key and a next key, creating what is missing.
func (r *Ring) ensure(ctx context.Context, cs *changes, keys []*storage.SigningKey, alg string, now time.Time, actor string) error {
	actives := inState(keys, storage.KeyActive)
	nexts := inState(keys, storage.KeyNext)
	if len(actives) == 0 {
		if len(nexts) > 0 {
			// Signing must not stop: promote the published next key now.
			if err := r.activate(ctx, cs, nexts[0], nil, now, actor); err != nil {
				return err
			}
			keys = r.afterActivate(keys, nexts[0], nil, now)
		} else {
			k, err := r.create(ctx, cs, alg, storage.KeyActive, now, now, actor)
			if err != nil {
				return err
			}
			keys = append(keys, k)
		}
		actives = inState(keys, storage.KeyActive)
		nexts = inState(keys, storage.KeyNext)
	} else if len(actives) > 1 {
		// Repair an activation interrupted between its two updates.
		if err := r.retireAll(ctx, cs, actives[1:], now, actor); err != nil {
			return err
		}
	}
	if len(nexts) > 0 {
		return nil
	}
	// The successor activates a rotation period after the current key did,
	// but never before it has been published for LeadTime.
	at := actives[0].ActivatedAt.Add(r.cfg.RotationPeriod)
	if earliest := now.Add(r.cfg.LeadTime); at.Before(earliest) {
		at = earliest
	}
	_, err := r.create(ctx, cs, alg, storage.KeyNext, at, now, actor)
	return err
}

// activate moves n to active and retires the keys in olds.
func (r *Ring) activate(ctx context.Context, cs *changes, n *storage.SigningKey, olds []*storage.SigningKey, now time.Time, actor string) error {
	if err := r.transition(ctx, cs, n, storage.KeyActive, now, actor); err != nil {
		return err
	}
	return r.retireAll(ctx, cs, olds, now, actor)
}

func (r *Ring) retireAll(ctx context.Context, cs *changes, olds []*storage.SigningKey, now time.Time, actor string) error {
	for _, o := range olds {
		if err := r.transition(ctx, cs, o, storage.KeyRetired, now, actor); err != nil {
			return err
		}
	}
	return nil
}

// afterActivate returns keys as they are after activate: n active since
// now, olds retired since now. (Copies; the listed rows stay untouched.)
func (r *Ring) afterActivate(keys []*storage.SigningKey, n *storage.SigningKey, olds []*storage.SigningKey, now time.Time) []*storage.SigningKey {
	out := make([]*storage.SigningKey, 0, len(keys)+1)
	seen := false
	for _, k := range keys {
		c := *k
		switch {
		case k.KID == n.KID:
			c.State, c.ActivatedAt, seen = storage.KeyActive, now, true
		case slices.ContainsFunc(olds, func(o *storage.SigningKey) bool { return o.KID == k.KID }):
			c.State, c.RetiredAt = storage.KeyRetired, now
		}
		out = append(out, &c)
	}
	if !seen {
		c := *n
		c.State, c.ActivatedAt = storage.KeyActive, now
		out = append(out, &c)
	}
	return out
}

// transition moves k to state to with a conditional update. When another
// replica moved it first (ErrPreconditionFailed) that is not an error: the
// change is still announced so every replica reloads.
func (r *Ring) transition(ctx context.Context, cs *changes, k *storage.SigningKey, to storage.KeyState, now time.Time, actor string) error {
	err := r.cfg.Store.TransitionSigningKey(ctx, k.KID, k.State, to, now)
	if errors.Is(err, storage.ErrPreconditionFailed) {
		r.cfg.Logger.WithFields(logrus.Fields{"kid": k.KID, "alg": k.Algorithm, "from": k.State, "to": to}).
			Debug("signing key transition already made elsewhere")
		cs.kids = append(cs.kids, k.KID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("keys: %s %s → %s: %w", k.KID, k.State, to, err)
	}
	r.record(ctx, cs, k, k.State, string(to), actor, now)
	return nil
}

// create generates, seals and stores a key of alg in state (next or
// active).
func (r *Ring) create(ctx context.Context, cs *changes, alg string, state storage.KeyState, activateAt, now time.Time, actor string) (*storage.SigningKey, error) {
	row, priv, err := newSigningKey(r.cfg.Sealer, alg)
	if err != nil {
		return nil, err
	}
	row.State = state
	row.CreatedAt = now
	row.ActivateAt = activateAt
	if state == storage.KeyActive {
		row.ActivatedAt = now
	}
	if err := r.cfg.Store.CreateSigningKey(ctx, row); err != nil {
		return nil, fmt.Errorf("keys: store new %s key: %w", alg, err)
	}
	// Seed the private-key cache: the key is known good, so Load need not
	// unseal and parse it again (RSA-3072 parsing is not free).
	r.loadMu.Lock()
	r.private[row.KID] = priv
	r.loadMu.Unlock()
	r.record(ctx, cs, row, "none", string(state), actor, now)
	return row, nil
}

// record writes the one log line and audit event of a key transition.
// Nothing but identifiers and states: never key material.
func (r *Ring) record(ctx context.Context, cs *changes, k *storage.SigningKey, from storage.KeyState, to, actor string, now time.Time) {
	cs.kids = append(cs.kids, k.KID)
	r.cfg.Logger.WithFields(logrus.Fields{
		"kid": k.KID, "alg": k.Algorithm, "from": string(from), "to": to, "actor": actor,
	}).Info("signing key transition")
	if r.cfg.Audit == nil {
		return
	}
	r.cfg.Audit(ctx, storage.AuditEvent{
		Time:    now,
		Event:   "signing_key." + to,
		Actor:   actor,
		Outcome: "success",
		Details: map[string]string{"kid": k.KID, "alg": k.Algorithm, "from": string(from), "to": to},
	})
}

// deleteAfter is when a retired key may leave the JWKS. The store's
// conditional transition cannot set DeleteAfter, so a zero value means
// RetiredAt + Retention.
func (r *Ring) deleteAfter(k *storage.SigningKey) time.Time {
	if !k.DeleteAfter.IsZero() {
		return k.DeleteAfter
	}
	return k.RetiredAt.Add(r.cfg.Retention)
}

func byAlg(rows []*storage.SigningKey, alg string) []*storage.SigningKey {
	var out []*storage.SigningKey
	for _, k := range rows {
		if k.Algorithm == alg {
			out = append(out, k)
		}
	}
	return out
}

// inState returns the keys in state, active keys newest first (by
// ActivatedAt), others soonest first (by ActivateAt, then CreatedAt).
func inState(keys []*storage.SigningKey, state storage.KeyState) []*storage.SigningKey {
	var out []*storage.SigningKey
	for _, k := range keys {
		if k.State == state {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b *storage.SigningKey) int {
		if state == storage.KeyActive {
			return cmp.Or(b.ActivatedAt.Compare(a.ActivatedAt), cmp.Compare(a.KID, b.KID))
		}
		return cmp.Or(a.ActivateAt.Compare(b.ActivateAt), a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.KID, b.KID))
	})
	return out
}
