// Package forwardauth answers gateway authentication subrequests (nginx
// auth_request, Traefik forwardAuth, Caddy forward_auth, Envoy ext_authz in
// HTTP mode): it reads the caller's credential (a JWT access token or an
// API key), checks it against the operator's rules for the original
// request's method, host and path, and answers 200 with identity headers,
// 401 with an RFC 6750 challenge, 403 or 429.
//
// The hot path touches no database: JWTs are verified with the in-memory
// key ring and checked against a deny list of revoked token ids that every
// replica keeps current through storage.RevokedAccessChannel; API keys use
// a short-lived verification cache evicted through the API key channel.
// When the deny list cannot be trusted (startup, lost notifications, too
// many revocations at once) tokens issued before that moment are looked up
// in the store instead.
//
// "Authorization: DPoP <JWT>" (RFC 9449 §7) is accepted with a proof for
// the original request (server/dpop); its jti is recorded in the store, the
// one database statement on that path, so a proof is used once across
// replicas. A DPoP-bound token presented as a bearer token is refused.
package forwardauth
