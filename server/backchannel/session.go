package backchannel

import (
	"context"
	"errors"
	"fmt"

	"github.com/bulwark-auth/bulwark/storage"
)

// SessionStore is what EndLoginSession needs: login sessions, the outbox
// and transactions.
type SessionStore interface {
	GetLoginSession(ctx context.Context, key string) (*storage.LoginSession, error)
	DeleteLoginSession(ctx context.Context, key string) error
	QueueLogouts(ctx context.Context, m storage.LogoutMatch) (int64, error)
	BeginTX(ctx context.Context) (context.Context, error)
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// EndLoginSession deletes the login session keyed key and, in the same
// transaction and after the deletion (so a relying party joining the
// session concurrently is either queued or refused), queues a logout for
// every relying party that joined it. It returns the session that ended,
// nil when there was none. Ending a session that is already gone is not an
// error.
func EndLoginSession(ctx context.Context, st SessionStore, key, reason string) (*storage.LoginSession, error) {
	tctx, err := st.BeginTX(ctx)
	if err != nil {
		return nil, fmt.Errorf("backchannel: begin: %w", err)
	}
	ls, err := endInTx(tctx, st, key, reason)
	if err != nil {
		_ = st.Rollback(tctx)
		return nil, err
	}
	if err := st.Commit(tctx); err != nil {
		return nil, fmt.Errorf("backchannel: commit: %w", err)
	}
	return ls, nil
}

func endInTx(ctx context.Context, st SessionStore, key, reason string) (*storage.LoginSession, error) {
	ls, err := st.GetLoginSession(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		ls = nil
	} else if err != nil {
		return nil, fmt.Errorf("backchannel: load login session: %w", err)
	}
	if err := st.DeleteLoginSession(ctx, key); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("backchannel: delete login session: %w", err)
	}
	if ls != nil && ls.SID != "" {
		if _, err := st.QueueLogouts(ctx, storage.LogoutMatch{SID: ls.SID, Subject: ls.Subject, Reason: reason}); err != nil {
			return nil, fmt.Errorf("backchannel: queue logouts: %w", err)
		}
	}
	return ls, nil
}
