package oauth

import (
	"bytes"
	"errors"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
	"github.com/bulwark-auth/bulwark/web"
)

// pageData is what every public template receives.
type pageData struct {
	Title      string
	Message    string
	Error      string
	Code       string
	RequestID  string
	CSRF       string
	ReturnTo   string
	Username   string
	ClientName string
	Scopes     []scopeView
	// Logout carries an RP-initiated logout request through the
	// confirmation form.
	Logout *logoutRequest
	// UserCode and Confirm carry a device user code (XXXX-XXXX) and the
	// proof that this browser entered it (device_pages.go).
	UserCode, Confirm string
}

type scopeView struct{ Name, Description string }

// render executes a page into a buffer first, so a template failure becomes
// a clean 500 instead of half a page.
func (p *Provider) render(w http.ResponseWriter, r *http.Request, status int, name string, data pageData) {
	var buf bytes.Buffer
	if err := p.pages.ExecuteTemplate(&buf, name, data); err != nil {
		p.log.WithError(err).WithField("template", name).Error("render page")
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	// No script at all, styles only from us, and never framed (clickjacking
	// on the consent page). form-action is left out: after a form POST the
	// browser follows redirects to the client's redirect URI.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (p *Provider) renderForbidden(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusForbidden, "error", pageData{
		Title:     "Request refused",
		Message:   "The form was missing its security token or it has expired. Go back, reload the page and try again.",
		Code:      "csrf",
		RequestID: reqinfo.RequestID(r.Context()),
	})
}

func staticHandler() http.Handler {
	sub, err := fs.Sub(web.FS, "static")
	if err != nil {
		// web.FS embeds static/ at build time; a missing directory is a
		// build defect, not a runtime condition.
		panic("web: static assets missing: " + err.Error())
	}
	files := http.StripPrefix(pathStatic, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

// readPageForm caps and parses a page's posted form and checks its CSRF
// token. On failure it has answered 403 and returns false.
func (p *Provider) readPageForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || !p.checkCSRF(r) {
		p.renderForbidden(w, r)
		return false
	}
	return true
}

// safeReturnTo accepts only a relative URL pointing at our own
// authorization endpoint, so the login and consent pages cannot be turned
// into open redirectors.
func safeReturnTo(raw string) string { return ownRelativeURL(raw, 8192, pathAuthorize) }

// ownRelativeURL returns raw as a request URI when it is a relative URL of
// at most maxLen bytes whose path is exactly path, and "" otherwise.
func ownRelativeURL(raw string, maxLen int, path string) string {
	if raw == "" || len(raw) > maxLen || strings.ContainsAny(raw, "\\\r\n") || strings.HasPrefix(raw, "//") {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Path != path || u.Fragment != "" {
		return ""
	}
	return u.RequestURI()
}

// handleLoginPage shows the sign-in form.
func (p *Provider) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	token, err := p.csrfToken(w, r)
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "login", pageData{
		Title:    "Sign in",
		CSRF:     token,
		ReturnTo: safeLoginReturnTo(r.URL.Query().Get("return_to")),
	})
}

// handleLoginSubmit checks the password with the Argon2id hasher. An unknown
// or disabled user costs one hash comparison too, so timing does not reveal
// which usernames exist.
func (p *Provider) handleLoginSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !p.readPageForm(w, r) {
		return
	}
	username := strings.TrimSpace(r.PostForm.Get("username"))
	password := r.PostForm.Get("password")
	returnTo := safeLoginReturnTo(r.PostForm.Get("return_to"))

	ip := p.clientIP(r)
	// The attempt is counted for this username on every replica before
	// any lookup or hashing, identically for known and unknown names.
	verdict, err := reserve(ctx, p.cfg.Defense.LoginGuard, username, netip.Addr{})
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	if !verdict.Allowed {
		p.audit(ctx, storage.AuditEvent{Event: EventLogin, Actor: username, Outcome: OutcomeFailure, Details: map[string]string{"reason": "throttled"}})
		token, err := p.csrfToken(w, r)
		if err != nil {
			p.writePageError(w, r, err)
			return
		}
		retryAfter(w, verdict.RetryAfter)
		p.render(w, r, http.StatusTooManyRequests, "login", pageData{
			Title:    "Sign in",
			Error:    "Too many failed attempts. Wait a moment, then try again.",
			CSRF:     token,
			ReturnTo: returnTo,
			Username: username,
		})
		return
	}

	var user *storage.User
	hash := p.dummy
	if username != "" {
		u, err := p.cfg.Store.UserByUsername(ctx, username)
		switch {
		case err == nil:
			user, hash = u, u.PasswordHash
		case !errors.Is(err, storage.ErrNotFound):
			p.writePageError(w, r, err)
			return
		}
	}
	match := p.passwords().Compare(ctx, []byte(hash), []byte(password)) == nil
	if user == nil || user.Disabled || password == "" || !match {
		if p.cfg.Defense.Signals != nil {
			p.cfg.Defense.Signals.ObserveLogin(ctx, ip, username)
		}
		p.audit(ctx, storage.AuditEvent{
			Event:   EventLogin,
			Actor:   username,
			Outcome: OutcomeFailure,
		})
		token, err := p.csrfToken(w, r)
		if err != nil {
			p.writePageError(w, r, err)
			return
		}
		p.render(w, r, http.StatusUnauthorized, "login", pageData{
			Title:    "Sign in",
			Error:    "Incorrect username or password.",
			CSRF:     token,
			ReturnTo: returnTo,
			Username: username,
		})
		return
	}
	p.guardSucceeded(ctx, p.cfg.Defense.LoginGuard, username)
	if _, err := p.startLogin(ctx, w, r, user); err != nil {
		p.writePageError(w, r, err)
		return
	}
	reqinfo.From(ctx).SetSubject(user.ID)
	p.audit(ctx, storage.AuditEvent{Event: EventLogin, Subject: user.ID, Outcome: OutcomeSuccess})
	if returnTo != "" {
		http.Redirect(w, r, returnTo, http.StatusSeeOther) // #nosec G710 -- returnTo passed safeLoginReturnTo: only our own authorization endpoint or /device
		return
	}
	p.render(w, r, http.StatusOK, "message", pageData{Title: "Signed in", Message: "You are signed in as " + user.Username + "."})
}

// handleConsentPage shows what the client asks for. It re-validates the
// authorization request, so nothing on the page comes from unchecked input.
func (p *Provider) handleConsentPage(w http.ResponseWriter, r *http.Request) {
	p.resumeAuthorize(w, r, r.URL.Query().Get("return_to"), modeRender)
}

// handleConsentSubmit records the user's decision and finishes the
// authorization request it belongs to.
func (p *Provider) handleConsentSubmit(w http.ResponseWriter, r *http.Request) {
	if !p.readPageForm(w, r) {
		return
	}
	mode := modeDeny
	if r.PostForm.Get("decision") == "approve" {
		mode = modeApprove
	}
	p.resumeAuthorize(w, r, r.PostForm.Get("return_to"), mode)
}

// resumeAuthorize replays the authorization request named by returnTo as a
// GET on the authorization endpoint, in the given mode.
func (p *Provider) resumeAuthorize(w http.ResponseWriter, r *http.Request, returnTo string, mode authorizeMode) {
	target := safeReturnTo(returnTo)
	if target == "" {
		p.render(w, r, http.StatusBadRequest, "error", pageData{
			Title:   "Invalid request",
			Message: "This page can only be reached from an application's sign-in request.",
			Code:    "invalid_request",
		})
		return
	}
	u, _ := url.Parse(target) // safeReturnTo parsed it already
	replay := r.Clone(r.Context())
	replay.Method = http.MethodGet
	replay.URL = u
	replay.RequestURI = target
	replay.Form, replay.PostForm, replay.MultipartForm = nil, nil, nil
	replay.Body = http.NoBody
	replay.ContentLength = 0
	replay.Header.Del("Content-Type")
	p.authorize(w, replay, mode)
}

// handleLogoutPage asks for confirmation, so a cross-site link cannot sign
// the user out. It is also the end_session_endpoint of OpenID Connect
// RP-Initiated Logout 1.0: the client's parameters are validated here and
// carried in the form, and validated again on submit.
//
// The page is shown even when nobody is signed in: the answer to a logout
// request then looks the same whatever the session state, and the user
// still returns to the client after confirming.
func (p *Provider) handleLogoutPage(w http.ResponseWriter, r *http.Request) {
	lr, err := p.parseLogoutRequest(r.Context(), r.URL.Query())
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	_, user, err := p.currentLogin(r.Context(), r)
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	token, err := p.csrfToken(w, r)
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	data := pageData{Title: "Sign out", CSRF: token, Logout: lr, ClientName: lr.clientName()}
	if user != nil {
		data.Username = user.Username
	}
	p.render(w, r, http.StatusOK, "logout", data)
}

// handleLogoutSubmit ends the login session server-side, then returns the
// user to the client when the (re-validated) request named a registered
// post_logout_redirect_uri (RP-Initiated Logout 1.0 §3).
func (p *Provider) handleLogoutSubmit(w http.ResponseWriter, r *http.Request) {
	if !p.readPageForm(w, r) {
		return
	}
	// The hidden fields are client input like the original query: a
	// tampered redirect URI is refused before anything happens.
	lr, err := p.parseLogoutRequest(r.Context(), r.PostForm)
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	subject, err := p.endLogin(r.Context(), w, r)
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	if subject != "" {
		ev := storage.AuditEvent{Event: EventLogout, Subject: subject, Outcome: OutcomeSuccess}
		if lr.client != nil {
			ev.ClientID = lr.client.GetID()
		}
		p.audit(r.Context(), ev)
	}
	if target := lr.redirectTarget(); target != "" {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, target, http.StatusSeeOther) // #nosec G710 -- target exactly matches a redirect URI registered for the client
		return
	}
	p.render(w, r, http.StatusOK, "message", pageData{Title: "Signed out", Message: "You have been signed out."})
}

// passwords is the hasher for user passwords (never a caching one).
func (p *Provider) passwords() fosite.Hasher {
	if p.cfg.PasswordHasher != nil {
		return p.cfg.PasswordHasher
	}
	return p.cfg.Hasher
}
