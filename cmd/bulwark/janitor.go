package main

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/storage"
)

// janitorStore is what the janitor needs of a backend.
type janitorStore interface {
	storage.Janitor
	storage.Locker
	DeleteEndedInitialAccessTokens(ctx context.Context, before time.Time, batch int) (int64, error)
}

// janitorLockName serialises the janitor across replicas.
const janitorLockName = "bulwark:janitor"

// retention is how long the janitor keeps data past its end; zero keeps
// it for good.
type retention struct {
	// Audit: audit events older than this go (--audit-retention).
	Audit time.Duration
	// InitialTokens: initial access tokens that expired or were revoked
	// longer ago than this go (--registration-token-retention).
	InitialTokens time.Duration
}

// retention is the janitor's retention settings.
func (c *config) retention() retention {
	return retention{Audit: c.AuditRetention, InitialTokens: c.RegistrationTokenRetention}
}

// janitorOnce removes expired rows, initial access tokens and audit
// events past their retention, if this replica wins the lock; other
// replicas skip the round. expired counts the rows and tokens removed.
func janitorOnce(ctx context.Context, st janitorStore, now time.Time, keep retention, batch int, log logrus.FieldLogger) (expired, audit int64, ran bool, err error) {
	release, ok, err := st.TryLock(ctx, janitorLockName)
	if err != nil || !ok {
		return 0, 0, false, err
	}
	defer release()
	if expired, err = st.DeleteExpired(ctx, now, batch); err != nil {
		return expired, 0, true, err
	}
	var tokens int64
	if keep.InitialTokens > 0 {
		tokens, err = st.DeleteEndedInitialAccessTokens(ctx, now.Add(-keep.InitialTokens), batch)
		expired += tokens
		if err != nil {
			return expired, 0, true, err
		}
	}
	if keep.Audit > 0 {
		if audit, err = st.TrimAudit(ctx, now.Add(-keep.Audit), batch); err != nil {
			return expired, audit, true, err
		}
	}
	if expired > 0 || audit > 0 {
		log.WithFields(logrus.Fields{"expired_rows": expired, "initial_access_tokens": tokens, "audit_events": audit}).Info("janitor removed expired data")
	}
	return expired, audit, true, nil
}

// runJanitor calls janitorOnce every interval until ctx ends. Every replica
// runs it; the advisory lock lets one act per round.
func runJanitor(ctx context.Context, st janitorStore, every time.Duration, keep retention, now func() time.Time, log logrus.FieldLogger) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, _, _, err := janitorOnce(ctx, st, now(), keep, 1000, log); err != nil && ctx.Err() == nil {
				log.WithError(err).Warn("janitor round failed")
			}
		}
	}
}
