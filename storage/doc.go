// Package storage is Bulwark's storage contract: the domain types every
// backend stores (clients, users, consents, signing keys, API keys, audit
// events, token sessions) and the interfaces a backend implements.
//
// Two backends implement it: storage/postgres (production) and
// storage/memory (--dev and fast tests). storage/storagetest holds the one
// conformance suite both must pass. The suite checks the semantics fosite
// relies on, not only CRUD: an invalidated authorization code or an inactive
// refresh token is returned together with its sentinel error, revoking by
// request id hits the whole token family, missing PKCE/OIDC rows are
// fosite.ErrNotFound.
//
// Backends return the sentinel errors declared here (wrapped with %w where
// they add context) so callers can test them with errors.Is. The mapping to
// HTTP and OAuth errors happens in the server, in one place.
package storage
