// Package admin owns Bulwark's administration operations and the JSON admin
// REST API under /admin/v1.
//
// Service holds every operation (clients, users, consents, API keys,
// signing keys, audit, blocks) with plain Go inputs and outputs: input
// validation, object-level rules (scope escalation), incident containment
// (disable = flag + revoke tokens in one transaction) and the audit trail
// live there, so the JSON API (API, in this package) and the web console
// (server/console) behave identically.
//
// API is a thin HTTP layer over Service: strict JSON decoding,
// function-level scope checks on every route, ETag/If-Match, one error
// mapping (writeError), and an OpenAPI 3 document (openapi.json) whose
// routes a test keeps in step with the router.
//
// # Scopes
//
//	admin:clients:read   GET /clients, GET /clients/{id}
//	admin:clients:write  every client mutation
//	admin:users          users, consents, and lifting blocks (DELETE /blocks/...)
//	admin:apikeys        every /apikeys route except the self routes
//	admin:keys           signing keys
//	admin:audit:read     GET /audit, GET /blocks
//
// Lifting a block re-admits traffic that anomaly detection stopped; it is
// the same kind of decision as re-enabling a user, so it needs admin:users
// rather than a scope of its own.
//
// Any authenticated key may call GET /apikeys/self and POST
// /apikeys/self/revoke (a key can always see and kill itself: a leaked key
// is then contained by whoever finds it), and GET /openapi.json.
//
// Object-level rule: whoever creates or rotates an API key, or gives a user
// admin scopes, must hold every scope granted, because the new token (or
// password) would otherwise be a privilege escalation. Likewise resetting
// a user's password or enabling a disabled user needs every admin scope
// that user holds (the caller would otherwise take over, or restore, more
// power than it has), and an API key owned by a client, which can be
// exchanged for that client's tokens, needs admin:clients:write to create
// or rotate. Revoking and disabling need no such check: they only take
// power away; but a console user cannot disable their own account.
//
// Client ids created here must be usable as a path segment (no "/", "?",
// "#", "%", "\", dot segments, control or formatting characters): a
// client that cannot be addressed could never be disabled or deleted.
package admin
