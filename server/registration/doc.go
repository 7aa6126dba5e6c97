// Package registration serves dynamic client registration (RFC 7591) at
// POST /oauth2/register and its management protocol (RFC 7592) at the
// registration client URI /oauth2/register/{client_id}.
//
// It owns the registration policy (which scopes, grant types and
// authentication methods a registrant may ask for, https redirect URIs
// except loopback and private-use schemes for native apps, no URL toward
// the server's own networks) and the two bearer tokens of the protocol:
// initial access tokens, which admins issue (server/admin) and whose uses
// are counted by one atomic statement, and registration access tokens,
// which are rotated by one atomic statement on every update. Client rules
// (validation, secrets, audit, containment) stay with server/admin's
// Service, which this package calls.
//
// It also builds fosite's JWKS fetcher for clients registered with a
// jwks_uri, on server/egress's client with a size cap and no retries.
package registration
