package console

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"image/png"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

// pendingLifetime is how long the TOTP step of a sign-in stays open.
const pendingLifetime = 5 * time.Minute

// maxTOTPFailures codes may be tried in one pending sign-in; the next
// attempt ends it.
const maxTOTPFailures = 5

// Whoever knows the password can start sign-in after sign-in, so codes
// also count per user: maxUserTOTPFailures within totpLockout, then the
// user's second factor is locked until that window ends. Without this,
// six-digit codes fall to a patient password holder (about 3 in 10^6 are
// valid at a time). Both counts live in the store and are shared by every
// replica.
const (
	maxUserTOTPFailures = 10
	totpLockout         = 15 * time.Minute
)

// loginData is the sign-in page.
type loginData struct {
	Username string
}

var loginMessages = map[string]string{
	"expired":     "Your session expired. Sign in again.",
	"signed_out":  "You have been signed out.",
	"everywhere":  "You signed yourself out everywhere, here too. Sign in again to continue.",
	"restart":     "Sign in again to continue.",
	"totp_locked": "Too many wrong codes. Wait 15 minutes, then sign in again.",
}

// audit fills request facts and hands e to cfg.Audit.
func (c *Console) audit(ctx context.Context, e storage.AuditEvent) {
	e.Time = c.cfg.Now().UTC()
	if info := reqinfo.From(ctx); info != nil {
		e.RequestID = info.ID
		e.SourceIP = info.RemoteIP
		e.UserAgent = info.UserAgent
	}
	c.cfg.Audit(ctx, e)
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	token, err := c.preToken(w, r)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.render(w, http.StatusOK, "login", view{Title: "Sign in", CSRF: token, Flash: loginMessages[r.URL.Query().Get("m")], Data: loginData{}})
}

// loginSubmit checks username and password. An unknown, disabled or
// non-admin user costs one Argon2id comparison too and gets the same
// answer, so neither timing nor text reveals which usernames exist.
func (c *Console) loginSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil || !c.checkPreToken(r) {
		c.forbidden(w, nil, "The sign-in form was missing its security token or it has expired. Reload the page and try again.")
		return
	}
	username := strings.TrimSpace(r.PostForm.Get("username"))
	password := r.PostForm.Get("password")
	ip := sourceIP(ctx)
	// Counted on every replica before any password work, and the same
	// for every username.
	verdict, err := c.cfg.Guard.Reserve(ctx, username, ip)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if !verdict.Allowed {
		c.auditSignInFailure(ctx, "denied", "password", "throttled", nil)
		token, err := c.preToken(w, r)
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		w.Header().Set("Retry-After", strconv.FormatInt(int64(max(1, (verdict.RetryAfter+time.Second-1)/time.Second)), 10))
		c.render(w, http.StatusTooManyRequests, "login", view{
			Title: "Sign in", CSRF: token, Error: "Too many failed sign-ins. Wait a moment and try again.",
			Data: loginData{Username: username},
		})
		return
	}
	var user *storage.User
	hash := c.dummy
	if username != "" && len(username) <= 256 {
		u, err := c.cfg.Store.UserByUsername(ctx, username)
		switch {
		case err == nil:
			user, hash = u, []byte(u.PasswordHash)
		case !errors.Is(err, storage.ErrNotFound):
			c.fail(w, r, nil, err)
			return
		}
	}
	match := len(password) <= 1024 && c.cfg.Hasher.Compare(ctx, hash, []byte(password)) == nil
	if user == nil || user.Disabled || len(user.AdminScopes) == 0 || password == "" || !match {
		c.cfg.Guard.Fail(ip)
		c.auditSignInFailure(ctx, "failure", "password", passwordFailureReason(user, password, match), user)
		token, err := c.preToken(w, r)
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		c.render(w, http.StatusUnauthorized, "login", view{
			Title: "Sign in", CSRF: token, Error: "Incorrect username or password.",
			Data: loginData{Username: username},
		})
		return
	}
	c.guardSucceeded(ctx, c.cfg.Guard, username)
	if len(user.TOTPSecretSealed) > 0 {
		if err := c.startSession(ctx, w, r, user, pendingKind, pendingLifetime); err != nil {
			c.fail(w, r, nil, err)
			return
		}
		http.Redirect(w, r, Prefix+"/login/totp", http.StatusSeeOther)
		return
	}
	c.finishLogin(w, r, user, "password")
}

// sourceIP is the request's client address as the server determined it
// (trusted proxies applied), or the zero Addr.
func sourceIP(ctx context.Context) netip.Addr {
	return reqinfo.ClientIP(ctx)
}

// finishLogin starts the console session and lands on the overview.
func (c *Console) finishLogin(w http.ResponseWriter, r *http.Request, u *storage.User, method string) {
	ctx := r.Context()
	if err := c.startSession(ctx, w, r, u, SessionKind, c.cfg.AbsoluteTimeout); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	http.SetCookie(w, c.cookie(c.preCookieName(), "", -1))
	reqinfo.From(ctx).SetSubject(u.ID)
	c.audit(ctx, storage.AuditEvent{Event: EventLogin, Actor: "user:" + u.ID, Subject: u.ID, Outcome: "success", Details: map[string]string{"method": method}})
	http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
}

// pending returns the half-finished sign-in of the request and its user.
func (c *Console) pending(ctx context.Context, r *http.Request) (*storage.LoginSession, *storage.User, error) {
	ls, err := c.cookieSession(ctx, r, pendingKind)
	if err != nil || ls == nil {
		return nil, nil, err
	}
	if !c.cfg.Now().Before(ls.ExpiresAt) {
		return nil, nil, nil
	}
	u, err := c.cfg.Store.UserByID(ctx, ls.Subject)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("console: load user: %w", err)
	}
	if u.Disabled || len(u.AdminScopes) == 0 || len(u.TOTPSecretSealed) == 0 {
		return nil, nil, nil
	}
	return ls, u, nil
}

func (c *Console) totpPage(w http.ResponseWriter, r *http.Request) {
	ls, _, err := c.pending(r.Context(), r)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if ls == nil {
		c.toLogin(w, r, "restart")
		return
	}
	c.render(w, http.StatusOK, "totp", view{Title: "Two-factor authentication", CSRF: ls.Data["csrf"]})
}

// totpSubmit checks the second factor. A code is accepted once (replay
// guard), and a pending sign-in dies after maxTOTPFailures wrong codes.
func (c *Console) totpSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ls, u, err := c.pending(ctx, r)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if ls == nil {
		c.toLogin(w, r, "restart")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil || !equal(r.PostForm.Get("csrf_token"), ls.Data["csrf"]) {
		c.forbidden(w, nil, "The form was missing its security token or it has expired. Sign in again.")
		return
	}
	secret, err := c.cfg.Sealer.Open(u.TOTPSecretSealed, []byte(u.ID))
	if err != nil {
		c.fail(w, r, nil, fmt.Errorf("console: open totp secret of %s: %w", u.ID, err))
		return
	}
	// Counted before the code is checked, on every replica: first this
	// pending sign-in's attempt, then (only while the sign-in may still
	// try) the user's. A burst therefore checks at most maxTOTPFailures
	// codes per pending sign-in and maxUserTOTPFailures per user.
	ip := sourceIP(ctx)
	pend, err := c.pendingGuard.Reserve(ctx, ls.Key, netip.Addr{})
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if !pend.Allowed {
		_ = c.cfg.Store.DeleteLoginSession(ctx, ls.Key)
		c.toLogin(w, r, "restart")
		return
	}
	verdict, err := c.cfg.TOTPGuard.Reserve(ctx, u.ID, ip)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if !verdict.Allowed {
		// Not even checked: a right code guessed during the lockout must
		// not be confirmed.
		c.auditSignInFailure(ctx, "failure", "totp", "locked", u)
		_ = c.cfg.Store.DeleteLoginSession(ctx, ls.Key)
		c.toLogin(w, r, "totp_locked")
		return
	}
	code := strings.TrimSpace(strings.ReplaceAll(r.PostForm.Get("code"), " ", ""))
	ok, err := c.checkCode(ctx, u.ID, string(secret), code)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if !ok {
		c.cfg.TOTPGuard.Fail(ip)
		c.auditSignInFailure(ctx, "failure", "totp", "wrong_code", u)
		c.render(w, http.StatusUnauthorized, "totp", view{Title: "Two-factor authentication", CSRF: ls.Data["csrf"], Error: "That code is not valid. Enter the current code from your authenticator app."})
		return
	}
	c.guardSucceeded(ctx, c.cfg.TOTPGuard, u.ID)
	// The pending sign-in is spent; a second code must not reuse it.
	if err := c.cfg.Store.DeleteLoginSession(ctx, ls.Key); err != nil && !errors.Is(err, storage.ErrNotFound) {
		c.fail(w, r, nil, err)
		return
	}
	c.finishLogin(w, r, u, "password+totp")
}

// guardSucceeded refunds the attempt a successful check reserved. A lost
// refund only leaves one attempt counted until its window ends.
func (c *Console) guardSucceeded(ctx context.Context, g LoginGuard, account string) {
	if err := g.Succeed(ctx, account); err != nil {
		c.cfg.Logger.WithError(err).Warn("console: guard refund")
	}
}

// RFC 6238 defaults: 30-second steps, and one step of clock skew either
// way (§5.2).
const (
	totpPeriod = 30
	totpSkew   = 1
)

// totpOpts are the RFC 6238 defaults above, six SHA-1 digits.
func totpOpts() totp.ValidateOpts {
	return totp.ValidateOpts{Period: totpPeriod, Skew: totpSkew, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
}

// checkCode validates code for user id (RFC 6238 §4, one step of skew
// either way, §5.2) and consumes it: the time step it belongs to is marked
// used in the store with one INSERT … ON CONFLICT DO NOTHING, so the same
// code is accepted once across every replica, however many race.
func (c *Console) checkCode(ctx context.Context, userID, secret, code string) (bool, error) {
	if len(code) != 6 {
		return false, nil
	}
	step, ok := matchStep(secret, code, c.cfg.Now())
	if !ok {
		return false, nil
	}
	// The code of step s is accepted until step s+totpSkew ends.
	expires := time.Unix((step+1+totpSkew)*totpPeriod, 0)
	key := "console-totp\x00" + userID + "\x00" + strconv.FormatInt(step, 10) + "\x00" + code
	first, err := c.cfg.Store.MarkUsed(ctx, key, expires)
	if err != nil {
		return false, fmt.Errorf("console: mark totp code used: %w", err)
	}
	return first, nil
}

// matchStep returns the RFC 6238 time step, within the allowed skew of
// now, whose code equals code.
func matchStep(secret, code string, now time.Time) (int64, bool) {
	for i := int64(-totpSkew); i <= totpSkew; i++ {
		step := now.Unix()/totpPeriod + i
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totpOpts())
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, true
		}
	}
	return 0, false
}

// logout ends the session server-side and clears the cookie.
func (c *Console) logout(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ctx := r.Context()
	if err := c.cfg.Store.DeleteLoginSession(ctx, rc.session.Key); err != nil && !errors.Is(err, storage.ErrNotFound) {
		c.fail(w, r, rc, err)
		return
	}
	c.clearCookie(w)
	c.audit(ctx, storage.AuditEvent{Event: EventLogout, Actor: rc.actor.ID, Subject: rc.user.ID, Outcome: "success"})
	http.Redirect(w, r, Prefix+"/login?m=signed_out", http.StatusSeeOther)
}

// accountData is the account page: TOTP status or enrolment.
type accountData struct {
	Enrolled bool
	Secret   string
	URI      string
	QR       template.URL
	Sealed   string
}

// enrolAAD binds a pending enrolment secret (carried in the form, sealed)
// to the user it was generated for.
func enrolAAD(userID string) []byte { return []byte("bulwark console totp enrol:" + userID) }

func (c *Console) accountPage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	c.renderAccount(w, r, rc, http.StatusOK, "", "")
}

func (c *Console) renderAccount(w http.ResponseWriter, r *http.Request, rc *reqCtx, status int, flash, errMsg string) {
	d := accountData{Enrolled: len(rc.user.TOTPSecretSealed) > 0}
	if !d.Enrolled {
		// Authenticator apps show the label "Bulwark:alice" and issuer=Bulwark.
		key, err := totp.Generate(totp.GenerateOpts{Issuer: "Bulwark", AccountName: rc.user.Username})
		if err != nil {
			c.fail(w, r, rc, fmt.Errorf("console: generate totp: %w", err))
			return
		}
		sealed, err := c.cfg.Sealer.Seal([]byte(key.Secret()), enrolAAD(rc.user.ID))
		if err != nil {
			c.fail(w, r, rc, fmt.Errorf("console: seal totp: %w", err))
			return
		}
		d.Secret, d.URI, d.Sealed = key.Secret(), key.URL(), base64.RawURLEncoding.EncodeToString(sealed)
		if img, err := key.Image(200, 200); err == nil {
			var buf bytes.Buffer
			if png.Encode(&buf, img) == nil {
				// Our own PNG bytes; html/template would otherwise refuse a
				// data: URL.
				d.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())) // #nosec G203 -- base64 of a PNG we encoded; no attacker-controlled text
			}
		}
	}
	v := rc.view("Your account", "account", d)
	v.Flash, v.Error = flash, errMsg
	c.render(w, status, "account", v)
}

// totpEnrol confirms an enrolment with a code from the new secret and
// stores the secret sealed with the user id as AAD.
func (c *Console) totpEnrol(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ctx := r.Context()
	if len(rc.user.TOTPSecretSealed) > 0 {
		c.renderAccount(w, r, rc, http.StatusConflict, "", "Two-factor authentication is already enrolled.")
		return
	}
	raw, err := base64.RawURLEncoding.DecodeString(r.PostForm.Get("pending"))
	if err != nil {
		c.forbidden(w, rc, "The enrolment form was tampered with. Reload the page and try again.")
		return
	}
	secret, err := c.cfg.Sealer.Open(raw, enrolAAD(rc.user.ID))
	if err != nil {
		c.forbidden(w, rc, "The enrolment form was tampered with. Reload the page and try again.")
		return
	}
	code := strings.TrimSpace(strings.ReplaceAll(r.PostForm.Get("code"), " ", ""))
	ok, err := c.checkCode(ctx, rc.user.ID, string(secret), code)
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	if !ok {
		c.renderAccount(w, r, rc, http.StatusBadRequest, "", "That code does not match. Scan the new code below and try again.")
		return
	}
	sealed, err := c.cfg.Sealer.Seal(secret, []byte(rc.user.ID))
	if err != nil {
		c.fail(w, r, rc, fmt.Errorf("console: seal totp: %w", err))
		return
	}
	var saved *storage.User
	for range 5 {
		u, err := c.cfg.Store.UserByID(ctx, rc.user.ID)
		if err != nil {
			c.fail(w, r, rc, err)
			return
		}
		if len(u.TOTPSecretSealed) > 0 {
			// A concurrent enrolment (another tab, another replica) won:
			// the version check below makes the first writer the only
			// one, and the loser must not overwrite its secret.
			rc.user = u
			c.renderAccount(w, r, rc, http.StatusConflict, "", "Two-factor authentication is already enrolled.")
			return
		}
		u.TOTPSecretSealed = sealed
		u.UpdatedAt = c.cfg.Now().UTC().Truncate(time.Microsecond)
		err = c.cfg.Store.UpdateUser(ctx, u, u.Version)
		if errors.Is(err, storage.ErrPreconditionFailed) {
			continue
		}
		if err != nil {
			c.fail(w, r, rc, err)
			return
		}
		saved = u
		break
	}
	if saved == nil {
		c.fail(w, r, rc, storage.ErrPreconditionFailed)
		return
	}
	c.audit(ctx, storage.AuditEvent{Event: EventTOTPEnrolled, Actor: rc.actor.ID, Subject: rc.user.ID, Outcome: "success"})
	rc.user = saved
	c.renderAccount(w, r, rc, http.StatusOK, "Two-factor authentication is on. You will be asked for a code at every sign-in.", "")
}

func (c *Console) totpRemoveConfirm(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	if len(rc.user.TOTPSecretSealed) == 0 {
		http.Redirect(w, r, Prefix+"/account", http.StatusSeeOther)
		return
	}
	c.render(w, http.StatusOK, "confirm", rc.view("Remove two-factor?", "account", confirmData{
		Action: Prefix + "/account/totp/remove", Verb: "Remove two-factor",
		Message: "Sign-in will ask for your password only until you enrol again. Do this to move to a new device, then enrol it right away.",
		Object:  rc.user.Username, Cancel: Prefix + "/account", Danger: true,
	}))
}

// totpRemove takes the signed-in user's own second factor away through the
// Service (audited as user.totp_reset; the current session stays) and
// shows the Account page with a fresh enrolment.
func (c *Console) totpRemove(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	ctx := r.Context()
	if len(rc.user.TOTPSecretSealed) == 0 {
		c.renderAccount(w, r, rc, http.StatusConflict, "", "Two-factor authentication is not enrolled.")
		return
	}
	if _, err := c.cfg.Service.ResetTOTP(ctx, rc.actor, rc.user.ID); err != nil {
		c.fail(w, r, rc, err)
		return
	}
	u, err := c.cfg.Store.UserByID(ctx, rc.user.ID)
	if err != nil {
		c.fail(w, r, rc, err)
		return
	}
	rc.user = u
	c.renderAccount(w, r, rc, http.StatusOK, "Two-factor authentication is off. Enrol a device below to turn it on again.", "")
}
