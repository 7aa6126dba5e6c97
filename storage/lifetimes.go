package storage

import (
	"time"

	"github.com/ory/fosite"
)

// Fallback row lifetimes: how long a backend keeps a token session row whose
// fosite session carries no expiry for the row's token type. They only bound
// when the janitor (Janitor.DeleteExpired) may reclaim the row; fosite checks
// token expiry from the session itself. They live here, once, so every
// backend keeps rows equally long and the conformance suite can pin them.
const (
	// FallbackCodeLifetime bounds authorization code, PKCE and OpenID
	// Connect rows (all keyed by the code).
	FallbackCodeLifetime = 15 * time.Minute
	// FallbackAccessLifetime bounds access token rows.
	FallbackAccessLifetime = time.Hour
	// FallbackRefreshLifetime bounds refresh token rows, which outlive their
	// rotation so that reuse is detected.
	FallbackRefreshLifetime = 30 * 24 * time.Hour
	// FallbackPARLifetime bounds pushed authorization request rows
	// (RFC 9126 request_uri).
	FallbackPARLifetime = 10 * time.Minute
)

// FallbackLifetime returns the fallback row lifetime for the token type
// whose expiry bounds a row (the tokenType passed to EncodeRequest):
// fosite.AuthorizeCode for code, PKCE and OpenID Connect rows,
// fosite.AccessToken, fosite.RefreshToken, and
// fosite.PushedAuthorizeRequestContext for PAR rows. Any other type gets
// the shortest lifetime, so an unexpected row is reclaimed early rather
// than kept.
func FallbackLifetime(tt fosite.TokenType) time.Duration {
	switch tt {
	case fosite.AccessToken:
		return FallbackAccessLifetime
	case fosite.RefreshToken:
		return FallbackRefreshLifetime
	case fosite.PushedAuthorizeRequestContext:
		return FallbackPARLifetime
	case fosite.AuthorizeCode:
		return FallbackCodeLifetime
	default:
		return FallbackPARLifetime
	}
}
