-- Dynamic client registration (RFC 7591) and its management protocol
-- (RFC 7592).
--
-- jwks_uri: a client's key set by reference, fetched only through
-- server/egress. registered_via: '' for clients an admin made, 'open' for
-- open registration, else the id of the initial access token used.
ALTER TABLE clients
    ADD COLUMN jwks_uri       text NOT NULL DEFAULT '',
    ADD COLUMN registered_via text NOT NULL DEFAULT '';

-- Initial access tokens (RFC 7591 §3) an admin issues. Only an
-- HMAC-SHA256 lookup hash of the token is kept. A registration counts
-- itself with one statement:
--   UPDATE … SET registered = registered + 1
--   WHERE lookup_hash = ANY($1) AND revoked_at IS NULL AND expires_at > now
--     AND registered < max_clients RETURNING …
-- so of N registrations racing for the last use exactly one gets it.
CREATE TABLE initial_access_tokens (
    id          text        PRIMARY KEY,
    lookup_hash bytea       NOT NULL UNIQUE,
    description text        NOT NULL DEFAULT '',
    scopes      text[]      NOT NULL DEFAULT '{}',
    grant_types text[]      NOT NULL DEFAULT '{}',
    max_clients integer     NOT NULL CHECK (max_clients > 0),
    registered  integer     NOT NULL DEFAULT 0 CHECK (registered >= 0 AND registered <= max_clients),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    created_by  text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL
);

-- Registration access tokens (RFC 7592 §1): one per registered client,
-- as a lookup hash, replaced by one conditional UPDATE on every update of
-- the registration. Deleting the client deletes its token.
CREATE TABLE client_registrations (
    client_id   text        PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    token_hash  bytea       NOT NULL UNIQUE,
    issued_at   timestamptz NOT NULL
);
