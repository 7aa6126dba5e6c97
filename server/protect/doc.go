// Package protect is the API protection layer of Bulwark's HTTP listeners:
// reusable middleware and components that every endpoint shares instead of
// re-implementing per handler.
//
// It owns:
//   - IPResolver: the client IP, honouring X-Forwarded-For only from
//     configured trusted proxies.
//   - Limiter: token-bucket rate limits per source IP and per client id,
//     per endpoint class, with per-client overrides (429 + Retry-After).
//   - Guard: brute-force defence for passwords, TOTP codes and client
//     secrets: per-account attempts counted before they are checked, in
//     the store shared by every replica, plus a per-replica IP failure
//     limit.
//   - Detector: anomaly detection that places temporary storage.Block rows
//     shared by every replica, and the middleware that refuses them.
//   - StrictInput: body size, parameter count/length, duplicate OAuth
//     parameters (RFC 6749 §3.1) and content-type checks.
//   - Headers and NoStore: security and caching headers by response kind.
//   - ServerTimeouts and MaxHeaderBytes: defaults against slow clients.
//
// Wiring, outermost first, per route (Chain builds a per-route stack):
//
//	OAuth token/introspect/revoke/par:
//	  Headers(API), NoStore, StrictInput(InputConfig{}),
//	  detector.Middleware(ips, ClientIDFromRequest),
//	  limiter.Middleware(class, ClientIDFromRequest)
//	login/consent pages (POST):  Headers(Page), NoStore, StrictInput, detector
//	  .Middleware(ips, nil), limiter.Middleware(ClassLogin, nil); Guard in
//	  the handler around the password check
//	discovery/JWKS/authorize GET: Headers(API or Page), StrictInput (query)
//	static assets:                Headers(Static)
//	admin API: Headers(API), NoStore, StrictInput(InputConfig{
//	  MaxBodyBytes: 1 << 20, ContentTypes: []string{"application/json"}}),
//	  limiter.Middleware(ClassAdmin, nil)
//
// StrictInput must run before anything that reads the body, so the body is
// size-limited once and every later reader gets it back intact.
//
// Every in-memory structure here is per replica and bounded in size; limits
// therefore hold per replica (N replicas admit up to N times a limit), while
// blocks placed by the Detector are stored and shared. Nothing here logs or
// echoes parameter values, which may be codes, tokens or secrets.
package protect
