package console

import (
	"bytes"
	"context"
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

// maxTOTPFailures ends a pending sign-in after this many wrong codes.
const maxTOTPFailures = 5

// Whoever knows the password can start sign-in after sign-in, so wrong
// codes also count per user: maxUserTOTPFailures within totpLockout lock
// the user's second factor for totpLockout. Without this, six-digit codes
// fall to a patient password holder (about 3 in 10^6 are valid at a time).
// The count is per replica, like the other guards.
const (
	maxUserTOTPFailures = 10
	totpLockout         = 15 * time.Minute
)

// totpStrikes are the recent wrong codes of one user.
type totpStrikes struct {
	n           int
	since       time.Time
	lockedUntil time.Time
}

// loginData is the sign-in page.
type loginData struct {
	Username string
}

var loginMessages = map[string]string{
	"expired":     "Your session expired. Sign in again.",
	"signed_out":  "You have been signed out.",
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
	// Before any password work, and the same for every username.
	if wait, locked := c.cfg.Guard.Check(ctx, username, ip); locked || wait > 0 {
		c.auditSignInFailure(ctx, "denied", "password", "throttled", nil)
		token, err := c.preToken(w, r)
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		w.Header().Set("Retry-After", strconv.FormatInt(int64(max(1, (wait+time.Second-1)/time.Second)), 10))
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
		c.cfg.Guard.Fail(username, ip)
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
	c.cfg.Guard.Succeed(username, ip)
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
	info := reqinfo.From(ctx)
	if info == nil {
		return netip.Addr{}
	}
	ip, err := netip.ParseAddr(info.RemoteIP)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
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
	if c.totpLocked(u.ID) {
		// Not even checked: a right code guessed during the lockout must
		// not be confirmed.
		c.auditSignInFailure(ctx, "failure", "totp", "locked", u)
		_ = c.cfg.Store.DeleteLoginSession(ctx, ls.Key)
		c.toLogin(w, r, "totp_locked")
		return
	}
	code := strings.TrimSpace(strings.ReplaceAll(r.PostForm.Get("code"), " ", ""))
	if !c.checkCode(u.ID, string(secret), code) {
		c.auditSignInFailure(ctx, "failure", "totp", "wrong_code", u)
		c.userTOTPFailed(u.ID)
		if c.totpFailed(ls.Key) >= maxTOTPFailures {
			_ = c.cfg.Store.DeleteLoginSession(ctx, ls.Key)
			c.toLogin(w, r, "restart")
			return
		}
		c.render(w, http.StatusUnauthorized, "totp", view{Title: "Two-factor authentication", CSRF: ls.Data["csrf"], Error: "That code is not valid. Enter the current code from your authenticator app."})
		return
	}
	c.totpClear(ls.Key)
	c.totpMu.Lock()
	delete(c.userTOTP, u.ID)
	c.totpMu.Unlock()
	c.finishLogin(w, r, u, "password+totp")
}

// totpOpts are RFC 6238 defaults with one step of clock skew either way.
func totpOpts() totp.ValidateOpts {
	return totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
}

// checkCode validates code for user id and remembers it, so the same code
// cannot be used twice while it is valid.
func (c *Console) checkCode(userID, secret, code string) bool {
	if len(code) != 6 {
		return false
	}
	now := c.cfg.Now()
	ok, err := totp.ValidateCustom(code, secret, now, totpOpts())
	if err != nil || !ok {
		return false
	}
	c.totpMu.Lock()
	defer c.totpMu.Unlock()
	for k, exp := range c.usedCodes {
		if now.After(exp) {
			delete(c.usedCodes, k)
		}
	}
	key := userID + "\x00" + code
	if _, used := c.usedCodes[key]; used {
		return false
	}
	// A code is valid for at most three 30 s steps (skew 1).
	c.usedCodes[key] = now.Add(90 * time.Second)
	return true
}

func (c *Console) totpFailed(key string) int {
	c.totpMu.Lock()
	defer c.totpMu.Unlock()
	if len(c.failedTOTP) > 10000 {
		clear(c.failedTOTP) // bounded; pending sessions live 5 minutes anyway
	}
	c.failedTOTP[key]++
	return c.failedTOTP[key]
}

// totpLocked reports whether user id's second factor is locked now.
func (c *Console) totpLocked(id string) bool {
	now := c.cfg.Now()
	c.totpMu.Lock()
	defer c.totpMu.Unlock()
	s := c.userTOTP[id]
	return s != nil && now.Before(s.lockedUntil)
}

// userTOTPFailed counts a wrong code of user id and locks its second factor
// when the count within totpLockout reaches maxUserTOTPFailures.
func (c *Console) userTOTPFailed(id string) {
	now := c.cfg.Now()
	c.totpMu.Lock()
	defer c.totpMu.Unlock()
	if len(c.userTOTP) > 10000 {
		// Bounded: drop entries that neither lock nor count any more.
		for k, s := range c.userTOTP {
			if !now.Before(s.lockedUntil) && !now.Before(s.since.Add(totpLockout)) {
				delete(c.userTOTP, k)
			}
		}
	}
	s := c.userTOTP[id]
	if s == nil || !now.Before(s.since.Add(totpLockout)) {
		s = &totpStrikes{since: now, lockedUntil: timeOrZero(s)}
		c.userTOTP[id] = s
	}
	s.n++
	if s.n >= maxUserTOTPFailures {
		s.lockedUntil = now.Add(totpLockout)
		s.n, s.since = 0, now
	}
}

func timeOrZero(s *totpStrikes) time.Time {
	if s == nil {
		return time.Time{}
	}
	return s.lockedUntil
}

func (c *Console) totpClear(key string) {
	c.totpMu.Lock()
	defer c.totpMu.Unlock()
	delete(c.failedTOTP, key)
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
		key, err := totp.Generate(totp.GenerateOpts{Issuer: c.cfg.Issuer, AccountName: rc.user.Username})
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
	if !c.checkCode(rc.user.ID, string(secret), code) {
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
