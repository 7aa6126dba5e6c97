package admin

import (
	"context"
	"fmt"
	"strconv"

	"github.com/bulwark-auth/bulwark/storage"
)

// Reasons of the back-channel logouts the Service queues; the audit events
// of their delivery (server/backchannel) name them.
const (
	LogoutUserDisabled    = "user_disabled"
	LogoutUserDeleted     = "user_deleted"
	LogoutPasswordReset   = "password_reset"
	LogoutPasswordSet     = "password_set"
	LogoutTOTPReset       = "totp_reset"
	LogoutSessionsRevoked = "sessions_revoked"
	LogoutConsentRevoked  = "consent_revoked"
)

// queueLogouts queues an OpenID Connect back-channel logout for every
// relying party holding a session m matches. It runs in ctx's transaction,
// after the state change that ends those sessions, so the logouts commit
// (and are delivered) exactly when that change does.
func (s *Service) queueLogouts(ctx context.Context, m storage.LogoutMatch) (int64, error) {
	n, err := s.store.QueueLogouts(ctx, m)
	if err != nil {
		return 0, fmt.Errorf("admin: queue back-channel logouts: %w", err)
	}
	return n, nil
}

// endSessions deletes every login session of subject and queues the
// back-channel logouts of their relying parties, in ctx's transaction (the
// caller opens it: sessions first, then the queue, so a relying party
// joining a session meanwhile is either queued or refused).
func (s *Service) endSessions(ctx context.Context, subject, reason string) (sessions, logouts int64, err error) {
	if sessions, err = s.store.DeleteLoginSessionsBySubject(ctx, subject); err != nil {
		return 0, 0, fmt.Errorf("admin: delete login sessions: %w", err)
	}
	logouts, err = s.queueLogouts(ctx, storage.LogoutMatch{Subject: subject, Reason: reason})
	return sessions, logouts, err
}

// SessionsRevoked counts what RevokeSessions ended.
type SessionsRevoked struct {
	LoginSessions int64 `json:"login_sessions_deleted"`
	Logouts       int64 `json:"backchannel_logouts_queued"`
}

// RevokeSessions signs user id out everywhere: every login session (public
// and console) ends, and every relying party that joined one gets a
// back-channel logout. Tokens stay valid (DisableUser revokes them too).
// It takes power away, so the actor need not hold the user's scopes.
func (s *Service) RevokeSessions(ctx context.Context, a Actor, id string) (SessionsRevoked, error) {
	var n SessionsRevoked
	err := s.inTx(ctx, func(ctx context.Context) error {
		if _, err := s.store.UserByID(ctx, id); err != nil {
			return fmt.Errorf("admin: revoke sessions: %w", err)
		}
		var err error
		n.LoginSessions, n.Logouts, err = s.endSessions(ctx, id, LogoutSessionsRevoked)
		return err
	})
	if err != nil {
		return SessionsRevoked{}, err
	}
	s.record(ctx, a, "user.sessions_revoked", storage.AuditEvent{Subject: id, Details: map[string]string{
		"login_sessions_deleted": strconv.FormatInt(n.LoginSessions, 10), "backchannel_logouts_queued": strconv.FormatInt(n.Logouts, 10),
	}})
	return n, nil
}
