package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/ory/fosite"

	"github.com/bulwark-auth/bulwark/keys/apikeys"
	"github.com/bulwark-auth/bulwark/server/dpop"
	"github.com/bulwark-auth/bulwark/server/protect"
	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

// handleToken is the token endpoint (RFC 6749 §3.2).
func (p *Provider) handleToken(w http.ResponseWriter, r *http.Request) {
	ctx := withMint(r.Context())
	if err := parseBody(w, r); err == nil {
		// fosite answers invalid_request for grants it has no handler
		// for; RFC 6749 §5.2 asks for unsupported_grant_type.
		if gt := r.PostForm.Get("grant_type"); gt != "" && !p.grants.Has(gt) {
			p.writeAccessError(w, r, nil, fosite.ErrUnsupportedGrantType)
			return
		}
	}
	// The client this request claims to be, whichever way it
	// authenticates (Basic, client_secret_post, private_key_jwt), as the
	// pipeline read it once: the key of the client-secret guard. The
	// attempt is counted for it, on every replica, right before its secret
	// would be compared with Argon2id (see ClientGuard); a refusal there
	// answers 429 unchecked. No address is given (see reserve).
	claimed := reqinfo.ClaimedClientID(ctx)
	guard := p.cfg.Defense.ClientGuard
	if guard != nil && claimed != "" {
		ctx = guard.WithAttempt(ctx, claimed, netip.Addr{})
		r = r.WithContext(ctx)
	} else {
		guard = nil
	}
	if err := p.checkExchangeClientAuth(ctx, r); err != nil {
		if p.clientLocked(ctx, w, r) {
			return
		}
		p.observe(r, protect.SignalInvalidClient, claimed)
		if p.clientFailed(ctx, w, guard, claimed) {
			return
		}
		p.writeAccessError(w, r, nil, err)
		return
	}
	// The DPoP proof is checked before fosite reads the grant, so a
	// refused proof (or the use_dpop_nonce round trip) consumes no code or
	// refresh token.
	proof, err := p.tokenProof(ctx, r)
	if err != nil {
		p.writeProofError(w, r, nil, err)
		return
	}
	// The code (with its PKCE request) or refresh token this request
	// redeems, its client and its user: one round trip, which fosite's
	// reads below and checkResourceOwner are answered from.
	ctx, owner, err := p.readGrant(ctx, r.PostForm)
	if err != nil {
		p.writeAccessError(w, r, nil, err)
		return
	}
	sess := storage.NewSession("")
	ar, err := p.oauth.NewAccessRequest(ctx, r, sess)
	if err != nil {
		if p.clientLocked(ctx, w, r) {
			return
		}
		if isInvalidClient(err) && claimed != "" {
			p.observe(r, protect.SignalInvalidClient, claimed)
			if p.clientFailed(ctx, w, guard, claimed) {
				return
			}
		}
		p.writeAccessError(w, r, ar, err)
		return
	}
	clientID := ar.GetClient().GetID()
	reqinfo.From(ctx).SetClientID(clientID)

	if ar.GetGrantTypes().ExactOne("client_credentials") {
		// fosite validated the requested scope and audience against the
		// client's registration but grants nothing by itself.
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
		for _, a := range ar.GetRequestedAudience() {
			ar.GrantAudience(a)
		}
		// The client acts on its own behalf: sub is its id (RFC 9068 §2.2).
		sess.Subject = clientID
		sess.IDTokenClaims().Subject = clientID
		sess.ClientID = clientID
	}

	if gt := ar.GetGrantTypes(); gt.ExactOne("authorization_code") || gt.ExactOne("refresh_token") {
		// Disabling a user revokes their codes and tokens, but a request
		// already past that point, or a disable without containment, must
		// not mint new tokens for someone who can no longer sign in.
		if err := p.checkResourceOwner(ctx, ar.GetSession().GetSubject(), owner); err != nil {
			p.writeAccessError(w, r, ar, err)
			return
		}
	}
	if gt := ar.GetGrantTypes(); !gt.ExactOne("client_credentials") && !gt.ExactOne(GrantTypeTokenExchange) &&
		(ar.GetRequestedScopes().Has("openid") || ar.GetGrantedScopes().Has("openid")) {
		// An ID token will be signed with the client's algorithm.
		if err := p.idTokens.check(ar.GetClient()); err != nil {
			p.writeAccessError(w, r, ar, err)
			return
		}
	}

	if err := p.bindProof(ar, proof); err != nil {
		p.writeProofError(w, r, ar, err)
		return
	}

	// The grant's subject and scopes are settled once fosite handled the
	// request; the event of the token rides with the token's INSERT, so
	// the token exists exactly when its audit row does.
	details := map[string]string{
		"grant_type": strings.Join(ar.GetGrantTypes(), " "),
		"scope":      strings.Join(ar.GetGrantedScopes(), " "),
	}
	dpopBound := false
	if s, ok := ar.GetSession().(*storage.Session); ok && s.DPoPJKT != "" {
		dpopBound = true
		details["token_type"] = schemeDPoP
	}
	subject := ar.GetSession().GetSubject()
	mintCtx, issued := p.auditToken(ctx, storage.AuditEvent{
		Event:    EventTokenIssued,
		ClientID: clientID,
		Subject:  subject,
		Outcome:  OutcomeSuccess,
		Details:  details,
	})
	resp, err := p.oauth.NewAccessResponse(mintCtx, ar)
	if err != nil {
		if errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			// A concurrent request consumed the code between fosite's
			// read and its own attempt (RFC 6749 §4.1.2). The store
			// decided only after the winner committed, so everything
			// the code produced is visible now and is revoked, as
			// fosite does for a replay it recognises on first read.
			p.revokeFamily(r, ar.GetID())
		}
		p.writeAccessError(w, r, ar, err)
		return
	}
	if proof != nil {
		// A fresh nonce with every answer keeps the client's current
		// (RFC 9449 §8.2).
		if p.cfg.DPoP.NoncePolicy() != dpop.NonceNever {
			w.Header().Set(headerDPoPNonce, p.cfg.DPoP.Nonce())
		}
	}
	if dpopBound {
		resp.SetTokenType(schemeDPoP)
	}
	reqinfo.From(ctx).SetSubject(subject)
	for _, gt := range ar.GetGrantTypes() {
		p.countToken(gt)
	}
	issued(ctx)
	p.oauth.WriteAccessResponse(ctx, w, ar, resp)
}

// clientLocked answers when the client guard kept the request's secret
// from being compared (protect.Gate): 429 when the client is locked, the
// storage error (503) when the attempt could not be counted. It says
// whether it answered.
func (p *Provider) clientLocked(ctx context.Context, w http.ResponseWriter, r *http.Request) bool {
	if err := protect.GateError(ctx); err != nil {
		p.writeAccessError(w, r, nil, fmt.Errorf("oauth: client guard: %w", err))
		return true
	}
	wait, refused := protect.Refused(ctx)
	if !refused {
		return false
	}
	retryAfter(w, wait)
	p.writeJSONStatus(w, http.StatusTooManyRequests, "slow_down", "Too many failed client authentications; retry later.")
	return true
}

// clientFailed counts a failed client authentication that compared no
// secret (Gate did not run: private_key_jwt) against the claimed client; a
// failed secret comparison was already counted before it ran. Past the
// limit it answers 429 like a refused secret guess and says so. A store
// failure here only loses one count, so it is logged, not answered.
func (p *Provider) clientFailed(ctx context.Context, w http.ResponseWriter, guard ClientGuard, claimed string) bool {
	if guard == nil || protect.Counted(ctx) {
		return false
	}
	wait, over, err := guard.CountFailure(ctx, claimed)
	if err != nil {
		p.cfg.Logger.WithError(err).Warn("oauth: counting a failed client authentication")
		return false
	}
	if !over {
		return false
	}
	retryAfter(w, wait)
	p.writeJSONStatus(w, http.StatusTooManyRequests, "slow_down", "Too many failed client authentications; retry later.")
	return true
}

// readGrant reads ahead, for a request redeeming an authorization code or
// a refresh token, what fosite and checkResourceOwner will read
// (storage.FlowStore.ReadGrant). Other requests, and codes or tokens that
// are not well-formed (fosite refuses them), read nothing.
func (p *Provider) readGrant(ctx context.Context, form url.Values) (context.Context, storage.GrantOwner, error) {
	var (
		kind      storage.GrantKind
		sig, code string
	)
	switch form.Get("grant_type") {
	case "authorization_code":
		code = form.Get("code")
		kind, sig = storage.GrantCode, p.access.AuthorizeCodeSignature(ctx, code)
	case "refresh_token":
		kind, sig = storage.GrantRefresh, p.access.RefreshTokenSignature(ctx, form.Get("refresh_token"))
	}
	if sig == "" {
		return ctx, storage.GrantOwner{}, nil
	}
	// With the code, the store may consume the code's OpenID Connect
	// request together with the code, in the exchange's transaction.
	ctx, owner, err := p.cfg.Store.ReadGrant(ctx, kind, sig, code)
	if err != nil {
		return ctx, owner, fmt.Errorf("oauth: read grant: %w", err)
	}
	return ctx, owner, nil
}

// checkResourceOwner refuses a grant whose user is gone or disabled. The
// owner readGrant found answers for its own subject; any other subject is
// looked up.
func (p *Provider) checkResourceOwner(ctx context.Context, subject string, owner storage.GrantOwner) error {
	if owner.Subject != "" && owner.Subject == subject {
		if !owner.Active {
			return fosite.ErrInvalidGrant.WithHint("The resource owner is no longer active.")
		}
		return nil
	}
	u, err := p.cfg.Store.UserByID(ctx, subject)
	switch {
	case errors.Is(err, storage.ErrNotFound) || (err == nil && u.Disabled):
		return fosite.ErrInvalidGrant.WithHint("The resource owner is no longer active.")
	case err != nil:
		return fmt.Errorf("oauth: load user: %w", err)
	}
	return nil
}

// revokeFamily revokes every token of a grant family after its code was
// replayed. It runs after the request's own transaction ended, and to the
// end even if the replaying client hangs up; a failure is logged (the
// replay is refused either way).
func (p *Provider) revokeFamily(r *http.Request, requestID string) {
	if requestID == "" {
		return
	}
	ctx := context.WithoutCancel(r.Context())
	if err := p.cfg.Store.RevokeAccessToken(ctx, requestID); err != nil {
		p.logError(r, "code replay: revoking access tokens failed", err)
	}
	if err := p.cfg.Store.RevokeRefreshToken(ctx, requestID); err != nil {
		p.logError(r, "code replay: revoking refresh tokens failed", err)
	}
}

// writeAccessError writes a token endpoint error (RFC 6749 §5.2) with
// fosite's writer, adding WWW-Authenticate for failed HTTP Basic client
// authentication, which RFC 6749 §5.2 requires and fosite omits.
func (p *Provider) writeAccessError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	if unavailable(err) {
		p.writeJSONError(w, r, err)
		return
	}
	err = oauthError(err)
	p.logError(r, "token request failed", err)
	rfc := fosite.ErrorToRFC6749Error(err)
	p.countError(rfc.ErrorField)
	if rfc.CodeField == http.StatusUnauthorized && rfc.ErrorField == fosite.ErrInvalidClient.ErrorField {
		w.Header().Set("WWW-Authenticate", `Basic realm="bulwark"`)
	}
	p.oauth.WriteAccessError(r.Context(), w, ar, err)
}

// handleIntrospect is the introspection endpoint (RFC 7662). Callers must
// authenticate as a client with HTTP Basic; a bearer token is not accepted
// as caller authentication. Anything that is not an active token answers
// exactly {"active":false}.
func (p *Provider) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseBody(w, r); err != nil {
		p.writeJSONError(w, r, fosite.ErrInvalidRequest.WithHint("The request body could not be parsed."))
		return
	}
	// fosite authenticates the caller with an access_token parameter (RFC
	// 6750 §2.2/§2.3) in preference to HTTP Basic, even when Basic is
	// present: any token holder could then introspect every token with
	// made-up Basic credentials. Callers authenticate only as described
	// above, so the parameter is refused wherever it appears.
	if _, ok := r.Form["access_token"]; ok {
		p.writeJSONError(w, r, fosite.ErrInvalidRequest.WithHint("The access_token parameter is not accepted; authenticate with HTTP Basic or an API key."))
		return
	}
	token := r.PostForm.Get("token")
	if p.cfg.APIKeys != nil {
		// A resource server may authenticate with an API key that holds
		// the introspect scope.
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && isAPIKey(bearer) {
			principal, _, err := p.cfg.APIKeys.Verify(ctx, bearer)
			switch {
			case err != nil && apiKeyFailure(err):
				w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark", error="invalid_token"`)
				p.writeJSONStatus(w, http.StatusUnauthorized, "invalid_token", "The API key is not valid.")
				return
			case err != nil:
				p.writeJSONError(w, r, err)
				return
			case !principal.Has(apikeys.ScopeIntrospect):
				p.writeJSONStatus(w, http.StatusForbidden, "insufficient_scope", "The API key lacks the introspect scope.")
				return
			}
			reqinfo.From(ctx).SetClientID(principal.Subject())
			if isAPIKey(token) {
				p.introspectAPIKey(w, r, token)
				return
			}
			use, ar, err := p.oauth.IntrospectToken(ctx, token, tokenUseHint(r), storage.NewSession(""))
			if err != nil {
				if unavailable(err) {
					p.writeJSONError(w, r, err)
					return
				}
				p.observe(r, protect.SignalInvalidToken, "")
				reqinfo.From(ctx).MarkFailure()
				writeIntrospection(w, map[string]any{"active": false})
				return
			}
			p.writeActive(w, use, ar)
			return
		}
	}
	if _, _, ok := r.BasicAuth(); !ok {
		p.writeJSONError(w, r, fosite.ErrInvalidClient.WithHint("Client authentication with HTTP Basic (or an API key with the introspect scope) is required."))
		return
	}
	if p.cfg.APIKeys != nil && isAPIKey(token) {
		f, ok := p.oauth.(*fosite.Fosite)
		if !ok {
			p.writeJSONError(w, r, fosite.ErrServerError.WithDebug("provider is not *fosite.Fosite"))
			return
		}
		client, err := f.AuthenticateClient(ctx, r, r.PostForm)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="bulwark"`)
			p.writeJSONError(w, r, fosite.ErrInvalidClient.WithWrap(err))
			return
		}
		reqinfo.From(ctx).SetClientID(client.GetID())
		p.introspectAPIKey(w, r, token)
		return
	}
	ir, err := p.oauth.NewIntrospectionRequest(ctx, r, storage.NewSession(""))
	if err != nil {
		if unavailable(err) {
			p.writeJSONError(w, r, err)
			return
		}
		// Only the outermost error says what failed: an inactive token
		// wraps the request_unauthorized of the token lookup, which must
		// not be mistaken for failed caller authentication.
		switch fosite.ErrorToRFC6749Error(err).ErrorField {
		case fosite.ErrRequestUnauthorized.ErrorField:
			p.writeJSONError(w, r, fosite.ErrInvalidClient.WithWrap(err))
		case fosite.ErrInvalidRequest.ErrorField:
			p.writeJSONError(w, r, err)
		default:
			p.logError(r, "introspection: inactive token", err)
			p.observe(r, protect.SignalInvalidToken, reqinfo.ClaimedClientID(ctx))
			reqinfo.From(ctx).MarkFailure()
			writeIntrospection(w, map[string]any{"active": false})
		}
		return
	}
	// fosite authenticated the Basic user, which the pipeline read.
	reqinfo.From(ctx).SetClientID(reqinfo.ClaimedClientID(ctx))
	if !ir.IsActive() {
		writeIntrospection(w, map[string]any{"active": false})
		return
	}
	if live, err := p.exchangedTokenLive(ctx, ir.GetAccessRequester()); err != nil || !live {
		if err != nil {
			p.writeJSONError(w, r, err)
			return
		}
		writeIntrospection(w, map[string]any{"active": false})
		return
	}
	p.writeActive(w, ir.GetTokenUse(), ir.GetAccessRequester())
}

// tokenUseHint maps token_type_hint to fosite's token use.
func tokenUseHint(r *http.Request) fosite.TokenUse {
	if r.PostForm.Get("token_type_hint") == "refresh_token" {
		return fosite.RefreshToken
	}
	return fosite.AccessToken
}

// writeActive writes the RFC 7662 answer for an active token.
func (p *Provider) writeActive(w http.ResponseWriter, use fosite.TokenUse, ar fosite.AccessRequester) {
	sess := ar.GetSession()
	out := map[string]any{
		"active":    true,
		"client_id": ar.GetClient().GetID(),
		"iss":       p.cfg.Issuer,
	}
	// token_type: "Bearer" for access tokens (RFC 7662 §2.2 uses the
	// RFC 6749 §7.1 token type), "refresh_token" for refresh tokens, which
	// have no RFC 6749 token type.
	exp := sess.GetExpiresAt(fosite.AccessToken)
	if use == fosite.RefreshToken {
		out["token_type"] = "refresh_token"
		exp = sess.GetExpiresAt(fosite.RefreshToken)
	} else {
		out["token_type"] = "Bearer"
	}
	// A DPoP-bound token names its key (RFC 9449 §6.2); a refresh token
	// is bound only when issued to a public client (see bindProof).
	if s, ok := sess.(*storage.Session); ok && s.DPoPJKT != "" && (use != fosite.RefreshToken || ar.GetClient().IsPublic()) {
		out["cnf"] = map[string]string{"jkt": s.DPoPJKT}
		if use != fosite.RefreshToken {
			out["token_type"] = schemeDPoP
		}
	}
	if !exp.IsZero() {
		out["exp"] = exp.Unix()
	}
	if t := ar.GetRequestedAt(); !t.IsZero() {
		out["iat"] = t.Unix()
	}
	if s := ar.GetGrantedScopes(); len(s) > 0 {
		out["scope"] = strings.Join(s, " ")
	}
	if sub := sess.GetSubject(); sub != "" {
		out["sub"] = sub
	}
	if aud := ar.GetGrantedAudience(); len(aud) > 0 {
		out["aud"] = aud
	}
	if s, ok := sess.(*storage.Session); ok && s.APIKeyID != "" {
		out["api_key_id"] = s.APIKeyID
	}
	writeIntrospection(w, out)
}

func writeIntrospection(w http.ResponseWriter, body map[string]any) {
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(body)
}

// handleRevoke is the revocation endpoint (RFC 7009). Revoking a refresh
// token revokes its whole family; unknown tokens answer 200.
func (p *Provider) handleRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	err := p.oauth.NewRevocationRequest(ctx, r)
	if err != nil {
		// fosite reports a failed token lookup as temporarily_unavailable
		// (dropping the cause) and its writer then answers 200: the client
		// would believe a token revoked that is still active.
		if unavailable(err) || errors.Is(err, fosite.ErrTemporarilyUnavailable) {
			p.writeJSONError(w, r, err)
			return
		}
		p.logError(r, "revocation failed", err)
		rfc := fosite.ErrorToRFC6749Error(err)
		if rfc.CodeField == http.StatusUnauthorized && rfc.ErrorField == fosite.ErrInvalidClient.ErrorField {
			w.Header().Set("WWW-Authenticate", `Basic realm="bulwark"`)
		}
	} else {
		p.audit(ctx, storage.AuditEvent{Event: EventTokenRevoked, ClientID: reqinfo.From(ctx).ClientID(), Outcome: OutcomeSuccess,
			Details: map[string]string{"token_type_hint": r.PostForm.Get("token_type_hint")}})
	}
	p.oauth.WriteRevocationResponse(ctx, w, err)
}

// handlePAR is the pushed authorization request endpoint (RFC 9126).
func (p *Provider) handlePAR(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseBody(w, r); err != nil {
		p.writeJSONError(w, r, fosite.ErrInvalidRequest.WithHint("The request body could not be parsed.").WithWrap(err))
		return
	}
	if r.PostForm.Get("request") != "" {
		p.writeJSONError(w, r, fosite.ErrRequestNotSupported.WithHint("Request objects are not supported."))
		return
	}
	// An explicit response_mode=query is the default; see authorize.
	if r.Form.Get("response_mode") == string(fosite.ResponseModeQuery) {
		r.Form.Del("response_mode")
	}
	// fosite authenticates the client from HTTP Basic but builds the
	// request for the client_id in the body: the two must be the same
	// client, or one client could push requests in another's name.
	if user, _, ok := r.BasicAuth(); ok {
		id, err := url.QueryUnescape(user)
		if err != nil || (r.Form.Get("client_id") != "" && r.Form.Get("client_id") != id) {
			p.writeJSONError(w, r, fosite.ErrInvalidRequest.WithHint("The 'client_id' parameter must name the authenticated client."))
			return
		}
	}
	ar, err := p.oauth.NewPushedAuthorizeRequest(ctx, r)
	if err == nil {
		// Refused here already, not only when the pushed request is used.
		if c, ok := ar.GetClient().(*storage.Client); ok {
			err = checkPKCE(c, ar)
		}
	}
	if err != nil {
		p.writePARError(w, r, ar, err)
		return
	}
	// fosite grants RFC 8252 loopback port flexibility to every client;
	// Bulwark grants it to native clients only. Checked on the client fosite
	// resolved, whichever way it authenticated.
	if c, ok := ar.GetClient().(*storage.Client); !ok || !redirectAllowed(c, r.Form.Get("redirect_uri")) {
		p.writeJSONError(w, r, fosite.ErrInvalidRequest.WithHint("The 'redirect_uri' parameter does not match any of the OAuth 2.0 Client's pre-registered redirect urls."))
		return
	}
	resp, err := p.oauth.NewPushedAuthorizeResponse(ctx, ar, storage.NewSession(""))
	if err != nil {
		p.writePARError(w, r, ar, err)
		return
	}
	p.oauth.WritePushedAuthorizeResponse(ctx, w, ar, resp)
}

func (p *Provider) writePARError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	if unavailable(err) {
		p.writeJSONError(w, r, err)
		return
	}
	err = oauthError(err)
	p.logError(r, "pushed authorization request failed", err)
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.CodeField == http.StatusUnauthorized && rfc.ErrorField == fosite.ErrInvalidClient.ErrorField {
		w.Header().Set("WWW-Authenticate", `Basic realm="bulwark"`)
	}
	p.oauth.WritePushedAuthorizeError(r.Context(), w, ar, err)
}

// handleUserinfo is the OpenID Connect UserInfo endpoint (Core §5.3). It
// is a resource endpoint for DPoP (RFC 9449 §7): a DPoP-bound token is
// accepted only under the DPoP scheme with a proof by its key.
func (p *Provider) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	token, proof, err := p.resourceCredential(ctx, r, pathUserinfo)
	if err != nil {
		p.writeResourceProofError(w, r, err)
		return
	}
	dpopScheme := proof != nil
	if token == "" {
		p.resourceChallenge(w, http.StatusUnauthorized, false, "", "", "")
		return
	}
	sess := storage.NewSession("")
	use, ar, err := p.oauth.IntrospectToken(ctx, token, fosite.AccessToken, sess)
	if err != nil && unavailable(err) {
		p.writeJSONError(w, r, err)
		return
	}
	if err != nil || use != fosite.AccessToken {
		p.resourceChallenge(w, http.StatusUnauthorized, dpopScheme, "invalid_token", "The access token is invalid.", "")
		return
	}
	if code, desc, ok := checkBinding(sess.DPoPJKT, proof); !ok {
		p.resourceChallenge(w, http.StatusUnauthorized, true, code, desc, "")
		return
	}
	// The token's client: its registered origins decide CORS.
	reqinfo.From(ctx).SetClientID(ar.GetClient().GetID())
	granted := ar.GetGrantedScopes()
	if !granted.Has("openid") {
		p.resourceChallenge(w, http.StatusForbidden, dpopScheme, "insufficient_scope", "The access token lacks the openid scope.", "openid")
		return
	}
	user, err := p.cfg.Store.UserByID(ctx, sess.GetSubject())
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		p.writeJSONError(w, r, err)
		return
	}
	if err != nil || user.Disabled {
		p.resourceChallenge(w, http.StatusUnauthorized, dpopScheme, "invalid_token", "The access token is invalid.", "")
		return
	}
	out := map[string]any{"sub": user.ID}
	if granted.Has("profile") {
		out["preferred_username"] = user.Username
	}
	if granted.Has("email") && user.Email != "" {
		out["email"] = user.Email
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// isInvalidClient reports a failed client authentication.
func isInvalidClient(err error) bool {
	return fosite.ErrorToRFC6749Error(err).ErrorField == fosite.ErrInvalidClient.ErrorField
}

// writeJSONStatus writes an OAuth-style error body with the given status.
func (p *Provider) writeJSONStatus(w http.ResponseWriter, status int, code, description string) {
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

// checkExchangeClientAuth: the token exchange grant may be used without
// client authentication (the API key is the credential), so fosite lets a
// failed client authentication pass for it. Credentials that are presented
// must still be right: a wrong secret is invalid_client, not ignored.
func (p *Provider) checkExchangeClientAuth(ctx context.Context, r *http.Request) error {
	if r.PostForm.Get("grant_type") != GrantTypeTokenExchange {
		return nil
	}
	_, _, basic := r.BasicAuth()
	if !basic && r.PostForm.Get("client_secret") == "" && r.PostForm.Get("client_assertion") == "" {
		return nil
	}
	f, ok := p.oauth.(*fosite.Fosite)
	if !ok {
		return fosite.ErrServerError.WithDebug("provider is not *fosite.Fosite")
	}
	if _, err := f.AuthenticateClient(ctx, r, r.PostForm); err != nil {
		return fosite.ErrInvalidClient.WithWrap(err).WithHint("Client authentication failed.")
	}
	return nil
}
