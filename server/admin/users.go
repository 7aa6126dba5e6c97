package admin

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/storage"
)

// UserInput describes a new user.
type UserInput struct {
	Username string
	Email    string
	// Password, when empty, is generated and returned once.
	Password string
	// AdminScopes must be admin scopes the creating actor holds.
	AdminScopes []string
}

// Containment counts what DisableUser ended.
type Containment struct {
	LoginSessions int64 `json:"login_sessions_deleted"`
	Tokens        int64 `json:"tokens_revoked"`
	APIKeys       int64 `json:"api_keys_revoked"`
}

// redactedTOTP stands in for the sealed TOTP secret in every user the
// Service returns. The real sealed bytes never leave the Service; the
// marker keeps len(u.TOTPSecretSealed) > 0 meaning "TOTP is enrolled" for
// callers (the API's totp_enrolled, the console's badge). It is no secret
// and opens under no key, so a caller that mistakes it for the sealed
// secret fails closed.
const redactedTOTP = "redacted: totp enrolled"

// TOTPEnrolled reports whether u (as returned by the Service, or as
// stored) has a TOTP second factor.
func TOTPEnrolled(u *storage.User) bool { return u != nil && len(u.TOTPSecretSealed) > 0 }

func redactUser(u *storage.User) *storage.User {
	out := *u
	out.PasswordHash = ""
	out.TOTPSecretSealed = nil
	if len(u.TOTPSecretSealed) > 0 {
		out.TOTPSecretSealed = []byte(redactedTOTP)
	}
	out.AdminScopes = slices.Clone(u.AdminScopes)
	return &out
}

// ListUsers pages through users by id (no password hashes).
func (s *Service) ListUsers(ctx context.Context, opts storage.ListOptions) ([]*storage.User, error) {
	opts.Limit = clampLimit(opts.Limit)
	us, err := s.store.ListUsers(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("admin: list users: %w", err)
	}
	for i, u := range us {
		us[i] = redactUser(u)
	}
	return us, nil
}

// GetUser returns the user (no password hash); Version is its ETag.
func (s *Service) GetUser(ctx context.Context, id string) (*storage.User, error) {
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("admin: get user: %w", err)
	}
	return redactUser(u), nil
}

func (s *Service) validateUser(a Actor, in UserInput) error {
	v := &InvalidError{Code: "invalid_request", Description: "the user is invalid"}
	add := func(field, problem string) {
		v.Problems = append(v.Problems, storage.FieldProblem{Field: field, Problem: problem})
	}
	switch {
	case strings.TrimSpace(in.Username) == "":
		add("username", "is required")
	case utf8.RuneCountInString(in.Username) > 64 || !utf8.ValidString(in.Username) ||
		strings.ContainsFunc(in.Username, func(r rune) bool {
			return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
		}):
		add("username", "must be at most 64 characters without spaces, control or formatting characters")
	}
	if in.Email != "" {
		if a, err := mail.ParseAddress(in.Email); err != nil || a.Address != in.Email || len(in.Email) > 254 {
			add("email", "must be a plain email address")
		}
	}
	if in.Password != "" {
		switch n := utf8.RuneCountInString(in.Password); {
		case n < MinPasswordLength:
			add("password", fmt.Sprintf("must be at least %d characters", MinPasswordLength))
		case len(in.Password) > maxPasswordLength:
			add("password", fmt.Sprintf("must be at most %d bytes", maxPasswordLength))
		}
	}
	for _, sc := range in.AdminScopes {
		if !adminScope(sc) {
			if len(sc) > 64 {
				sc = sc[:64] + "…"
			}
			add("admin_scopes", fmt.Sprintf("unknown admin scope %q", sc))
		}
	}
	if len(v.Problems) > 0 {
		return v
	}
	if extra := missingScopes(in.AdminScopes, a.Scopes); len(extra) > 0 {
		return escalation("granting these admin scopes", extra)
	}
	return nil
}

// CreateUser creates a user. password is the generated password when
// in.Password was empty (show it once), "" otherwise.
func (s *Service) CreateUser(ctx context.Context, a Actor, in UserInput) (u *storage.User, password string, err error) {
	if err := s.validateUser(a, in); err != nil {
		return nil, "", err
	}
	password = in.Password
	generated := password == ""
	if generated {
		if password, err = s.randomToken(18); err != nil {
			return nil, "", err
		}
	}
	h, err := s.hasher.Hash(ctx, []byte(password))
	if err != nil {
		return nil, "", fmt.Errorf("admin: hash password: %w", err)
	}
	id, err := s.randomID()
	if err != nil {
		return nil, "", err
	}
	now := s.clock()
	scopes := slices.Clone(in.AdminScopes)
	slices.Sort(scopes)
	u = &storage.User{
		ID: id, Username: in.Username, Email: in.Email, PasswordHash: string(h),
		AdminScopes: slices.Compact(scopes), CreatedAt: now, UpdatedAt: now,
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		return nil, "", fmt.Errorf("admin: create user: %w", err)
	}
	s.record(ctx, a, "user.created", storage.AuditEvent{Subject: u.ID, Details: map[string]string{
		"username": u.Username, "admin_scopes": strings.Join(u.AdminScopes, " "),
	}})
	if !generated {
		password = ""
	}
	return redactUser(u), password, nil
}

// isSelf reports whether the actor is the console session of user id.
func isSelf(a Actor, id string) bool { return a.ID == "user:"+id }

// requireTargetScopes refuses an operation that would put u's power within
// the actor's reach (a password it learns) or give u's power back (enable),
// unless the actor holds every admin scope u holds. Otherwise admin:users
// alone would be enough to take over any administrator.
func requireTargetScopes(a Actor, u *storage.User) error {
	if extra := missingScopes(u.AdminScopes, a.Scopes); len(extra) > 0 {
		return escalation("acting on a user who holds these admin scopes", extra)
	}
	return nil
}

// DisableUser is incident containment: in one transaction it marks the
// user disabled, deletes every login session (public and console) and
// revokes every token issued to the user. It takes power away, so the
// actor need not hold the user's scopes; but a console user cannot
// disable their own account (that locks them, and if they are the last
// administrator everyone, out of the console).
func (s *Service) DisableUser(ctx context.Context, a Actor, id string) (*storage.User, Containment, error) {
	if isSelf(a, id) {
		return nil, Containment{}, invalid("invalid_request", "you cannot disable your own account",
			storage.FieldProblem{Field: "id", Problem: "is your own account; ask another administrator"})
	}
	var (
		out     *storage.User
		n       Containment
		logouts int64
	)
	err := retryVersion(func() error {
		return s.inTx(ctx, func(ctx context.Context) error {
			u, err := s.store.UserByID(ctx, id)
			if err != nil {
				return fmt.Errorf("admin: disable user: %w", err)
			}
			if !u.Disabled {
				u.Disabled = true
				u.UpdatedAt = s.clock()
				if err := s.store.UpdateUser(ctx, u, u.Version); err != nil {
					return fmt.Errorf("admin: disable user: %w", err)
				}
			}
			if n.LoginSessions, logouts, err = s.endSessions(ctx, id, LogoutUserDisabled); err != nil {
				return err
			}
			if n.Tokens, err = s.store.RevokeTokensBySubject(ctx, id); err != nil {
				return fmt.Errorf("admin: revoke user tokens: %w", err)
			}
			out = u
			return nil
		})
	})
	if err != nil {
		return nil, Containment{}, err
	}
	// The user's own API keys are their credentials too.
	if n.APIKeys, err = s.revokeOwnedKeys(ctx, a, apikeys.OwnerUser, id); err != nil {
		return nil, n, err
	}
	s.record(ctx, a, "user.disabled", storage.AuditEvent{Subject: id, Details: map[string]string{
		"login_sessions_deleted": fmt.Sprint(n.LoginSessions), "tokens_revoked": fmt.Sprint(n.Tokens),
		"api_keys_revoked": fmt.Sprint(n.APIKeys), "backchannel_logouts_queued": fmt.Sprint(logouts),
	}})
	return redactUser(out), n, nil
}

// EnableUser lifts DisableUser. It gives the user's scopes back, so the
// actor must hold them all.
func (s *Service) EnableUser(ctx context.Context, a Actor, id string) (*storage.User, error) {
	u, err := s.modifyUser(ctx, id, func(u *storage.User) error {
		if err := requireTargetScopes(a, u); err != nil {
			return err
		}
		u.Disabled = false
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.record(ctx, a, "user.enabled", storage.AuditEvent{Subject: id})
	return u, nil
}

// ResetPassword sets a generated password (returned once) and ends the
// user's login sessions, so whoever knew the old one is signed out. The
// actor learns the password, and with it the account: it must hold every
// admin scope of the user.
func (s *Service) ResetPassword(ctx context.Context, a Actor, id string) (*storage.User, string, error) {
	password, err := s.randomToken(18)
	if err != nil {
		return nil, "", err
	}
	h, err := s.hasher.Hash(ctx, []byte(password))
	if err != nil {
		return nil, "", fmt.Errorf("admin: hash password: %w", err)
	}
	// The sessions end in the same transaction as the hash changes, and
	// first: no moment exists where the new password is set while a
	// session opened with the old one still lives.
	var (
		u       *storage.User
		n       int64
		logouts int64
	)
	err = retryVersion(func() error {
		return s.inTx(ctx, func(ctx context.Context) error {
			cur, err := s.store.UserByID(ctx, id)
			if err != nil {
				return fmt.Errorf("admin: user: %w", err)
			}
			if err := requireTargetScopes(a, cur); err != nil {
				return err
			}
			if n, logouts, err = s.endSessions(ctx, id, LogoutPasswordReset); err != nil {
				return err
			}
			cur.PasswordHash = string(h)
			cur.UpdatedAt = s.clock()
			if err := s.store.UpdateUser(ctx, cur, cur.Version); err != nil {
				return fmt.Errorf("admin: user: %w", err)
			}
			u = redactUser(cur)
			return nil
		})
	})
	if err != nil {
		return nil, "", err
	}
	s.record(ctx, a, "user.password_reset", storage.AuditEvent{Subject: id, Details: map[string]string{
		"login_sessions_deleted": fmt.Sprint(n), "backchannel_logouts_queued": fmt.Sprint(logouts),
	}})
	return u, password, nil
}

// ResetTOTP removes the user's TOTP second factor (lost phone, or the
// user turning it off). The next sign-in asks for the password only, and
// the user may enrol again. Whoever resets it can then get in with the
// password alone, so the actor must hold every admin scope of the user,
// as for ResetPassword.
//
// An actor may reset their own second factor (the console's "remove" on
// the Account page uses this path): it needs no scope beyond their own,
// and their sessions stay, since they already passed the factor. For
// anyone else, the user's login sessions end, so a session opened with
// the old factor (perhaps by whoever has the lost phone) does not outlive
// it.
func (s *Service) ResetTOTP(ctx context.Context, a Actor, userID string) (*storage.User, error) {
	var (
		u           *storage.User
		wasEnrolled bool
		n           int64
	)
	// As in ResetPassword: the sessions end in the transaction that
	// removes the factor, and first.
	err := retryVersion(func() error {
		return s.inTx(ctx, func(ctx context.Context) error {
			cur, err := s.store.UserByID(ctx, userID)
			if err != nil {
				return fmt.Errorf("admin: user: %w", err)
			}
			if err := requireTargetScopes(a, cur); err != nil {
				return err
			}
			if !isSelf(a, userID) {
				if n, _, err = s.endSessions(ctx, userID, LogoutTOTPReset); err != nil {
					return err
				}
			}
			wasEnrolled = len(cur.TOTPSecretSealed) > 0
			cur.TOTPSecretSealed = nil
			cur.UpdatedAt = s.clock()
			if err := s.store.UpdateUser(ctx, cur, cur.Version); err != nil {
				return fmt.Errorf("admin: user: %w", err)
			}
			u = redactUser(cur)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	details := map[string]string{"was_enrolled": fmt.Sprint(wasEnrolled)}
	if !isSelf(a, userID) {
		details["login_sessions_deleted"] = fmt.Sprint(n)
	}
	s.record(ctx, a, "user.totp_reset", storage.AuditEvent{Subject: userID, Details: details})
	return u, nil
}

// modifyUser applies fn to the stored user and saves it, retrying when a
// concurrent writer won.
func (s *Service) modifyUser(ctx context.Context, id string, fn func(*storage.User) error) (*storage.User, error) {
	var out *storage.User
	err := retryVersion(func() error {
		u, err := s.store.UserByID(ctx, id)
		if err != nil {
			return fmt.Errorf("admin: user: %w", err)
		}
		if err := fn(u); err != nil {
			return err
		}
		u.UpdatedAt = s.clock()
		if err := s.store.UpdateUser(ctx, u, u.Version); err != nil {
			return fmt.Errorf("admin: user: %w", err)
		}
		out = u
		return nil
	})
	if err != nil {
		return nil, err
	}
	return redactUser(out), nil
}

// ListConsents returns the consents of user id; ErrNotFound if the user is
// unknown.
func (s *Service) ListConsents(ctx context.Context, id string) ([]*storage.Consent, error) {
	if _, err := s.store.UserByID(ctx, id); err != nil {
		return nil, fmt.Errorf("admin: consents: %w", err)
	}
	cs, err := s.store.ListConsents(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("admin: consents: %w", err)
	}
	return cs, nil
}

// RevokeConsent removes the user's consent to clientID and, in the same
// transaction, revokes the tokens that consent produced. It returns how
// many tokens were revoked.
func (s *Service) RevokeConsent(ctx context.Context, a Actor, userID, clientID string) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(ctx context.Context) error {
		if err := s.store.RevokeConsent(ctx, userID, clientID); err != nil {
			return fmt.Errorf("admin: revoke consent: %w", err)
		}
		var err error
		if n, err = s.store.RevokeTokensBySubjectAndClient(ctx, userID, clientID); err != nil {
			return fmt.Errorf("admin: revoke consent tokens: %w", err)
		}
		// The user's sessions at this client end with the consent.
		_, err = s.queueLogouts(ctx, storage.LogoutMatch{Subject: userID, ClientID: clientID, Reason: LogoutConsentRevoked})
		return err
	})
	if err != nil {
		return 0, err
	}
	s.record(ctx, a, "consent.revoked", storage.AuditEvent{Subject: userID, ClientID: clientID, Details: map[string]string{
		"tokens_revoked": fmt.Sprint(n),
	}})
	return n, nil
}

// UserUpdate is the admin-controlled part of a user that UpdateUser
// replaces. Passwords change only through ResetPassword and
// ChangeOwnPassword; disabling only through DisableUser (which also ends
// sessions and revokes tokens).
type UserUpdate struct {
	Username    string
	Email       string
	AdminScopes []string
}

// UpdateUser replaces the username, email and admin scopes of user id if
// its Version is still ifVersion (storage.ErrPreconditionFailed
// otherwise). The actor must hold every admin scope the user holds now
// and every scope it will hold, and cannot change their own scopes (that
// is how the last administrator locks everyone out, or grants themselves
// more).
func (s *Service) UpdateUser(ctx context.Context, a Actor, id string, in UserUpdate, ifVersion int64) (*storage.User, error) {
	if err := s.validateUser(a, UserInput{Username: in.Username, Email: in.Email, AdminScopes: in.AdminScopes}); err != nil {
		return nil, err
	}
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("admin: update user: %w", err)
	}
	if u.Version != ifVersion {
		return nil, fmt.Errorf("admin: update user %d: %w", ifVersion, storage.ErrPreconditionFailed)
	}
	if err := requireTargetScopes(a, u); err != nil {
		return nil, err
	}
	scopes := slices.Clone(in.AdminScopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	if isSelf(a, id) && !slices.Equal(scopes, sortedCopy(u.AdminScopes)) {
		return nil, invalid("invalid_request", "you cannot change your own admin scopes",
			storage.FieldProblem{Field: "admin_scopes", Problem: "are your own; ask another administrator"})
	}
	u.Username, u.Email, u.AdminScopes = in.Username, in.Email, scopes
	u.UpdatedAt = s.clock()
	if err := s.store.UpdateUser(ctx, u, ifVersion); err != nil {
		return nil, fmt.Errorf("admin: update user: %w", err)
	}
	s.record(ctx, a, "user.updated", storage.AuditEvent{Subject: id, Details: map[string]string{
		"username": u.Username, "admin_scopes": strings.Join(u.AdminScopes, " "), "version": fmt.Sprint(u.Version),
	}})
	return redactUser(u), nil
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// DeleteUser removes user id for good: in one transaction it revokes
// every token issued to the user and deletes the user with their consents
// and login sessions; then it revokes the API keys the user owns. Unlike
// DisableUser it cannot be undone, so the actor must hold every admin
// scope of the user; nobody deletes their own account.
func (s *Service) DeleteUser(ctx context.Context, a Actor, id string) (Containment, error) {
	if isSelf(a, id) {
		return Containment{}, invalid("invalid_request", "you cannot delete your own account",
			storage.FieldProblem{Field: "id", Problem: "is your own account; ask another administrator"})
	}
	var n Containment
	err := s.inTx(ctx, func(ctx context.Context) error {
		u, err := s.store.UserByID(ctx, id)
		if err != nil {
			return fmt.Errorf("admin: delete user: %w", err)
		}
		if err := requireTargetScopes(a, u); err != nil {
			return err
		}
		if n.Tokens, err = s.store.RevokeTokensBySubject(ctx, id); err != nil {
			return fmt.Errorf("admin: revoke user tokens: %w", err)
		}
		if n.LoginSessions, _, err = s.endSessions(ctx, id, LogoutUserDeleted); err != nil {
			return err
		}
		if err := s.store.DeleteUser(ctx, id); err != nil {
			return fmt.Errorf("admin: delete user: %w", err)
		}
		return nil
	})
	if err != nil {
		return Containment{}, err
	}
	if n.APIKeys, err = s.revokeOwnedKeys(ctx, a, apikeys.OwnerUser, id); err != nil {
		return n, err
	}
	s.record(ctx, a, "user.deleted", storage.AuditEvent{Subject: id, Details: map[string]string{
		"login_sessions_deleted": fmt.Sprint(n.LoginSessions), "tokens_revoked": fmt.Sprint(n.Tokens),
		"api_keys_revoked": fmt.Sprint(n.APIKeys),
	}})
	return n, nil
}

// ErrWrongPassword is ChangeOwnPassword's answer to a wrong current
// password.
var ErrWrongPassword = errors.New("admin: the current password is wrong")

// FindUser returns the user with this username (case-insensitive), no
// password hash; storage.ErrNotFound if there is none.
func (s *Service) FindUser(ctx context.Context, username string) (*storage.User, error) {
	u, err := s.store.UserByUsername(ctx, username)
	if err != nil {
		return nil, fmt.Errorf("admin: find user: %w", err)
	}
	return redactUser(u), nil
}

// ChangeOwnPassword sets a new password for user id, who must be the
// actor, after checking the current one: a stolen session or key alone
// cannot take the account over for good. It needs no admin scope beyond
// being that user.
func (s *Service) ChangeOwnPassword(ctx context.Context, a Actor, id, current, next string) (*storage.User, error) {
	if !isSelf(a, id) {
		return nil, invalid("invalid_request", "only the user themselves can change a password this way; administrators reset it",
			storage.FieldProblem{Field: "id", Problem: "is not your account"})
	}
	if err := s.validateUser(a, UserInput{Username: "x", Password: next}); err != nil {
		var inv *InvalidError
		if errors.As(err, &inv) {
			for i := range inv.Problems {
				inv.Problems[i].Field = "new_password"
			}
		}
		return nil, err
	}
	if next == "" {
		return nil, invalid("invalid_request", "the new password is invalid", storage.FieldProblem{Field: "new_password", Problem: "is required"})
	}
	stored, err := s.store.UserByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("admin: change password: %w", err)
	}
	if len(current) > maxPasswordLength || s.hasher.Compare(ctx, []byte(stored.PasswordHash), []byte(current)) != nil {
		s.record(ctx, a, "user.password_change_failed", storage.AuditEvent{Subject: id, Outcome: "failure"})
		return nil, ErrWrongPassword
	}
	h, err := s.hasher.Hash(ctx, []byte(next))
	if err != nil {
		return nil, fmt.Errorf("admin: hash password: %w", err)
	}
	u, err := s.modifyUser(ctx, id, func(u *storage.User) error {
		if u.PasswordHash != stored.PasswordHash {
			// Changed since the check: the current password we checked
			// is no longer current.
			return ErrWrongPassword
		}
		u.PasswordHash = string(h)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.record(ctx, a, "user.password_changed", storage.AuditEvent{Subject: id})
	return u, nil
}
