package oauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

// The /device pages (RFC 8628 §3.3): the user enters the code shown on
// the device, signs in with the usual login session, and approves or
// denies on a page naming the client and the scopes, with a warning to go
// on only if they started the sign-in themselves (§5.4, remote phishing).
// verification_uri_complete only fills the code in: the user still
// submits it.
//
// Entering a code is the only step that looks a code up on the user's
// word, and it is counted against the guessing limits (deviceLookup).
// The steps after it carry a confirmation: an HMAC of the code bound to
// the browser's CSRF cookie, which only a browser that entered the code
// holds, so neither the return from the login page nor the decision form
// can be used to test codes.

// deviceConfirm is the confirmation for code in this browser, or "" when
// the browser has no CSRF cookie.
func (p *Provider) deviceConfirm(r *http.Request, code string) string {
	c, err := r.Cookie(p.csrfCookieName())
	if err != nil || c.Value == "" {
		return ""
	}
	m := hmac.New(sha256.New, p.csrf)
	m.Write([]byte("bulwark/device/confirm/v1\x00" + code + "\x00" + c.Value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// deviceConfirmed reports whether confirm is this browser's confirmation
// of code (constant-time comparison).
func (p *Provider) deviceConfirmed(r *http.Request, code, confirm string) bool {
	want := p.deviceConfirm(r, code)
	return want != "" && confirm != "" && hmac.Equal([]byte(want), []byte(confirm))
}

// safeLoginReturnTo is where the login page may send the user back to:
// the authorization endpoint (safeReturnTo) or the /device page.
func safeLoginReturnTo(raw string) string {
	if to := safeReturnTo(raw); to != "" {
		return to
	}
	return ownRelativeURL(raw, 1024, pathDevice)
}

// renderDeviceEntry shows the code entry form.
func (p *Provider) renderDeviceEntry(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	token, err := p.csrfToken(w, r)
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	p.render(w, r, status, "device", pageData{Title: "Connect a device", CSRF: token, UserCode: code, Error: message})
}

// handleDevicePage shows the code entry form, filled in from
// verification_uri_complete; after sign-in (confirm present and valid) it
// goes straight on to the decision page.
func (p *Provider) handleDevicePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	code, ok := normalizeUserCode(q.Get("user_code"))
	if !ok {
		p.renderDeviceEntry(w, r, http.StatusOK, "", "")
		return
	}
	if confirm := q.Get("confirm"); confirm != "" && p.deviceConfirmed(r, code, confirm) {
		d, err := p.cfg.Store.DeviceAuthorizationByUserCode(r.Context(), storage.HashKey(code), p.cfg.Now())
		switch {
		case err == nil:
			p.deviceConsent(w, r, d, code)
			return
		case !errors.Is(err, storage.ErrNotFound):
			p.writePageError(w, r, err)
			return
		}
		p.renderDeviceEntry(w, r, http.StatusBadRequest, "", "That code has expired or was already used. Start again on your device.")
		return
	}
	p.renderDeviceEntry(w, r, http.StatusOK, displayUserCode(code), "")
}

// handleDeviceSubmit takes an entered code.
func (p *Provider) handleDeviceSubmit(w http.ResponseWriter, r *http.Request) {
	if !p.readPageForm(w, r) {
		return
	}
	raw := r.PostForm.Get("user_code")
	d, verdict, err := p.deviceLookup(r.Context(), raw)
	switch {
	case err != nil:
		p.writePageError(w, r, err)
		return
	case !verdict.Allowed:
		retryAfter(w, verdict.RetryAfter)
		p.renderDeviceEntry(w, r, http.StatusTooManyRequests, "", "Too many codes were tried. Wait a moment, then try again.")
		return
	case d == nil:
		p.renderDeviceEntry(w, r, http.StatusBadRequest, "", "That code is not valid, or it has expired. Check the code on your device and try again.")
		return
	}
	code, _ := normalizeUserCode(raw) // deviceLookup found it, so it is valid
	p.deviceConsent(w, r, d, code)
}

// deviceConsent shows the decision page for d, after sign-in.
func (p *Provider) deviceConsent(w http.ResponseWriter, r *http.Request, d *storage.DeviceAuthorization, code string) {
	ctx := r.Context()
	confirm := p.deviceConfirm(r, code)
	_, user, err := p.currentLogin(ctx, r)
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	if user == nil || confirm == "" {
		back := pathDevice + "?" + url.Values{"user_code": {displayUserCode(code)}, "confirm": {confirm}}.Encode()
		http.Redirect(w, r, pathLogin+"?"+url.Values{"return_to": {back}}.Encode(), http.StatusSeeOther)
		return
	}
	client, err := p.client(ctx, d.ClientID)
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	token, err := p.csrfToken(w, r)
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	name := client.Name
	if name == "" {
		name = client.ID
	}
	views := make([]scopeView, 0, len(d.Scopes))
	for _, s := range d.Scopes {
		views = append(views, scopeView{Name: s, Description: scopeDescriptions[s]})
	}
	reqinfo.From(ctx).SetSubject(user.ID)
	p.render(w, r, http.StatusOK, "device_consent", pageData{
		Title:      "Connect this device?",
		CSRF:       token,
		Username:   user.Username,
		ClientName: name,
		Scopes:     views,
		UserCode:   displayUserCode(code),
		Confirm:    confirm,
	})
}

// handleDeviceDecision records the user's answer: one atomic transition
// of the pending request (storage.DeviceStore.DecideDeviceAuthorization),
// so an approval racing a denial has exactly one outcome.
func (p *Provider) handleDeviceDecision(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !p.readPageForm(w, r) {
		return
	}
	code, ok := normalizeUserCode(r.PostForm.Get("user_code"))
	if !ok || !p.deviceConfirmed(r, code, r.PostForm.Get("confirm")) {
		p.renderDeviceEntry(w, r, http.StatusBadRequest, "", "Enter the code shown on your device.")
		return
	}
	login, user, err := p.currentLogin(ctx, r)
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	if user == nil {
		p.writePageError(w, r, fosite.ErrLoginRequired.WithHint("Your session has ended; sign in again."))
		return
	}
	reqinfo.From(ctx).SetSubject(user.ID)
	now := p.cfg.Now().UTC().Truncate(time.Microsecond)
	hash := storage.HashKey(code)
	d, err := p.cfg.Store.DeviceAuthorizationByUserCode(ctx, hash, now)
	if errors.Is(err, storage.ErrNotFound) {
		p.deviceGone(w, r)
		return
	} else if err != nil {
		p.writePageError(w, r, err)
		return
	}
	client, err := p.client(ctx, d.ClientID)
	if err != nil {
		p.writePageError(w, r, err)
		return
	}
	reqinfo.From(ctx).SetClientID(client.ID)

	approve := r.PostForm.Get("decision") == "approve"
	var grant []byte
	if approve {
		scopes := fosite.Arguments(d.Scopes)
		req := &fosite.Request{
			ID: d.RequestID, RequestedAt: d.CreatedAt, Client: client,
			RequestedScope: scopes, GrantedScope: scopes,
			RequestedAudience: fosite.Arguments(d.Audience), GrantedAudience: fosite.Arguments(d.Audience),
			Form:    url.Values{},
			Session: p.userSession(client, user, login, scopes, d.CreatedAt),
		}
		rec, err := storage.EncodeRequest(d.DeviceCodeHash, req, fosite.AccessToken, deviceCodeLifespan)
		if err != nil {
			p.writePageError(w, r, err)
			return
		}
		grant = rec.Data
	}
	if _, err := p.cfg.Store.DecideDeviceAuthorization(ctx, hash, user.ID, grant, now); errors.Is(err, storage.ErrPreconditionFailed) {
		p.deviceGone(w, r)
		return
	} else if err != nil {
		p.writePageError(w, r, err)
		return
	}
	if approve {
		p.audit(ctx, storage.AuditEvent{Event: EventDeviceApproved, Subject: user.ID, ClientID: client.ID, Outcome: OutcomeSuccess,
			Details: map[string]string{"scope": strings.Join(d.Scopes, " ")}})
		p.render(w, r, http.StatusOK, "message", pageData{Title: "Device connected",
			Message: "You allowed " + clientName(client) + " on your device. You can close this page and return to the device."})
		return
	}
	p.audit(ctx, storage.AuditEvent{Event: EventDeviceDenied, Subject: user.ID, ClientID: client.ID, Outcome: OutcomeSuccess})
	p.render(w, r, http.StatusOK, "message", pageData{Title: "Request denied",
		Message: "The device was not connected to your account. You can close this page."})
}

// deviceGone answers a decision on a request that is no longer pending.
func (p *Provider) deviceGone(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusConflict, "error", pageData{
		Title:     "Code no longer valid",
		Message:   "This code has expired or was already answered. Start again on your device if needed.",
		Code:      "invalid_request",
		RequestID: reqinfo.RequestID(r.Context()),
	})
}

func clientName(c *storage.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}
