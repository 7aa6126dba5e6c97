package main

import (
	"context"
	"time"

	"github.com/bulwark-auth/bulwark/storage"
	"github.com/sirupsen/logrus"
)

// janitorStore is what the janitor needs of a backend.
type janitorStore interface {
	storage.Janitor
	storage.Locker
}

// janitorLockName serialises the janitor across replicas.
const janitorLockName = "bulwark:janitor"

// janitorOnce removes expired rows and audit events past retention, if
// this replica wins the lock; other replicas skip the round.
func janitorOnce(ctx context.Context, st janitorStore, now time.Time, auditRetention time.Duration, batch int, log logrus.FieldLogger) (expired, audit int64, ran bool, err error) {
	release, ok, err := st.TryLock(ctx, janitorLockName)
	if err != nil || !ok {
		return 0, 0, false, err
	}
	defer release()
	if expired, err = st.DeleteExpired(ctx, now, batch); err != nil {
		return expired, 0, true, err
	}
	if auditRetention > 0 {
		if audit, err = st.TrimAudit(ctx, now.Add(-auditRetention), batch); err != nil {
			return expired, audit, true, err
		}
	}
	if expired > 0 || audit > 0 {
		log.WithFields(logrus.Fields{"expired_rows": expired, "audit_events": audit}).Info("janitor removed expired data")
	}
	return expired, audit, true, nil
}

// runJanitor calls janitorOnce every interval until ctx ends. Every replica
// runs it; the advisory lock lets one act per round.
func runJanitor(ctx context.Context, st janitorStore, every, auditRetention time.Duration, now func() time.Time, log logrus.FieldLogger) {
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
			if _, _, _, err := janitorOnce(ctx, st, now(), auditRetention, 1000, log); err != nil && ctx.Err() == nil {
				log.WithError(err).Warn("janitor round failed")
			}
		}
	}
}
