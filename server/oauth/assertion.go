package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	josejwt "github.com/go-jose/go-jose/v3/jwt"
	"github.com/ory/fosite"
)

// DefaultMaxAssertionLifetime caps how long a private_key_jwt client
// assertion may be valid. RFC 7523 §3 lets the server refuse assertions
// whose expiry is unreasonably far in the future; a short cap also bounds
// how long the replay guard must remember each jti.
const DefaultMaxAssertionLifetime = 5 * time.Minute

// clientAssertionType is the only client_assertion_type (RFC 7523 §2.2).
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// authenticateClient is fosite's client authentication strategy: fosite's
// own, with the rules RFC 7523 and RFC 6749 §5.2 ask of client assertions
// added around it. Every failure of an assertion is 401 invalid_client: an
// expired one (fosite passes the JWT library's error on, which its writer
// calls "error unrecognizable" with status 500), a replayed jti (fosite
// answers 400 jti_known), one signed by a key the client's set lacks
// (fosite answers 400 invalid_request; RFC 7523 §3.2 says invalid_client)
// and one valid for longer than the configured cap.
func (p *Provider) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	f, ok := p.oauth.(*fosite.Fosite)
	if !ok {
		return nil, fosite.ErrServerError.WithDebug("provider is not *fosite.Fosite")
	}
	if form.Get("client_assertion_type") != clientAssertionType || form.Get("client_assertion") == "" {
		return f.DefaultClientAuthenticationStrategy(ctx, r, form)
	}
	if err := p.checkAssertionLifetime(form.Get("client_assertion")); err != nil {
		return nil, err
	}
	c, err := f.DefaultClientAuthenticationStrategy(ctx, r, form)
	if err == nil || unavailable(err) {
		return c, err
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	switch {
	case errors.Is(err, fosite.ErrJTIKnown) || rfc.ErrorField == fosite.ErrJTIKnown.ErrorField:
		return nil, fosite.ErrInvalidClient.WithHint("The client assertion was already used.").WithWrap(err)
	case rfc.CodeField == http.StatusInternalServerError, rfc.ErrorField == fosite.ErrInvalidRequest.ErrorField:
		return nil, fosite.ErrInvalidClient.WithHint("The client assertion is not valid.").WithWrap(err)
	}
	return nil, err
}

// checkAssertionLifetime refuses an assertion valid for longer than
// Config.MaxAssertionLifetime: exp - iat, or exp - now without iat (RFC 7523
// §3, items 4 and 6). The claims are read before the signature is checked;
// that only ever refuses. Assertions that cannot be parsed, or carry no exp,
// are left to fosite, which refuses them.
func (p *Provider) checkAssertionLifetime(assertion string) error {
	tok, err := josejwt.ParseSigned(assertion)
	if err != nil {
		return nil
	}
	var claims josejwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil || claims.Expiry == nil {
		return nil
	}
	// An iat in the future must not shorten the lifetime that counts.
	from := p.cfg.Now()
	if claims.IssuedAt != nil && claims.IssuedAt.Time().Before(from) {
		from = claims.IssuedAt.Time()
	}
	if claims.Expiry.Time().Sub(from) > p.cfg.MaxAssertionLifetime {
		return fosite.ErrInvalidClient.WithHintf("The client assertion must not be valid for longer than %s (RFC 7523 §3).", p.cfg.MaxAssertionLifetime)
	}
	return nil
}
