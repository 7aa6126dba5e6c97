package oauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

// authorizeMode says how far the authorization endpoint may go.
type authorizeMode int

const (
	// modeAuthorize is a plain request to /oauth2/auth: ask for login or
	// consent if needed, else issue a code.
	modeAuthorize authorizeMode = iota
	// modeRender shows the consent page instead of redirecting to it.
	modeRender
	// modeApprove and modeDeny carry the user's answer on the consent page.
	modeApprove
	modeDeny
)

// handleAuthorize is the authorization endpoint (RFC 6749 §3.1, OpenID
// Connect Core §3.1.2).
func (p *Provider) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	p.authorize(w, r, modeAuthorize)
}

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request, mode authorizeMode) {
	ctx := r.Context()
	if err := parseBody(w, r); err != nil {
		p.writePageError(w, r, fosite.ErrInvalidRequest.WithHint("The request could not be parsed.").WithWrap(err))
		return
	}
	form := r.Form
	isPAR := strings.HasPrefix(form.Get("request_uri"), parURIPrefix)

	// Unknown clients and unregistered redirect URIs get a page, never a
	// redirect (RFC 6749 §4.1.2.1). This runs before fosite because fosite
	// grants RFC 8252 loopback port flexibility to every client; Bulwark
	// grants it to native clients only.
	client, err := p.client(ctx, form.Get("client_id"))
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	if !isPAR && !redirectAllowed(client, form.Get("redirect_uri")) {
		p.writePageError(w, r, fosite.ErrInvalidRequest.WithHint("The 'redirect_uri' parameter does not match any of the OAuth 2.0 Client's pre-registered redirect urls."))
		return
	}
	reqinfo.From(ctx).SetClientID(client.ID)

	// Request objects are refused outright (OpenID Connect Core §6): fosite
	// would accept unsigned ones and fetch request_uri values. Only the
	// request_uri references Bulwark itself issued at the PAR endpoint pass.
	var refused error
	if form.Get("request") != "" {
		refused = fosite.ErrRequestNotSupported.WithHint("Request objects are not supported.")
		form.Del("request")
	}
	if form.Get("request_uri") != "" && !isPAR {
		refused = fosite.ErrRequestURINotSupported.WithHint("Only request_uri values from the pushed authorization request endpoint are supported.")
		form.Del("request_uri")
	}
	// Only the query response mode exists (the default of the code flow).
	// fosite refuses an explicit "query" because storage.Client has no
	// response modes, and would write the refusal of fragment or form_post
	// in that very mode, without iss.
	switch mode := form.Get("response_mode"); mode {
	case "":
	case string(fosite.ResponseModeQuery):
		form.Del("response_mode")
	default:
		refused = fosite.ErrUnsupportedResponseMode.WithHint("Only response_mode=query is supported.")
		form.Del("response_mode")
	}
	if isPAR {
		// RFC 9126 §4: with a request_uri, everything but client_id comes
		// from the pushed request. fosite merges the pushed parameters into
		// the browser's, so a parameter the client never pushed (prompt,
		// nonce, max_age, ...) would otherwise be added from the URL.
		for k := range form {
			if k != "client_id" && k != "request_uri" {
				delete(form, k)
			}
		}
	}

	ar, err := p.oauth.NewAuthorizeRequest(ctx, r)
	if err == nil && refused != nil {
		err = refused
	}
	if err == nil && isPAR {
		// fosite does not check the expiry it gave the pushed request, and
		// the row lives until the janitor's next round.
		if exp := ar.GetSession().GetExpiresAt(fosite.PushedAuthorizeRequestContext); !exp.IsZero() && !p.cfg.Now().Before(exp) {
			err = fosite.ErrInvalidRequestURI.WithHint("The request_uri has expired.")
		}
	}
	if err == nil {
		err = checkPKCE(client, ar)
	}
	if err == nil && ar.GetRequestedScopes().Has("openid") {
		err = p.idTokens.check(client)
	}
	if err != nil {
		p.writeAuthorizeError(w, r, ar, err)
		return
	}

	// The login session, its user and their consent to this client: one
	// round trip.
	state, err := p.resumeLogin(ctx, r, client.ID)
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	var (
		login   *storage.LoginSession
		user    *storage.User
		consent *storage.Consent
	)
	if state != nil {
		login, user, consent = state.Session, state.User, state.Consent
	}
	prompt := fosite.RemoveEmpty(strings.Split(ar.GetRequestForm().Get("prompt"), " "))
	if user != nil && loginTooOld(ar, login, p.cfg.Now()) {
		// fosite would answer login_required, and the client could only
		// send the same request again: sign the user in afresh instead.
		// The resumed request then sees the new login's auth_time.
		login, user = nil, nil
	}
	if user == nil {
		if fosite.Arguments(prompt).Has("none") {
			p.writeAuthorizeError(w, r, ar, fosite.ErrLoginRequired)
			return
		}
		if mode == modeApprove || mode == modeDeny {
			// The login session ended while the consent page was open.
			p.writePageError(w, r, fosite.ErrLoginRequired.WithHint("Your session has ended; sign in again."))
			return
		}
		returnTo, err := p.resumable(ctx, r, ar)
		if err != nil {
			p.writeAuthorizeError(w, r, ar, err)
			return
		}
		http.Redirect(w, r, pathLogin+"?"+url.Values{"return_to": {returnTo}}.Encode(), http.StatusSeeOther)
		return
	}
	reqinfo.From(ctx).SetSubject(user.ID)

	if mode == modeDeny {
		p.audit(ctx, storage.AuditEvent{Event: EventConsentDenied, Subject: user.ID, ClientID: client.ID, Outcome: OutcomeSuccess})
		p.writeAuthorizeError(w, r, ar, fosite.ErrAccessDenied.WithHint("The resource owner denied the request."))
		return
	}

	scopes := ar.GetRequestedScopes()
	if mode != modeApprove {
		consented := p.hasConsent(client, consent, scopes)
		if fosite.Arguments(prompt).Has("consent") {
			consented = false
		}
		if !consented {
			if fosite.Arguments(prompt).Has("none") {
				p.writeAuthorizeError(w, r, ar, fosite.ErrConsentRequired)
				return
			}
			returnTo, err := p.resumable(ctx, r, ar)
			if err != nil {
				p.writeAuthorizeError(w, r, ar, err)
				return
			}
			if mode == modeRender {
				p.renderConsent(w, r, client, user, scopes, returnTo)
				return
			}
			http.Redirect(w, r, pathConsent+"?"+url.Values{"return_to": {returnTo}}.Encode(), http.StatusSeeOther)
			return
		}
	} else {
		if err := p.saveConsent(ctx, client, user.ID, scopes); err != nil {
			p.writeAuthorizeError(w, r, ar, err)
			return
		}
	}

	p.issueCode(w, r, ar, client, user, login)
}

// issueCode finishes a validated, consented authorization request.
func (p *Provider) issueCode(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, client *storage.Client, user *storage.User, login *storage.LoginSession) {
	ctx := r.Context()
	for _, s := range ar.GetRequestedScopes() {
		ar.GrantScope(s)
	}
	for _, a := range ar.GetRequestedAudience() {
		ar.GrantAudience(a)
	}
	sess := p.userSession(client, user, login, ar.GetGrantedScopes(), ar.GetRequestedAt())
	// fosite's handlers hand the code, its PKCE request and its OpenID
	// Connect request to flowStore, which collects them; they are written
	// below, with the login session join, in one round trip.
	writes := &storage.AuthorizeSessions{}
	if ar.GetGrantedScopes().Has("openid") && login.SID != "" {
		// OpenID Connect Back-Channel Logout 1.0 §2.1: the ID token names
		// the login session, and the client is recorded as holding a
		// session of it. A logout racing this request either sees the
		// record (and tells the client) or makes the write fail.
		sess.IDTokenClaims().Extra["sid"] = login.SID
		writes.JoinLogin = login.Key
	}

	resp, err := p.oauth.NewAuthorizeResponse(collectAuthorize(ctx, writes), ar, sess)
	if err != nil {
		p.writeAuthorizeError(w, r, ar, err)
		return
	}
	if writes.Code == nil {
		// No handler issued a code: nothing is valid to redirect with.
		p.writeAuthorizeError(w, r, ar, fosite.ErrServerError.WithDebug("the authorization response carries no code"))
		return
	}
	if err := p.cfg.Store.CreateAuthorizeSessions(ctx, writes); errors.Is(err, storage.ErrNotFound) {
		p.writePageError(w, r, fosite.ErrLoginRequired.WithHint("Your session has ended; sign in again."))
		return
	} else if err != nil {
		p.writeAuthorizeError(w, r, ar, fmt.Errorf("oauth: store the authorization code: %w", err))
		return
	}
	// RFC 9207 §2: the issuer identifies us to the client, defeating mix-up
	// attacks.
	resp.AddParameter("iss", p.cfg.Issuer)
	p.oauth.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// userSession is the session of tokens a user grants a client: the ID
// token claims (auth_time of the login, azp, and the profile and email
// claims the granted scopes allow). Every user grant (authorization code,
// device authorization) builds it here.
func (p *Provider) userSession(client *storage.Client, user *storage.User, login *storage.LoginSession, granted fosite.Arguments, requestedAt time.Time) *storage.Session {
	sess := storage.NewSession(user.ID)
	sess.ClientID = client.ID
	sess.Username = user.Username
	claims := sess.IDTokenClaims()
	claims.Issuer = p.cfg.Issuer
	claims.AuthTime = login.AuthTime.UTC()
	claims.RequestedAt = requestedAt
	claims.Extra["azp"] = client.ID
	if granted.Has("profile") {
		claims.Extra["preferred_username"] = user.Username
	}
	if granted.Has("email") && user.Email != "" {
		claims.Extra["email"] = user.Email
	}
	return sess
}

// loginTooOld reports whether the login is older than the request's
// max_age (OpenID Connect Core §3.1.2.1), in whole seconds as auth_time is.
// max_age=0 is left to fosite, which ignores it: honouring it would ask for
// a new sign-in on every pass through the endpoint, the resumed one included.
func loginTooOld(ar fosite.AuthorizeRequester, login *storage.LoginSession, now time.Time) bool {
	maxAge, err := strconv.ParseInt(ar.GetRequestForm().Get("max_age"), 10, 64)
	if err != nil || maxAge <= 0 {
		return false
	}
	return now.Sub(login.AuthTime) > time.Duration(maxAge)*time.Second
}

// checkPKCE refuses a request without an S256 code challenge before the
// user is sent through login and consent; fosite's PKCE handler enforces the
// same rule again when the code is issued (RFC 7636 §4.4.1).
func checkPKCE(c *storage.Client, ar fosite.AuthorizeRequester) error {
	form := ar.GetRequestForm()
	challenge, method := form.Get("code_challenge"), form.Get("code_challenge_method")
	switch {
	case challenge == "" && method == "" && c.PKCEOptional && !c.IsPublic():
		return nil
	case challenge == "":
		return fosite.ErrInvalidRequest.WithHint("Clients must include a code_challenge when performing the authorize code flow, but it is missing.")
	case method != "S256":
		return fosite.ErrInvalidRequest.WithHint("Clients must use code_challenge_method=S256.")
	case !validS256Challenge(challenge):
		return fosite.ErrInvalidRequest.WithHint("The code_challenge must be 43 base64url characters (RFC 7636 §4.2).")
	}
	return nil
}

// validS256Challenge reports whether challenge can be an S256 code challenge:
// BASE64URL(SHA256(verifier)) without padding is exactly 43 characters of
// the base64url alphabet (RFC 7636 §4.2, Appendix A).
func validS256Challenge(challenge string) bool {
	if len(challenge) != 43 {
		return false
	}
	for i := 0; i < len(challenge); i++ {
		c := challenge[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// client loads the client for the authorization endpoint; unknown and
// disabled clients are invalid_client.
func (p *Provider) client(ctx context.Context, id string) (*storage.Client, error) {
	if id == "" {
		return nil, fosite.ErrInvalidRequest.WithHint("The 'client_id' parameter is missing.")
	}
	c, err := p.cfg.Store.GetClient(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fosite.ErrInvalidClient.WithHint("The requested OAuth 2.0 Client does not exist.")
	} else if err != nil {
		return nil, fmt.Errorf("oauth: load client: %w", err)
	}
	bc, ok := c.(*storage.Client)
	if !ok || bc.Disabled {
		return nil, fosite.ErrInvalidClient.WithHint("The requested OAuth 2.0 Client does not exist.")
	}
	return bc, nil
}

// redirectAllowed decides whether raw may receive the response: an exact
// match with a registered URI, or, for native clients only, a loopback URI
// that differs from a registered one in its port alone (RFC 8252 §7.3).
// An empty raw is left to fosite (allowed when exactly one URI is
// registered and the request is not OpenID Connect).
func redirectAllowed(c *storage.Client, raw string) bool {
	if raw == "" {
		return true
	}
	for _, reg := range c.RedirectURIs {
		if reg == raw {
			return true
		}
	}
	if !c.IsNative() {
		return false
	}
	// Textual comparison with the port cut out: everything else — scheme
	// case, path encoding, an empty query — must match byte for byte.
	want, ok := loopbackWithoutPort(raw)
	if !ok {
		return false
	}
	for _, reg := range c.RedirectURIs {
		if got, ok := loopbackWithoutPort(reg); ok && got == want {
			return true
		}
	}
	return false
}

// loopbackWithoutPort returns raw with the port removed from its authority
// when raw is an http URI on a loopback IP literal with no fragment; ok is
// false otherwise.
func loopbackWithoutPort(raw string) (string, bool) {
	rest, ok := strings.CutPrefix(raw, "http://")
	if !ok || strings.Contains(raw, "#") {
		return "", false
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		i := strings.Index(authority, "]")
		if i < 0 {
			return "", false
		}
		host, port = authority[:i+1], authority[i+1:]
	} else if i := strings.LastIndex(authority, ":"); i >= 0 {
		host, port = authority[:i], authority[i:]
	}
	if port != "" {
		digits := strings.TrimPrefix(port, ":")
		if port == digits || digits == "" || len(digits) > 5 || strings.Trim(digits, "0123456789") != "" {
			return "", false
		}
	}
	if !isLoopbackIP(strings.Trim(host, "[]")) {
		return "", false
	}
	return "http://" + host + tail, true
}

// isLoopbackIP accepts IP literals only; RFC 8252 §8.3 advises against
// "localhost".
func isLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hasConsent reports whether the user's consent con (nil when none)
// covers every requested scope, or the client is first-party.
func (p *Provider) hasConsent(c *storage.Client, con *storage.Consent, scopes fosite.Arguments) bool {
	if c.SkipConsent {
		return true
	}
	if con == nil || (!con.ExpiresAt.IsZero() && !p.cfg.Now().Before(con.ExpiresAt)) {
		return false
	}
	for _, s := range scopes {
		if !fosite.Arguments(con.Scopes).Has(s) {
			return false
		}
	}
	return true
}

// saveConsent remembers the granted scopes, merged with earlier grants by
// the store in one statement: reading the consent here and writing back
// the merge would revive a consent an admin revokes in between.
func (p *Provider) saveConsent(ctx context.Context, c *storage.Client, subject string, scopes fosite.Arguments) error {
	if err := p.cfg.Store.GrantConsent(ctx, &storage.Consent{
		Subject:   subject,
		ClientID:  c.ID,
		Scopes:    append([]string(nil), scopes...),
		GrantedAt: p.cfg.Now().UTC(),
	}); err != nil {
		return fmt.Errorf("oauth: save consent: %w", err)
	}
	p.audit(ctx, storage.AuditEvent{
		Event:    EventConsentGranted,
		Subject:  subject,
		ClientID: c.ID,
		Outcome:  OutcomeSuccess,
		Details:  map[string]string{"scope": strings.Join(scopes, " ")},
	})
	return nil
}

// resumable returns a relative URL that repeats this authorization request
// after login or consent. A pushed request was consumed when fosite loaded
// it, so it is pushed again under a fresh request_uri.
func (p *Provider) resumable(ctx context.Context, r *http.Request, ar fosite.AuthorizeRequester) (string, error) {
	if !strings.HasPrefix(r.Form.Get("request_uri"), parURIPrefix) {
		return pathAuthorize + "?" + r.Form.Encode(), nil
	}
	tok, err := randomToken()
	if err != nil {
		return "", err
	}
	uri := parURIPrefix + tok
	// The resumed request waits for a person to sign in or consent, which
	// takes longer than the client had to redirect after pushing.
	ar.GetSession().SetExpiresAt(fosite.PushedAuthorizeRequestContext, p.cfg.Now().UTC().Add(parResumeLifespan))
	if err := p.cfg.Store.CreatePARSession(ctx, uri, ar); err != nil {
		return "", fmt.Errorf("oauth: store pushed request: %w", err)
	}
	return pathAuthorize + "?" + url.Values{"client_id": {ar.GetClient().GetID()}, "request_uri": {uri}}.Encode(), nil
}

func (p *Provider) renderConsent(w http.ResponseWriter, r *http.Request, c *storage.Client, u *storage.User, scopes fosite.Arguments, returnTo string) {
	token, err := p.csrfToken(w, r)
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	name := c.Name
	if name == "" {
		name = c.ID
	}
	views := make([]scopeView, 0, len(scopes))
	for _, s := range scopes {
		views = append(views, scopeView{Name: s, Description: scopeDescriptions[s]})
	}
	p.render(w, r, http.StatusOK, "consent", pageData{
		Title:      "Allow access?",
		CSRF:       token,
		ReturnTo:   returnTo,
		Username:   u.Username,
		ClientName: name,
		Scopes:     views,
	})
}

// writeAuthorizeError redirects the error to the client when the redirect
// URI is trustworthy, adding iss (RFC 9207 §2), and shows the error page
// otherwise.
func (p *Provider) writeAuthorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	if unavailable(err) || ar == nil || !ar.IsRedirectURIValid() {
		p.writePageError(w, r, err)
		return
	}
	err = oauthError(err)
	p.logError(r, "authorization request failed", err)
	rec := &bufferedResponse{header: http.Header{}}
	p.oauth.WriteAuthorizeError(r.Context(), rec, ar, err)
	if loc := rec.header.Get("Location"); loc != "" {
		if u, perr := url.Parse(loc); perr == nil {
			if u.Fragment != "" {
				v, _ := url.ParseQuery(u.Fragment)
				v.Set("iss", p.cfg.Issuer)
				u.Fragment = v.Encode()
			} else {
				q := u.Query()
				q.Set("iss", p.cfg.Issuer)
				u.RawQuery = q.Encode()
			}
			rec.header.Set("Location", u.String())
		}
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

// bufferedResponse captures what a fosite writer produces so a header can
// be amended before it reaches the client.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(s int) {
	if b.status == 0 {
		b.status = s
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
