package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	"github.com/bulwark-auth/bulwark/server/backchannel"
	"github.com/bulwark-auth/bulwark/storage"
)

// loginKind separates public login sessions from console sessions in the
// shared login session table.
const loginKind = "public"

// Cookie names. The __Host- prefix pins a cookie to this host, Secure and
// Path=/; browsers refuse it over plain http, so development without TLS
// falls back to unprefixed names.
func (p *Provider) sessionCookieName() string {
	if p.cfg.SecureCookies {
		return "__Host-bulwark_session"
	}
	return "bulwark_session"
}

func (p *Provider) csrfCookieName() string {
	if p.cfg.SecureCookies {
		return "__Host-bulwark_csrf"
	}
	return "bulwark_csrf"
}

func (p *Provider) cookie(name, value string, maxAge int) *http.Cookie {
	// #nosec G124 -- Secure follows the config: false only for --dev over plain http on loopback.
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		Secure:   p.cfg.SecureCookies,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("oauth: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// currentLogin returns the live login session of the request and its user,
// or nils when there is none. Only store failures are errors.
func (p *Provider) currentLogin(ctx context.Context, r *http.Request) (*storage.LoginSession, *storage.User, error) {
	st, err := p.resumeLogin(ctx, r, "")
	if err != nil || st == nil {
		return nil, nil, err
	}
	return st.Session, st.User, nil
}

// resumeLogin returns the live login session of the request with its user
// and the user's consent to clientID (storage.FlowStore.ResumeLogin: one
// round trip, which also records the visit), or nil when there is none:
// no cookie, an unknown or expired session, a missing or disabled user.
// Only store failures are errors.
func (p *Provider) resumeLogin(ctx context.Context, r *http.Request, clientID string) (*storage.LoginState, error) {
	c, err := r.Cookie(p.sessionCookieName())
	if err != nil || c.Value == "" {
		return nil, nil
	}
	now := p.cfg.Now()
	st, err := p.cfg.Store.ResumeLogin(ctx, loginKind, storage.HashKey(c.Value), clientID, now)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("oauth: resume login session: %w", err)
	}
	if !now.Before(st.Session.ExpiresAt) || st.User.Disabled {
		return nil, nil
	}
	return st, nil
}

// startLogin creates a fresh server-side session for u and sets its cookie.
// A new id on every login defeats session fixation.
//
// The session replaced by the new one ends like a sign-out: the relying
// parties that joined it get a back-channel logout (its sid is gone; the
// new session has a new one).
func (p *Provider) startLogin(ctx context.Context, w http.ResponseWriter, r *http.Request, u *storage.User) (*storage.LoginSession, error) {
	if c, err := r.Cookie(p.sessionCookieName()); err == nil && c.Value != "" {
		if _, err := backchannel.EndLoginSession(ctx, p.cfg.Store, storage.HashKey(c.Value), LogoutReasonReplaced); err != nil {
			return nil, fmt.Errorf("oauth: end previous login session: %w", err)
		}
	}
	id, err := randomToken()
	if err != nil {
		return nil, err
	}
	sid, err := randomToken()
	if err != nil {
		return nil, err
	}
	now := p.cfg.Now().UTC()
	ls := &storage.LoginSession{
		Key:       storage.HashKey(id),
		Kind:      loginKind,
		SID:       sid,
		Subject:   u.ID,
		AuthTime:  now,
		LastSeen:  now,
		ExpiresAt: now.Add(p.cfg.LoginSessionLifespan),
	}
	if err := p.cfg.Store.CreateLoginSession(ctx, ls); err != nil {
		return nil, fmt.Errorf("oauth: create login session: %w", err)
	}
	http.SetCookie(w, p.cookie(p.sessionCookieName(), id, int(p.cfg.LoginSessionLifespan.Seconds())))
	return ls, nil
}

// Reasons for back-channel logouts queued by the login pages (the audit
// events of their delivery name them).
const (
	LogoutReasonLogout   = "logout"
	LogoutReasonReplaced = "login_replaced"
)

// endLogin deletes the request's login session server-side, queues a
// back-channel logout for every relying party that joined it (in the same
// transaction), and clears the cookie. It returns the subject that was
// signed in, if any.
func (p *Provider) endLogin(ctx context.Context, w http.ResponseWriter, r *http.Request) (string, error) {
	var subject string
	if c, err := r.Cookie(p.sessionCookieName()); err == nil && c.Value != "" {
		ls, err := backchannel.EndLoginSession(ctx, p.cfg.Store, storage.HashKey(c.Value), LogoutReasonLogout)
		if err != nil {
			return "", fmt.Errorf("oauth: end login session: %w", err)
		}
		if ls != nil {
			subject = ls.Subject
		}
	}
	http.SetCookie(w, p.cookie(p.sessionCookieName(), "", -1))
	return subject, nil
}

// CSRF protection is a double-submit token: a random value in an HttpOnly
// cookie, and in each form the HMAC of that value under a key derived from
// the global secret. A cross-site page can neither read the cookie nor
// compute the MAC.
func (p *Provider) csrfToken(w http.ResponseWriter, r *http.Request) (string, error) {
	value := ""
	if c, err := r.Cookie(p.csrfCookieName()); err == nil && len(c.Value) == 43 {
		value = c.Value
	} else {
		v, err := randomToken()
		if err != nil {
			return "", err
		}
		value = v
		http.SetCookie(w, p.cookie(p.csrfCookieName(), value, 0))
	}
	return base64.RawURLEncoding.EncodeToString(p.csrfMAC(value)), nil
}

func (p *Provider) csrfMAC(cookieValue string) []byte {
	m := hmac.New(sha256.New, p.csrf)
	m.Write([]byte(cookieValue))
	return m.Sum(nil)
}

// checkCSRF reports whether the submitted form carries the token bound to
// the request's CSRF cookie (constant-time comparison).
func (p *Provider) checkCSRF(r *http.Request) bool {
	c, err := r.Cookie(p.csrfCookieName())
	if err != nil || c.Value == "" {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(r.PostForm.Get("csrf_token"))
	if err != nil || len(got) == 0 {
		return false
	}
	return hmac.Equal(got, p.csrfMAC(c.Value))
}
