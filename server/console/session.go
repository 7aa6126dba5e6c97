package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/bulwark-auth/bulwark/server/admin"
	"github.com/bulwark-auth/bulwark/storage"
)

// anyScope marks pages every signed-in admin may open (overview, own
// account, sign-out).
const anyScope = ""

// maxForm bounds form bodies (the protection layer caps them too).
const maxForm = 64 << 10

// reqCtx is the signed-in state of one request.
type reqCtx struct {
	session *storage.LoginSession
	user    *storage.User
	csrf    string
	actor   admin.Actor
}

type handler func(w http.ResponseWriter, r *http.Request, rc *reqCtx)

// Cookie names, distinct from the public login's. With TLS the __Host-
// prefix pins them to this host, Secure and Path=/.
func (c *Console) sessionCookieName() string {
	if c.cfg.Secure {
		return "__Host-bulwark_console"
	}
	return "bulwark_console"
}

func (c *Console) preCookieName() string {
	if c.cfg.Secure {
		return "__Host-bulwark_console_pre"
	}
	return "bulwark_console_pre"
}

// cookie builds a console cookie: HttpOnly, SameSite=Strict (the console is
// never entered from another site with credentials), Path=/.
func (c *Console) cookie(name, value string, maxAge int) *http.Cookie {
	// #nosec G124 -- Secure follows the listener: false only without TLS (dev, loopback).
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		Secure:   c.cfg.Secure,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	}
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("console: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// equal compares two tokens in constant time.
func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// cookieSession returns the session named by the console cookie if it is
// of kind, or nil. Only store failures are errors.
func (c *Console) cookieSession(ctx context.Context, r *http.Request, kind string) (*storage.LoginSession, error) {
	ck, err := r.Cookie(c.sessionCookieName())
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return nil, nil
	}
	ls, err := c.cfg.Store.GetLoginSession(ctx, storage.HashKey(ck.Value))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("console: load session: %w", err)
	}
	if ls.Kind != kind {
		// A public login session (or a half-finished sign-in) must never
		// open the console.
		return nil, nil
	}
	return ls, nil
}

// startSession creates a fresh server-side session for u and sets its
// cookie, after deleting whatever session the request carried: a new id at
// every sign-in step defeats session fixation.
func (c *Console) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, u *storage.User, kind string, lifetime time.Duration) error {
	if err := c.dropCookieSession(ctx, r); err != nil {
		return err
	}
	id, err := randomToken()
	if err != nil {
		return err
	}
	csrf, err := randomToken()
	if err != nil {
		return err
	}
	now := c.cfg.Now().UTC()
	ls := &storage.LoginSession{
		Key:       storage.HashKey(id),
		Kind:      kind,
		Subject:   u.ID,
		AuthTime:  now,
		LastSeen:  now,
		ExpiresAt: now.Add(lifetime),
		Data:      map[string]string{"csrf": csrf},
	}
	if err := c.cfg.Store.CreateLoginSession(ctx, ls); err != nil {
		return fmt.Errorf("console: create session: %w", err)
	}
	// A session cookie (no Max-Age): the server decides when it ends.
	http.SetCookie(w, c.cookie(c.sessionCookieName(), id, 0))
	return nil
}

// dropCookieSession deletes the session the request's cookie names, of any
// kind.
func (c *Console) dropCookieSession(ctx context.Context, r *http.Request) error {
	ck, err := r.Cookie(c.sessionCookieName())
	if err != nil || ck.Value == "" {
		return nil
	}
	if err := c.cfg.Store.DeleteLoginSession(ctx, storage.HashKey(ck.Value)); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("console: delete session: %w", err)
	}
	return nil
}

func (c *Console) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, c.cookie(c.sessionCookieName(), "", -1))
}

// toLogin sends the browser to the sign-in page, clearing a dead cookie.
func (c *Console) toLogin(w http.ResponseWriter, r *http.Request, reason string) {
	if _, err := r.Cookie(c.sessionCookieName()); err == nil {
		c.clearCookie(w)
	}
	target := Prefix + "/login"
	if reason != "" {
		target += "?m=" + reason
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// authed wraps h with the console's checks, in order: a live console
// session (idle and absolute timeouts), an enabled user who still holds
// admin scopes, the CSRF token on POST, and the page's scope.
func (c *Console) authed(scope string, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		ls, err := c.cookieSession(ctx, r, SessionKind)
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		if ls == nil {
			c.toLogin(w, r, "")
			return
		}
		now := c.cfg.Now()
		if !now.Before(ls.AuthTime.Add(c.cfg.AbsoluteTimeout)) || !now.Before(ls.LastSeen.Add(c.cfg.IdleTimeout)) {
			if err := c.cfg.Store.DeleteLoginSession(ctx, ls.Key); err != nil && !errors.Is(err, storage.ErrNotFound) {
				c.fail(w, r, nil, err)
				return
			}
			c.toLogin(w, r, "expired")
			return
		}
		u, err := c.cfg.Store.UserByID(ctx, ls.Subject)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			c.fail(w, r, nil, err)
			return
		}
		if u == nil || u.Disabled || len(u.AdminScopes) == 0 {
			_ = c.cfg.Store.DeleteLoginSession(ctx, ls.Key)
			c.toLogin(w, r, "")
			return
		}
		if err := c.cfg.Store.TouchLoginSession(ctx, ls.Key, now.UTC()); err != nil && !errors.Is(err, storage.ErrNotFound) {
			c.fail(w, r, nil, err)
			return
		}
		rc := &reqCtx{
			session: ls,
			user:    u,
			csrf:    ls.Data["csrf"],
			actor:   admin.Actor{ID: "user:" + u.ID, Scopes: slices.Clone(u.AdminScopes)},
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil || !equal(r.PostForm.Get("csrf_token"), rc.csrf) {
				c.forbidden(w, rc, "The form was missing its security token or it has expired. Go back, reload the page and try again.")
				return
			}
		}
		if scope != anyScope && !slices.Contains(u.AdminScopes, scope) {
			c.forbidden(w, rc, "Your account does not hold the scope "+scope+", which this page requires.")
			return
		}
		h(w, r, rc)
	})
}

// view returns the page skeleton for a signed-in request.
func (rc *reqCtx) view(title, nav string, data any) view {
	return view{Title: title, Nav: nav, User: rc.user, CSRF: rc.csrf, Data: data}
}

// Sign-in CSRF: before any session exists the form is bound to a random
// pre-session cookie; the form token is that value sealed with the master
// secret, so every replica can check it and no other site can forge it.
var preAAD = []byte("bulwark console sign-in csrf")

func (c *Console) preToken(w http.ResponseWriter, r *http.Request) (string, error) {
	value := ""
	if ck, err := r.Cookie(c.preCookieName()); err == nil && len(ck.Value) == 43 {
		value = ck.Value
	} else {
		v, err := randomToken()
		if err != nil {
			return "", err
		}
		value = v
		http.SetCookie(w, c.cookie(c.preCookieName(), value, 0))
	}
	sealed, err := c.cfg.Sealer.Seal([]byte(value), preAAD)
	if err != nil {
		return "", fmt.Errorf("console: seal csrf: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

func (c *Console) checkPreToken(r *http.Request) bool {
	ck, err := r.Cookie(c.preCookieName())
	if err != nil || ck.Value == "" {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(r.PostForm.Get("csrf_token"))
	if err != nil || len(raw) == 0 {
		return false
	}
	value, err := c.cfg.Sealer.Open(raw, preAAD)
	if err != nil {
		return false
	}
	return equal(string(value), ck.Value)
}
