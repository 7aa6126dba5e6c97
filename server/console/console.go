package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"
	"github.com/sirupsen/logrus"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/web"
)

// Default session timeouts.
const (
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultAbsoluteTimeout = 12 * time.Hour
)

// Prefix is where the console is mounted.
const Prefix = "/admin"

// SessionKind is the storage.LoginSession kind of a signed-in console
// session; pendingKind marks a session that passed the password and still
// owes its TOTP code. The public login uses "public".
const (
	SessionKind = "console"
	pendingKind = "console_mfa"
)

// Audit events written by the console itself (the Service writes those of
// the operations).
const (
	EventLogin        = "console.login"
	EventLogout       = "console.logout"
	EventTOTPEnrolled = "console.totp_enrolled"
)

// ConsoleStore is what the console needs of storage: users (sign-in, TOTP
// enrolment), login sessions, and the state shared by every replica that
// guards the sign-in: attempt counters and used TOTP codes.
type ConsoleStore interface {
	storage.UserStore
	storage.LoginSessionStore
	storage.AttemptStore
	storage.UsedMarkStore
}

// Sealer seals TOTP secrets and sign-in CSRF tokens under the master secret
// (keys/secretbox.Box).
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// Config holds the console's dependencies.
type Config struct {
	Service *admin.Service
	Store   ConsoleStore
	// Hasher compares passwords: the uncached Argon2id hasher.
	Hasher fosite.Hasher
	Sealer Sealer
	// Secure means the console is served over TLS: cookies get Secure and
	// the __Host- prefix.
	Secure bool
	// IdleTimeout and AbsoluteTimeout end sessions; zero takes the
	// defaults above.
	IdleTimeout, AbsoluteTimeout time.Duration
	Now                          func() time.Time
	Logger                       logrus.FieldLogger
	// Audit records sign-ins, sign-outs and TOTP enrolment; nil records
	// nothing.
	Audit func(ctx context.Context, e storage.AuditEvent)
	// Issuer is shown in the header and names the TOTP issuer.
	Issuer string
	// Guard locks password guessing per submitted username (cluster-wide,
	// counted before the hash is compared) and per source IP; nil makes a
	// protect.Guard named "console" on Store with its defaults.
	Guard LoginGuard
	// TOTPGuard does the same for the second factor per user id; nil makes
	// one named "console-totp": 10 codes per user per 15 minutes.
	TOTPGuard LoginGuard
}

// LoginGuard is the brute-force defence of a sign-in step (*protect.Guard):
// Reserve counts the attempt before the secret is checked.
type LoginGuard interface {
	Reserve(ctx context.Context, account string, ip netip.Addr) (protect.Decision, error)
	Fail(ip netip.Addr)
	Succeed(ctx context.Context, account string) error
}

// Console is the admin web console. It is safe for concurrent use.
type Console struct {
	cfg   Config
	pages *template.Template
	// dummy is the hash compared when the username is unknown, so timing
	// does not reveal which usernames exist.
	dummy []byte
	// pendingGuard ends a pending sign-in after maxTOTPFailures codes
	// (keyed by the pending session, shared by every replica).
	pendingGuard LoginGuard
	staticServer http.Handler
}

// New checks cfg and returns a Console. It parses the templates and makes
// the dummy hash (one Argon2id run).
func New(cfg Config) (*Console, error) {
	var missing []string
	if cfg.Service == nil {
		missing = append(missing, "Service")
	}
	if cfg.Store == nil {
		missing = append(missing, "Store")
	}
	if cfg.Hasher == nil {
		missing = append(missing, "Hasher")
	}
	if cfg.Sealer == nil {
		missing = append(missing, "Sealer")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("console: config is missing %s", strings.Join(missing, ", "))
	}
	if cfg.IdleTimeout < 0 || cfg.AbsoluteTimeout < 0 {
		return nil, errors.New("console: timeouts must not be negative")
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.AbsoluteTimeout == 0 {
		cfg.AbsoluteTimeout = DefaultAbsoluteTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		cfg.Logger = l
	}
	if cfg.Audit == nil {
		cfg.Audit = func(context.Context, storage.AuditEvent) {}
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "Bulwark"
	}
	if cfg.Guard == nil {
		cfg.Guard = protect.NewGuard(cfg.Store, protect.GuardConfig{Name: "console", Now: cfg.Now})
	}
	if cfg.TOTPGuard == nil {
		cfg.TOTPGuard = protect.NewGuard(cfg.Store, protect.GuardConfig{
			Name: "console-totp", LockAfter: maxUserTOTPFailures, Window: totpLockout, Now: cfg.Now,
		})
	}
	c := &Console{cfg: cfg, pendingGuard: protect.NewGuard(cfg.Store, protect.GuardConfig{
		Name: "console-totp-pending", LockAfter: maxTOTPFailures, Window: pendingLifetime, Now: cfg.Now,
	})}
	pages, err := web.ParseConsole(c.funcs())
	if err != nil {
		return nil, fmt.Errorf("console: parse templates: %w", err)
	}
	c.pages = pages
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("console: random: %w", err)
	}
	if c.dummy, err = cfg.Hasher.Hash(context.Background(), secret); err != nil {
		return nil, fmt.Errorf("console: dummy hash: %w", err)
	}
	sub, err := fs.Sub(web.FS, "static")
	if err != nil {
		return nil, fmt.Errorf("console: static assets: %w", err)
	}
	c.staticServer = http.StripPrefix(Prefix+"/static/", http.FileServerFS(sub))
	return c, nil
}

// Register mounts the console on r: pages under /admin/ and assets under
// /admin/static/. It registers exact paths only, so the JSON API under
// /admin/v1 is never shadowed.
func (c *Console) Register(r *mux.Router) {
	const (
		cr = apikeys.ScopeClientsRead
		cw = apikeys.ScopeClientsWrite
		us = apikeys.ScopeUsers
		ak = apikeys.ScopeAPIKeys
		sk = apikeys.ScopeKeys
		au = apikeys.ScopeAuditRead
	)
	get, post := http.MethodGet, http.MethodPost
	// Every route declares its protection here: the sign-in pages the
	// login class, signed-in pages the console policy (both refuse
	// cross-site form posts even with a valid CSRF token).
	r.Handle(Prefix+"/static/{file}", protect.RouteFunc(protect.StaticAsset(), c.static)).Methods(get, http.MethodHead)
	r.Handle(Prefix, protect.RouteFunc(protect.Console(), func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
	})).Methods(get)

	r.Handle(Prefix+"/login", protect.RouteFunc(protect.ConsoleLogin(), c.loginPage)).Methods(get)
	r.Handle(Prefix+"/login", protect.RouteFunc(protect.ConsoleLogin(), c.loginSubmit)).Methods(post)
	r.Handle(Prefix+"/login/totp", protect.RouteFunc(protect.ConsoleLogin(), c.totpPage)).Methods(get)
	r.Handle(Prefix+"/login/totp", protect.RouteFunc(protect.ConsoleLogin(), c.totpSubmit)).Methods(post)
	r.Handle(Prefix+"/logout", protect.Route(protect.Console(), c.authed(anyScope, c.logout))).Methods(post)

	routes := []struct {
		method, path, scope string
		h                   handler
	}{
		{get, "/", anyScope, c.overview},
		{get, "/account", anyScope, c.accountPage},
		{post, "/account/password", anyScope, c.accountPassword},
		{post, "/account/totp", anyScope, c.totpEnrol},
		{get, "/account/totp/remove", anyScope, c.totpRemoveConfirm},
		{post, "/account/totp/remove", anyScope, c.totpRemove},

		{get, "/clients", cr, c.clientList},
		{get, "/clients/new", cw, c.clientNew},
		{post, "/clients/new", cw, c.clientCreate},
		{get, "/clients/{id}", cr, c.clientShow},
		{get, "/clients/{id}/edit", cw, c.clientEdit},
		{post, "/clients/{id}/edit", cw, c.clientUpdate},
		{post, "/clients/{id}/secret", cw, c.clientRotate},
		{get, "/clients/{id}/disable", cw, c.clientDisableConfirm},
		{post, "/clients/{id}/disable", cw, c.clientDisable},
		{post, "/clients/{id}/enable", cw, c.clientEnable},
		{get, "/clients/{id}/delete", cw, c.clientDeleteConfirm},
		{post, "/clients/{id}/delete", cw, c.clientDelete},

		{get, "/registration", cr, c.initialTokenList},
		{post, "/registration/new", cw, c.initialTokenCreate},
		{post, "/registration/{id}/revoke", cw, c.initialTokenRevoke},

		{get, "/apikeys", ak, c.apiKeyList},
		{get, "/apikeys/new", ak, c.apiKeyNew},
		{post, "/apikeys/new", ak, c.apiKeyCreate},
		{post, "/apikeys/{id}/rotate", ak, c.apiKeyRotate},
		{get, "/apikeys/{id}/revoke", ak, c.apiKeyRevokeConfirm},
		{post, "/apikeys/{id}/revoke", ak, c.apiKeyRevoke},

		{get, "/keys", sk, c.keyList},
		{post, "/keys/rotate", sk, c.keyRotate},
		{get, "/keys/{kid}/revoke", sk, c.keyRevokeConfirm},
		{post, "/keys/{kid}/revoke", sk, c.keyRevoke},

		{get, "/users", us, c.userList},
		{get, "/users/new", us, c.userNew},
		{post, "/users/new", us, c.userCreate},
		{get, "/users/{id}/disable", us, c.userDisableConfirm},
		{post, "/users/{id}/disable", us, c.userDisable},
		{post, "/users/{id}/enable", us, c.userEnable},
		{get, "/users/{id}/edit", us, c.userEdit},
		{post, "/users/{id}/edit", us, c.userUpdate},
		{get, "/users/{id}/delete", us, c.userDeleteConfirm},
		{post, "/users/{id}/delete", us, c.userDelete},
		{get, "/users/{id}/password", us, c.userResetConfirm},
		{post, "/users/{id}/password", us, c.userReset},
		{get, "/users/{id}/totp/reset", us, c.userTOTPResetConfirm},
		{post, "/users/{id}/totp/reset", us, c.userTOTPReset},
		{get, "/users/{id}/sign-out", us, c.userSignOutConfirm},
		{post, "/users/{id}/sign-out", us, c.userSignOut},

		{get, "/audit", au, c.auditList},
		{get, "/blocks", au, c.blockList},
		{post, "/blocks/lift", us, c.blockLift},
		{get, "/devices", au, c.deviceList},
	}
	for _, rt := range routes {
		r.Handle(Prefix+rt.path, protect.Route(protect.Console(), c.authed(rt.scope, rt.h))).Methods(rt.method)
	}
}

// static serves the embedded console assets (console.css, console.js).
func (c *Console) static(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["file"]
	if !strings.HasPrefix(name, "console.") {
		c.notFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	c.staticServer.ServeHTTP(w, r)
}

// view is what every console template receives.
type view struct {
	Title    string
	Nav      string
	Issuer   string
	User     *storage.User
	CSRF     string
	Flash    string
	Error    string
	Problems []storage.FieldProblem
	// Data is the page's own content.
	Data any
}

// can reports whether the signed-in user holds scope (templates hide what
// the user may not do; the handlers enforce it).
func (v view) Can(scope string) bool {
	if v.User == nil {
		return false
	}
	for _, s := range v.User.AdminScopes {
		if s == scope {
			return true
		}
	}
	return false
}

// CSP of every console page: scripts and styles only from our own files,
// no inline code, never framed.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// render executes a page into a buffer first, so a template failure becomes
// a clean 500 instead of half a page.
func (c *Console) render(w http.ResponseWriter, status int, name string, v view) {
	v.Issuer = c.cfg.Issuer
	var buf bytes.Buffer
	if err := c.pages.ExecuteTemplate(&buf, name, v); err != nil {
		c.cfg.Logger.WithError(err).WithField("template", name).Error("console: render page")
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (c *Console) notFound(w http.ResponseWriter, _ *http.Request) {
	c.render(w, http.StatusNotFound, "error", view{Title: "Not found", Error: "There is no such page or object."})
}

// forbidden is the answer to a missing scope or a bad CSRF token.
func (c *Console) forbidden(w http.ResponseWriter, rc *reqCtx, msg string) {
	v := view{Title: "Forbidden", Error: msg}
	if rc != nil {
		v.User, v.CSRF = rc.user, rc.csrf
	}
	c.render(w, http.StatusForbidden, "error", v)
}

// fail maps a Service error to a page. Messages are fixed per class; the
// error itself (ids and operation names, never secrets) goes to the log.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, rc *reqCtx, err error) {
	status, msg := http.StatusInternalServerError, "The operation failed. Try again; if it keeps failing, check the server log."
	var (
		inv *admin.InvalidError
		val *storage.ValidationError
	)
	switch {
	case errors.As(err, &inv), errors.As(err, &val):
		status, msg = http.StatusBadRequest, "The input is invalid."
	case errors.Is(err, admin.ErrScopeEscalation), errors.Is(err, apikeys.ErrScopeEscalation):
		status, msg = http.StatusForbidden, "This would grant, restore or hand over a scope you do not hold yourself."
	case errors.Is(err, storage.ErrNotFound):
		status, msg = http.StatusNotFound, "There is no such object; it may have been deleted."
	case errors.Is(err, storage.ErrPreconditionFailed):
		status, msg = http.StatusConflict, "Someone changed this object since you opened it. Reload and try again."
	case errors.Is(err, storage.ErrConflict):
		status, msg = http.StatusConflict, "An object with this identifier or name already exists."
	case errors.Is(err, apikeys.ErrNotActive):
		status, msg = http.StatusConflict, "This API key is not active."
	case errors.Is(err, apikeys.ErrConflict):
		status, msg = http.StatusConflict, "A concurrent change won. Try again."
	case errors.Is(err, admin.ErrNoSecret):
		status, msg = http.StatusConflict, "This client does not authenticate with a client secret."
	case errors.Is(err, storage.ErrUnavailable):
		w.Header().Set("Retry-After", admin.RetryAfterSeconds)
		status, msg = http.StatusServiceUnavailable, "The database is unavailable. Try again in a moment."
	}
	if status >= 500 {
		c.cfg.Logger.WithError(err).WithField("path", r.URL.Path).Error("console: request failed")
	}
	v := view{Title: http.StatusText(status), Error: msg}
	if inv != nil {
		v.Problems = inv.Problems
	} else if val != nil {
		v.Problems = val.Problems
	}
	if rc != nil {
		v.User, v.CSRF = rc.user, rc.csrf
	}
	c.render(w, status, "error", v)
}

// invalidProblems returns the field problems of a validation error, or nil
// when err is not one (the caller then uses fail).
func invalidProblems(err error) ([]storage.FieldProblem, bool) {
	var (
		inv *admin.InvalidError
		val *storage.ValidationError
	)
	switch {
	case errors.As(err, &inv):
		return inv.Problems, true
	case errors.As(err, &val):
		return val.Problems, true
	}
	return nil, false
}
