// Package oauth composes fosite into Bulwark's OAuth 2.0 / OpenID Connect
// provider and serves every public protocol endpoint and page: discovery and
// JWKS, the authorization endpoint with its login, consent and logout pages,
// the token, introspection (RFC 7662), revocation (RFC 7009), pushed
// authorization request (RFC 9126) and userinfo endpoints.
//
// fosite is composed handler by handler (never ComposeAllEnabled), so only
// what Bulwark supports is reachable: authorization code with PKCE S256,
// OpenID Connect explicit flow and refresh, refresh token rotation with reuse
// detection, client credentials, stateful introspection and revocation. No
// implicit, hybrid or password grant exists here.
//
// Access tokens are RFC 9068 JWTs; authorization codes and refresh tokens
// are opaque HMAC tokens. The package depends on storage only through the
// narrow Store interface and on the key ring only through fosite's
// jwt.Signer and a JWKS function, so it can be tested with an in-memory
// store and a throwaway key.
//
// DPoP (RFC 9449, dpop.go): with Config.DPoP set, the token endpoint binds
// tokens to the key of the request's proof (cnf.jkt, token_type DPoP),
// introspection reports the binding and userinfo requires the DPoP scheme
// for bound tokens; the proof checks themselves are server/dpop's.
package oauth
