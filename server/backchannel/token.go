package backchannel

import (
	"context"
	"fmt"
	"time"

	"github.com/ory/fosite/token/jwt"

	"github.com/bulwark-auth/bulwark/storage"
)

// EventLogout is the events member that makes a JWT a logout token
// (OpenID Connect Back-Channel Logout 1.0 §2.4).
const EventLogout = "http://schemas.openid.net/event/backchannel-logout"

// TokenType is the logout token's typ header (§2.4, as recommended for
// explicit typing by RFC 8725 §3.11).
const TokenType = "logout+jwt" // #nosec G101 -- a JWT type name, not a credential

// logoutClaims are the claims of the logout token for l (§2.4): iss, aud
// (the client), iat, exp, jti, events, sub, and sid when the row has one.
// A logout token never carries a nonce (§2.4), so a relying party cannot
// mistake it for an ID token.
func logoutClaims(issuer string, l *storage.BackchannelLogout, now time.Time, lifetime time.Duration) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss":    issuer,
		"aud":    l.ClientID,
		"iat":    now.Unix(),
		"exp":    now.Add(lifetime).Unix(),
		"jti":    l.JTI,
		"events": map[string]any{EventLogout: map[string]any{}},
		"sub":    l.Subject,
	}
	if l.SID != "" {
		c["sid"] = l.SID
	}
	return c
}

// sign signs the logout token for l with signer (the key ring's ID token
// signer: the relying party verifies it with the keys it already uses for
// ID tokens).
func sign(ctx context.Context, signer jwt.Signer, issuer string, l *storage.BackchannelLogout, now time.Time, lifetime time.Duration) (string, error) {
	header := &jwt.Headers{Extra: map[string]any{"typ": TokenType}}
	tok, _, err := signer.Generate(ctx, logoutClaims(issuer, l, now, lifetime), header)
	if err != nil {
		return "", fmt.Errorf("backchannel: sign logout token: %w", err)
	}
	return tok, nil
}
