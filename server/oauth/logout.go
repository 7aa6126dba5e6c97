package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"

	"github.com/bulwark-auth/bulwark/storage"
)

// maxLogoutParam bounds each logout parameter; an ID token of ours is far
// smaller, and nothing longer is worth parsing.
const maxLogoutParam = 8192

// logoutRequest is a validated RP-initiated logout request (OpenID Connect
// RP-Initiated Logout 1.0 §2). Its fields are the raw parameters the client
// sent; they travel through the confirmation form as hidden fields and are
// validated again when the form comes back, so nothing in the form is
// trusted on its own.
type logoutRequest struct {
	IDTokenHint           string
	ClientID              string
	PostLogoutRedirectURI string
	State                 string

	// client is the resolved client (from client_id or the hint's
	// audience); nil when the request names none.
	client fosite.Client
}

// clientName is what the confirmation page calls the client.
func (l *logoutRequest) clientName() string {
	if l == nil || l.client == nil {
		return ""
	}
	if c, ok := l.client.(*storage.Client); ok && c.Name != "" {
		return c.Name
	}
	return l.client.GetID()
}

// redirectTarget is the validated post-logout redirect URI with state
// appended (§3), or "" when the request asked for none.
func (l *logoutRequest) redirectTarget() string {
	if l == nil || l.PostLogoutRedirectURI == "" {
		return ""
	}
	if l.State == "" {
		return l.PostLogoutRedirectURI
	}
	u, err := url.Parse(l.PostLogoutRedirectURI)
	if err != nil {
		// Unreachable: parseLogoutRequest only accepts a registered URI,
		// and registered URIs are parsed when the client is validated.
		return ""
	}
	// Appended rather than re-encoded, so the registered query keeps its
	// exact form.
	state := "state=" + url.QueryEscape(l.State)
	if u.RawQuery == "" {
		u.RawQuery = state
	} else {
		u.RawQuery += "&" + state
	}
	return u.String()
}

// invalidLogout is the error for every refused logout request: the page
// shows its fixed hint, never the offending value.
func invalidLogout(hint string) *fosite.RFC6749Error {
	return fosite.ErrInvalidRequest.WithHint(hint)
}

// parseLogoutRequest validates the logout parameters of OpenID Connect
// RP-Initiated Logout 1.0 §2 from v (the query of GET /logout, or the
// hidden fields of the confirmation form). ui_locales is accepted and
// ignored: the pages exist in one language.
//
// post_logout_redirect_uri must exactly match one of the client's
// registered redirect_uris. Bulwark keeps no separate list of post-logout
// redirect URIs (Keycloak's default "+" means the same thing), and exact
// string comparison, as for the authorization endpoint, keeps /logout from
// becoming an open redirector.
func (p *Provider) parseLogoutRequest(ctx context.Context, v url.Values) (*logoutRequest, error) {
	l := &logoutRequest{
		IDTokenHint:           v.Get("id_token_hint"),
		ClientID:              v.Get("client_id"),
		PostLogoutRedirectURI: v.Get("post_logout_redirect_uri"),
		State:                 v.Get("state"),
	}
	for _, s := range []string{l.IDTokenHint, l.ClientID, l.PostLogoutRedirectURI, l.State} {
		if len(s) > maxLogoutParam {
			return nil, invalidLogout("A sign-out parameter is too long.")
		}
	}

	clientID := l.ClientID
	if l.IDTokenHint != "" {
		aud, azp, err := p.verifyIDTokenHint(ctx, l.IDTokenHint)
		if err != nil {
			return nil, err
		}
		switch {
		case clientID != "":
			// §2: when both are given, client_id must be an audience of
			// the hint.
			if !slices.Contains(aud, clientID) {
				return nil, invalidLogout("The client_id is not an audience of the id_token_hint.")
			}
		case azp != "" && slices.Contains(aud, azp):
			clientID = azp
		case len(aud) == 1:
			clientID = aud[0]
		}
	}

	if clientID != "" {
		c, err := p.cfg.Store.GetClient(ctx, clientID)
		if errors.Is(err, storage.ErrNotFound) {
			// Unknown and disabled clients alike.
			return nil, invalidLogout("The client is unknown or disabled.")
		} else if err != nil {
			return nil, fmt.Errorf("oauth: logout: load client: %w", err)
		}
		l.client = c
	}

	if l.PostLogoutRedirectURI != "" {
		if l.client == nil {
			return nil, invalidLogout("A post_logout_redirect_uri requires a client_id or an id_token_hint.")
		}
		if !slices.Contains(l.client.GetRedirectURIs(), l.PostLogoutRedirectURI) {
			return nil, invalidLogout("The post_logout_redirect_uri is not registered for the client.")
		}
	}
	return l, nil
}

// verifyIDTokenHint checks that raw is an ID token this server issued and
// returns its audience and authorized party.
//
// The signature is verified with the ID token signer (which picks the key
// by kid), but an expired token is accepted: §2 says an ID token that is
// no longer valid because it expired is still a fine hint, and logging out
// long after the token lapsed is the common case. The signer's Decode runs
// fosite's jwt.ParseWithClaims, which checks the time claims only after the
// signature verified; so a *jwt.ValidationError carrying nothing but
// ValidationErrorExpired means "authentic, merely expired". Any other bit
// (malformed, unverifiable, bad signature, not yet valid) is refused.
func (p *Provider) verifyIDTokenHint(ctx context.Context, raw string) (aud []string, azp string, err error) {
	bad := invalidLogout("The id_token_hint is not a valid ID token issued by this server.")
	tok, err := p.cfg.IDTokenSigner.Decode(ctx, raw)
	if err != nil {
		var ve *jwt.ValidationError
		if !errors.As(err, &ve) || ve.Errors != jwt.ValidationErrorExpired {
			// The debug text (logged, never shown) names the failed check;
			// it never contains the token.
			debug := "id_token_hint could not be verified"
			if ve != nil {
				debug = ve.Error()
			}
			return nil, "", bad.WithDebug(debug)
		}
	}
	if tok == nil || tok.Claims == nil {
		return nil, "", bad
	}
	// An access token is signed by the same key ring; its typ tells it apart.
	if typ, _ := tok.Header["typ"].(string); strings.EqualFold(typ, "at+jwt") {
		return nil, "", bad
	}
	if iss, _ := tok.Claims["iss"].(string); iss != p.cfg.Issuer {
		return nil, "", bad
	}
	switch a := tok.Claims["aud"].(type) {
	case string:
		aud = []string{a}
	case []interface{}:
		for _, v := range a {
			if s, ok := v.(string); ok {
				aud = append(aud, s)
			}
		}
	}
	if len(aud) == 0 {
		return nil, "", bad
	}
	azp, _ = tok.Claims["azp"].(string)
	return aud, azp, nil
}
