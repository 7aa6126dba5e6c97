package admin

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/bulwark-auth/bulwark/storage"
)

// SetPassword sets the password of user id to one the operator chose (the
// CLI reads it from a file or standard input) and ends the user's login
// sessions, like ResetPassword. The actor must hold every admin scope of
// the user: knowing the password gives the account.
func (s *Service) SetPassword(ctx context.Context, a Actor, id, password string) (*storage.User, error) {
	switch n := utf8.RuneCountInString(password); {
	case !utf8.ValidString(password):
		return nil, invalid("invalid_request", "the password is invalid", storage.FieldProblem{Field: "password", Problem: "must be valid UTF-8"})
	case n < MinPasswordLength:
		return nil, invalid("invalid_request", "the password is invalid",
			storage.FieldProblem{Field: "password", Problem: fmt.Sprintf("must be at least %d characters", MinPasswordLength)})
	case len(password) > maxPasswordLength:
		return nil, invalid("invalid_request", "the password is invalid",
			storage.FieldProblem{Field: "password", Problem: fmt.Sprintf("must be at most %d bytes", maxPasswordLength)})
	}
	h, err := s.hasher.Hash(ctx, []byte(password))
	if err != nil {
		return nil, fmt.Errorf("admin: hash password: %w", err)
	}
	u, err := s.modifyUser(ctx, id, func(u *storage.User) error {
		if err := requireTargetScopes(a, u); err != nil {
			return err
		}
		u.PasswordHash = string(h)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var n, logouts int64
	err = s.inTx(ctx, func(ctx context.Context) error {
		n, logouts, err = s.endSessions(ctx, id, LogoutPasswordSet)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.record(ctx, a, "user.password_set", storage.AuditEvent{Subject: id, Details: map[string]string{
		"login_sessions_deleted": fmt.Sprint(n), "backchannel_logouts_queued": fmt.Sprint(logouts),
	}})
	return u, nil
}
