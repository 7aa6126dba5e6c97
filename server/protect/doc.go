// Package protect is the API protection layer of Bulwark's HTTP listeners:
// reusable middleware and components that every endpoint shares instead of
// re-implementing per handler.
//
// It owns:
//   - IPResolver: the client IP, honouring X-Forwarded-For only from
//     configured trusted proxies.
//   - Limiter: token-bucket rate limits per source IP and per client id,
//     per endpoint class, with per-client overrides (429 + Retry-After).
//   - Guard: brute-force defence for passwords and client secrets
//     (progressive delay, then a temporary lock).
//   - Detector: anomaly detection that places temporary storage.Block rows
//     shared by every replica, and the middleware that refuses them.
//   - StrictInput: body size, parameter count/length, duplicate OAuth
//     parameters (RFC 6749 §3.1) and content-type checks.
//   - Headers and NoStore: security and caching headers by response kind.
//   - ServerTimeouts and MaxHeaderBytes: defaults against slow clients.
//
// Every in-memory structure here is per replica and bounded in size; limits
// therefore hold per replica (N replicas admit up to N times a limit), while
// blocks placed by the Detector are stored and shared. Nothing here logs or
// echoes parameter values, which may be codes, tokens or secrets.
package protect
