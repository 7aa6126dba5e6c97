// Package protect is the API protection layer of Bulwark's HTTP listeners:
// reusable middleware and components that every endpoint shares instead of
// re-implementing per handler.
//
// It owns:
//   - Policy and Route: what a route declares about its protection where
//     its package registers it; the server builds each route's chain from
//     it once, at start-up (server/protection.go).
//   - IPResolver: the client IP, honouring X-Forwarded-For only from
//     configured trusted proxies, and reporting forwarded headers from
//     anyone else.
//   - StrictInput: NUL bytes and invalid UTF-8 refused everywhere, body
//     size, parameter count/length, duplicate OAuth parameters (RFC 6749
//     §3.1), content types; the one read of the body, which records the
//     claimed client id in reqinfo.
//   - SameOrigin: cross-site form posts refused (CrossOriginProtection).
//   - CORS (NewCORS): a route's cross-origin policy — none, any origin, or
//     the origins registered by the client the request names, preflights
//     by their union — and ClientOrigins, which keeps every client's
//     origins in memory on every replica, following client changes.
//   - Limiter: token buckets per claimed client id (every request) and per
//     source IP (failures only), per endpoint class (429 + Retry-After).
//   - Guard: brute-force defence for passwords, TOTP codes and client
//     secrets: per-account attempts counted before they are checked, in
//     the store shared by every replica.
//   - Detector: anomaly thresholds that block the offender a signal names
//     (an address for credential stuffing, a client), or only alert;
//     blocks are storage.Block rows shared by every replica.
//   - Headers and NoStore: security and caching headers by response kind.
//   - ServerTimeouts and MaxHeaderBytes: defaults against slow clients.
//
// Every middleware reads the per-request facts (client IP, claimed client
// id) from server/reqinfo; none derives them from the raw request again.
// Refusals answer in the route's response format: OAuth JSON for APIs, a
// small HTML page for pages.
//
// Every in-memory structure here is per replica and bounded in size; limits
// therefore hold per replica (N replicas admit up to N times a limit), while
// blocks placed by the Detector are stored and shared. Nothing here logs or
// echoes parameter values, which may be codes, tokens or secrets.
package protect
