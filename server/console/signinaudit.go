package console

import (
	"context"

	"github.com/bulwark-auth/bulwark/storage"
)

// auditSignInFailure records a refused console sign-in. The actor is
// "unknown": nobody proved who they are, and what was typed into the
// username field may be a password. The targeted account is named (as the
// subject) only when it exists; the source address comes from the request
// facts. reason is one of a fixed set of words; nothing presented (username,
// password, code) is recorded.
func (c *Console) auditSignInFailure(ctx context.Context, outcome, step, reason string, u *storage.User) {
	e := storage.AuditEvent{
		Event: EventLogin, Actor: "unknown", Outcome: outcome,
		Details: map[string]string{"step": step, "reason": reason},
	}
	if u != nil {
		e.Subject = u.ID
	}
	c.audit(ctx, e)
}

// passwordFailureReason names why the password step refused u (nil when
// the username is unknown).
func passwordFailureReason(u *storage.User, password string, match bool) string {
	switch {
	case u == nil:
		return "unknown_user"
	case u.Disabled:
		return "disabled"
	case len(u.AdminScopes) == 0:
		return "not_admin"
	case password == "" || !match:
		return "wrong_password"
	}
	return "refused"
}
