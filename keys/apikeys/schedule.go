package apikeys

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
)

// tickPage is how many keys Tick reads per ListAPIKeys call.
const tickPage = 200

// maxPendingTouches bounds the in-memory last-use batch; beyond it, Verify
// flushes early rather than grow without limit.
const maxPendingTouches = 10000

// touch remembers that key id was used at t.
func (s *Service) touch(id string, t time.Time) {
	s.touchMu.Lock()
	if prev, ok := s.touched[id]; !ok || t.After(prev) {
		s.touched[id] = t
	}
	full := len(s.touched) >= maxPendingTouches
	s.touchMu.Unlock()
	if full {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = s.FlushTouches(ctx)
		}()
	}
}

// FlushTouches writes the pending last-use times in one statement. On
// failure they are kept for the next flush.
func (s *Service) FlushTouches(ctx context.Context) error {
	s.touchMu.Lock()
	batch := s.touched
	s.touched = make(map[string]time.Time, len(batch))
	s.touchMu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := s.store.TouchAPIKeys(ctx, batch); err != nil {
		s.touchMu.Lock()
		for id, t := range batch {
			if prev, ok := s.touched[id]; !ok || t.After(prev) {
				s.touched[id] = t
			}
		}
		s.touchMu.Unlock()
		return fmt.Errorf("apikeys: record last use: %w", err)
	}
	return nil
}

// Tick flushes this replica's last-use batch, then, if this replica takes
// the scheduler lock, expires keys past ExpiresAt (rotating keys whose
// grace ended, keys past their hard end), rotates active keys whose RotateAt
// has come, and erases sealed successor secrets that can no longer be
// collected. Failures on single keys are logged and joined into the
// returned error; the other keys are still processed.
func (s *Service) Tick(ctx context.Context) error {
	var errs []error
	if err := s.FlushTouches(ctx); err != nil {
		errs = append(errs, err)
	}
	release, ok, err := s.locker.TryLock(ctx, LockName)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("apikeys: scheduler lock: %w", err))...)
	}
	if !ok {
		return errors.Join(errs...) // another replica is doing it
	}
	defer release()
	after := ""
	for {
		page, err := s.store.ListAPIKeys(ctx, storage.ListOptions{After: after, Limit: tickPage})
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("apikeys: scheduler list: %w", err))...)
		}
		for _, k := range page {
			if err := s.schedule(ctx, k); err != nil {
				s.log.WithError(err).WithField("key_id", k.ID).Warn("apikeys: scheduled change failed")
				errs = append(errs, fmt.Errorf("key %s: %w", k.ID, err))
			}
		}
		if len(page) < tickPage {
			return errors.Join(errs...)
		}
		after = page[len(page)-1].ID
	}
}

// schedule applies what is due to one key, reading the clock once per key.
func (s *Service) schedule(ctx context.Context, k *storage.APIKey) error {
	now := s.clock()
	live := k.Status == storage.APIKeyActive || k.Status == storage.APIKeyRotating
	var err error
	switch {
	case live && !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		err = s.expire(ctx, k)
	case k.Status == storage.APIKeyActive && k.ReplacedByID == "" && !k.RotateAt.IsZero() && !now.Before(k.RotateAt):
		_, _, err = s.rotate(ctx, k, ActorScheduler, true)
	case !live && len(k.SealedSuccessorSecret) > 0:
		up := *k
		up.SealedSuccessorSecret = nil
		err = s.store.UpdateAPIKey(ctx, &up, k.Version)
	}
	if errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, ErrConflict) {
		return nil // changed meanwhile; the next tick sees the new state
	}
	return err
}

// expire ends k because its ExpiresAt has passed, erasing an uncollected
// successor secret.
func (s *Service) expire(ctx context.Context, k *storage.APIKey) error {
	up := *k
	up.Status = storage.APIKeyExpired
	up.RotateAt = time.Time{}
	up.SealedSuccessorSecret = nil
	if err := s.store.UpdateAPIKey(ctx, &up, k.Version); err != nil {
		return err
	}
	s.notifyChange(ctx, k)
	details := map[string]string{"previous_status": string(k.Status)}
	if len(k.SealedSuccessorSecret) > 0 {
		details["uncollected_successor"] = k.ReplacedByID
	}
	s.record(ctx, "apikey.expire", ActorScheduler, "success", &up, details)
	return nil
}

// Run keeps the service current until ctx ends: it evicts cached
// verifications of keys announced on NotifyChannel, calls Tick every
// TickInterval and flushes last use every TouchInterval. It returns after
// a final flush.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.listen(ctx)
	}()
	defer wg.Wait()
	tick := time.NewTicker(s.tickEvery)
	defer tick.Stop()
	flush := time.NewTicker(s.touchEvery)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := s.FlushTouches(fctx); err != nil {
				s.log.WithError(err).Warn("apikeys: final last-use flush failed")
			}
			cancel()
			return
		case <-tick.C:
			if err := s.Tick(ctx); err != nil {
				s.log.WithError(err).Warn("apikeys: scheduler tick had failures")
			}
		case <-flush.C:
			if err := s.FlushTouches(ctx); err != nil {
				s.log.WithError(err).Warn("apikeys: last-use flush failed")
			}
		}
	}
}

// listen evicts cached verifications of every key id published on
// NotifyChannel until ctx ends. Whenever the subscription cannot be made
// or ends early, notices may have been missed, so the whole cache is
// purged before subscribing again.
func (s *Service) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		ch, err := s.notifier.Subscribe(ctx, NotifyChannel)
		if err != nil {
			s.log.WithError(err).Warn("apikeys: subscribing to key changes failed")
		} else {
			backoff = 100 * time.Millisecond
			for id := range ch {
				if id == "" { // notifications may have been lost
					s.hasher.Purge()
					continue
				}
				s.evictKey(ctx, id)
			}
		}
		if ctx.Err() != nil {
			return
		}
		s.hasher.Purge()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// evictKey drops cached verifications of key id. The cache is indexed by
// stored hash, so the hash is read back; if that fails, everything goes.
func (s *Service) evictKey(ctx context.Context, id string) {
	k, err := s.store.APIKeyByID(ctx, id)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.hasher.Purge()
		}
		return
	}
	s.hasher.Evict([]byte(k.Hash))
}
