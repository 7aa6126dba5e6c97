package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	fositestorage "github.com/ory/fosite/storage"

	"github.com/bulwark-auth/bulwark/server/reqinfo"
	"github.com/bulwark-auth/bulwark/storage"
)

// Token endpoint errors of RFC 8628 §3.5. fosite v0.49.0 has none of
// them; all are 400 like every RFC 6749 §5.2 error (fosite's own
// access_denied is a 403).
var (
	errAuthorizationPending = &fosite.RFC6749Error{ErrorField: "authorization_pending", CodeField: http.StatusBadRequest,
		DescriptionField: "The user has not yet approved or denied the request."}
	errSlowDown = &fosite.RFC6749Error{ErrorField: "slow_down", CodeField: http.StatusBadRequest,
		DescriptionField: "The device polled too fast; wait at least 5 seconds longer between requests."}
	errDeviceAccessDenied = &fosite.RFC6749Error{ErrorField: "access_denied", CodeField: http.StatusBadRequest,
		DescriptionField: "The user denied the request."}
	errExpiredToken = &fosite.RFC6749Error{ErrorField: "expired_token", CodeField: http.StatusBadRequest,
		DescriptionField: "The device code has expired; start a new device authorization."}
)

// deviceGrant is the device_code grant at the token endpoint (RFC 8628
// §3.4–3.5), a fosite TokenEndpointHandler like the token exchange. One
// UPDATE (storage.DeviceStore.PollDeviceAuthorization) decides every
// poll; the one poll that consumes an approval mints the tokens with
// fosite's own helpers, the way the authorization code grant does: an
// access token, a refresh token when the client may refresh and
// offline_access was granted, an ID token when openid was granted.
type deviceGrant struct {
	p        *Provider
	access   *oauth2.HandleHelper
	refresh  oauth2.RefreshTokenStrategy
	store    oauth2.RefreshTokenStorage
	idTokens *openid.IDTokenHandleHelper
}

var _ fosite.TokenEndpointHandler = (*deviceGrant)(nil)

// CanSkipClientAuth implements fosite.TokenEndpointHandler: the client
// authenticates (public clients with "none").
func (h *deviceGrant) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

// CanHandleTokenEndpointRequest implements fosite.TokenEndpointHandler.
func (h *deviceGrant) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(GrantTypeDeviceCode)
}

// HandleTokenEndpointRequest polls the device authorization (RFC 8628
// §3.4) and, when this poll consumed the approval, loads the grant.
func (h *deviceGrant) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	client, ok := r.GetClient().(*storage.Client)
	if !ok {
		return fosite.ErrServerError.WithDebug("unexpected client type")
	}
	if !client.GetGrantTypes().Has(GrantTypeDeviceCode) {
		return fosite.ErrUnauthorizedClient.WithHint("The client is not allowed to use the device authorization grant.")
	}
	code := r.GetRequestForm().Get("device_code")
	if code == "" {
		return fosite.ErrInvalidRequest.WithHint("The 'device_code' parameter is missing.")
	}
	d, err := h.p.cfg.Store.PollDeviceAuthorization(ctx, storage.HashKey(code), client.ID, h.p.cfg.Now().UTC().Truncate(time.Microsecond))
	if errors.Is(err, storage.ErrNotFound) {
		return fosite.ErrInvalidGrant.WithHint("The device code is unknown, or was issued to another client.")
	}
	if err != nil {
		return fmt.Errorf("oauth: poll device authorization: %w", err)
	}
	switch d.LastOutcome {
	case storage.PollPending:
		reqinfo.From(ctx).MarkExpected()
		return errAuthorizationPending
	case storage.PollSlowDown:
		return errSlowDown.WithHintf("Poll at most every %d seconds.", int64(d.Interval/time.Second))
	case storage.PollDenied:
		reqinfo.From(ctx).MarkExpected()
		return errDeviceAccessDenied
	case storage.PollExpired:
		reqinfo.From(ctx).MarkExpected()
		return errExpiredToken
	case storage.PollIssued:
	default:
		return fosite.ErrInvalidGrant.WithHint("The device code has already been used.")
	}

	stored, err := storage.DecodeRequest(&storage.TokenRecord{Data: d.Request}, client, r.GetSession())
	if err != nil {
		return fmt.Errorf("oauth: decode device grant: %w", err)
	}
	ar, ok := r.(*fosite.AccessRequest)
	if !ok {
		return fosite.ErrServerError.WithDebug("unexpected access request type")
	}
	ar.SetID(stored.GetID())
	ar.RequestedAt = stored.GetRequestedAt()
	ar.SetRequestedScopes(stored.GetRequestedScopes())
	for _, s := range stored.GetGrantedScopes() {
		ar.GrantScope(s)
	}
	for _, a := range stored.GetGrantedAudience() {
		ar.GrantAudience(a)
	}
	// The user approved minutes ago; whether they (and the client) are
	// still active is decided where the tokens are minted, under the
	// locks containment waits for (PopulateTokenEndpointResponse).
	now := time.Now().UTC()
	sess := ar.GetSession()
	sess.SetExpiresAt(fosite.AccessToken, now.Add(h.lifespan(ctx, client, fosite.AccessToken)).Round(time.Second))
	sess.SetExpiresAt(fosite.RefreshToken, now.Add(h.lifespan(ctx, client, fosite.RefreshToken)).Round(time.Second))
	return nil
}

// lifespan is the client's lifespan of a token type, else the server's.
func (h *deviceGrant) lifespan(ctx context.Context, c fosite.Client, tt fosite.TokenType) time.Duration {
	fallback := h.p.fc.GetAccessTokenLifespan(ctx)
	switch tt {
	case fosite.RefreshToken:
		fallback = h.p.fc.GetRefreshTokenLifespan(ctx)
	case fosite.IDToken:
		fallback = h.p.fc.GetIDTokenLifespan(ctx)
	}
	return fosite.GetEffectiveLifespan(c, fosite.GrantType(GrantTypeDeviceCode), tt, fallback)
}

// PopulateTokenEndpointResponse mints the tokens of the consumed approval
// (RFC 8628 §3.5, RFC 6749 §5.1) in one storage transaction that first
// takes the user's and the client's mint locks (storage.MintLocker), as a
// code exchange or refresh holds them: a disable of either, with its
// revocation, commits before the mint and the mint is refused, or waits
// for the mint to commit and then revokes its tokens.
func (h *deviceGrant) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) (err error) {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	st := h.p.cfg.Store
	ctx, err = fositestorage.MaybeBeginTx(ctx, st)
	if err != nil {
		return fmt.Errorf("oauth: begin device grant mint: %w", err)
	}
	defer func() {
		if err == nil {
			return
		}
		if rerr := fositestorage.MaybeRollbackTx(ctx, st); rerr != nil {
			h.p.log.WithError(rerr).Warn("oauth: rolling back a device grant mint failed")
		}
	}()
	err = st.LockMint(ctx, r.GetSession().GetSubject(), r.GetClient().GetID())
	if errors.Is(err, storage.ErrOwnerDisabled) {
		return fosite.ErrInvalidGrant.WithHint("The user or the client of this grant is no longer active.")
	}
	if err != nil {
		return fmt.Errorf("oauth: device grant mint: %w", err)
	}
	if err = h.mint(ctx, r, resp); err != nil {
		return err
	}
	return fositestorage.MaybeCommitTx(ctx, st)
}

// mint issues the access token, a refresh token when the client may
// refresh and offline_access was granted, and an ID token when openid was.
func (h *deviceGrant) mint(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	accessSig, err := h.access.IssueAccessToken(ctx, h.lifespan(ctx, r.GetClient(), fosite.AccessToken), r, resp)
	if err != nil {
		return err
	}
	granted := r.GetGrantedScopes()
	// The authorization code grant's rule (fosite's canIssueRefreshToken):
	// one of the refresh scopes granted, and the refresh_token grant.
	if granted.HasOneOf(h.p.fc.GetRefreshTokenScopes(ctx)...) && r.GetClient().GetGrantTypes().Has("refresh_token") {
		token, sig, err := h.refresh.GenerateRefreshToken(ctx, r)
		if err != nil {
			return err
		}
		if err := h.store.CreateRefreshTokenSession(ctx, sig, accessSig, r.Sanitize(nil)); err != nil {
			return err
		}
		resp.SetExtra("refresh_token", token)
	}
	if granted.Has("openid") {
		if sess, ok := r.GetSession().(openid.Session); ok {
			sess.IDTokenClaims().AccessTokenHash = h.idTokens.GetAccessTokenHash(ctx, r, resp)
		}
		if err := h.idTokens.IssueExplicitIDToken(ctx, h.lifespan(ctx, r.GetClient(), fosite.IDToken), r, resp); err != nil {
			return err
		}
	}
	return nil
}
