-- Bulwark initial schema.
--
-- Rules every table follows: no raw token, code, secret or cookie value is
-- stored. Token sessions, login sessions and client assertion JTIs are keyed
-- by storage.HashKey (hex SHA-256); credentials are Argon2id PHC strings;
-- private key material is sealed (AES-256-GCM) before it reaches a column.

CREATE TABLE clients (
    id                              text        PRIMARY KEY,
    secret_hash                     text        NOT NULL DEFAULT '',
    -- [{"hash": "...", "expires_at": "..."}]: previous secrets still inside
    -- their rotation overlap window.
    rotated_secrets                 jsonb       NOT NULL DEFAULT '[]',
    name                            text        NOT NULL DEFAULT '',
    redirect_uris                   text[]      NOT NULL DEFAULT '{}',
    grant_types                     text[]      NOT NULL DEFAULT '{}',
    response_types                  text[]      NOT NULL DEFAULT '{}',
    scopes                          text[]      NOT NULL DEFAULT '{}',
    audience                        text[]      NOT NULL DEFAULT '{}',
    token_endpoint_auth_method      text        NOT NULL DEFAULT '',
    token_endpoint_auth_signing_alg text        NOT NULL DEFAULT '',
    jwks                            jsonb,
    request_object_signing_alg      text        NOT NULL DEFAULT '',
    application_type                text        NOT NULL DEFAULT '',
    logo_uri                        text        NOT NULL DEFAULT '',
    client_uri                      text        NOT NULL DEFAULT '',
    contacts                        text[]      NOT NULL DEFAULT '{}',
    skip_consent                    boolean     NOT NULL DEFAULT false,
    pkce_optional                   boolean     NOT NULL DEFAULT false,
    -- Lifespans in nanoseconds (time.Duration); 0 means the server default.
    access_token_lifespan_ns        bigint      NOT NULL DEFAULT 0,
    refresh_token_lifespan_ns       bigint      NOT NULL DEFAULT 0,
    id_token_lifespan_ns            bigint      NOT NULL DEFAULT 0,
    owner                           text        NOT NULL DEFAULT '',
    disabled                        boolean     NOT NULL DEFAULT false,
    created_at                      timestamptz NOT NULL,
    updated_at                      timestamptz NOT NULL,
    version                         bigint      NOT NULL DEFAULT 1
);

-- JTIs of private_key_jwt client assertions already seen (RFC 7523 §3
-- replay protection), keyed by HashKey(jti).
CREATE TABLE client_assertion_jtis (
    jti_hash   text        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX client_assertion_jtis_expires_at_idx ON client_assertion_jtis (expires_at);

-- Every fosite request Bulwark persists, one table for all kinds so that
-- revocation by request id, client or subject is one statement. The same
-- authorization code keys a code, a PKCE and an OIDC row, hence the
-- composite primary key.
CREATE TABLE token_sessions (
    kind         text        NOT NULL CHECK (kind IN ('code', 'access', 'refresh', 'pkce', 'oidc', 'par')),
    key          text        NOT NULL,
    request_id   text        NOT NULL,
    client_id    text        NOT NULL,
    subject      text        NOT NULL DEFAULT '',
    active       boolean     NOT NULL DEFAULT true,
    requested_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    data         jsonb       NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX token_sessions_request_id_idx ON token_sessions (request_id);
CREATE INDEX token_sessions_client_id_idx ON token_sessions (client_id);
CREATE INDEX token_sessions_subject_idx ON token_sessions (subject) WHERE subject <> '';
CREATE INDEX token_sessions_expires_at_idx ON token_sessions (expires_at);

CREATE TABLE users (
    id                 text        PRIMARY KEY,
    username           text        NOT NULL,
    email              text        NOT NULL DEFAULT '',
    password_hash      text        NOT NULL DEFAULT '',
    disabled           boolean     NOT NULL DEFAULT false,
    admin_scopes       text[]      NOT NULL DEFAULT '{}',
    totp_secret_sealed bytea,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    version            bigint      NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX users_username_lower_idx ON users (lower(username));

CREATE TABLE consents (
    subject    text        NOT NULL,
    client_id  text        NOT NULL,
    scopes     text[]      NOT NULL DEFAULT '{}',
    granted_at timestamptz NOT NULL,
    expires_at timestamptz,
    PRIMARY KEY (subject, client_id)
);
CREATE INDEX consents_client_id_idx ON consents (client_id);

-- Browser sessions; key is HashKey(cookie value).
CREATE TABLE login_sessions (
    key        text        PRIMARY KEY,
    kind       text        NOT NULL,
    subject    text        NOT NULL,
    auth_time  timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    data       jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX login_sessions_subject_idx ON login_sessions (subject);
CREATE INDEX login_sessions_expires_at_idx ON login_sessions (expires_at);

CREATE TABLE signing_keys (
    kid            text        PRIMARY KEY,
    algorithm      text        NOT NULL,
    state          text        NOT NULL CHECK (state IN ('next', 'active', 'retired', 'revoked')),
    public_jwk     bytea       NOT NULL,
    -- AES-256-GCM under the master secret, kid as additional data.
    sealed_private bytea       NOT NULL,
    created_at     timestamptz NOT NULL,
    activate_at    timestamptz,
    activated_at   timestamptz,
    retired_at     timestamptz,
    revoked_at     timestamptz,
    delete_after   timestamptz
);

CREATE TABLE api_keys (
    id                      text        PRIMARY KEY,
    name                    text        NOT NULL DEFAULT '',
    owner_type              text        NOT NULL DEFAULT '',
    owner_id                text        NOT NULL DEFAULT '',
    scopes                  text[]      NOT NULL DEFAULT '{}',
    hash                    text        NOT NULL,
    status                  text        NOT NULL CHECK (status IN ('active', 'rotating', 'revoked', 'expired')),
    created_by              text        NOT NULL DEFAULT '',
    created_at              timestamptz NOT NULL,
    expires_at              timestamptz,
    last_used_at            timestamptz,
    revoked_at              timestamptz,
    rotation_period_ns      bigint      NOT NULL DEFAULT 0,
    grace_period_ns         bigint      NOT NULL DEFAULT 0,
    rotate_at               timestamptz,
    replaces_id             text        NOT NULL DEFAULT '',
    replaced_by_id          text        NOT NULL DEFAULT '',
    sealed_successor_secret bytea,
    version                 bigint      NOT NULL DEFAULT 1
);
CREATE INDEX api_keys_rotate_at_idx ON api_keys (rotate_at) WHERE rotate_at IS NOT NULL;

-- The audit trail is append-only: rows may be trimmed by retention (DELETE)
-- but never rewritten.
CREATE TABLE audit_events (
    id         bigserial   PRIMARY KEY,
    time       timestamptz NOT NULL,
    event      text        NOT NULL,
    actor      text        NOT NULL DEFAULT '',
    source_ip  text        NOT NULL DEFAULT '',
    user_agent text        NOT NULL DEFAULT '',
    client_id  text        NOT NULL DEFAULT '',
    subject    text        NOT NULL DEFAULT '',
    outcome    text        NOT NULL DEFAULT '',
    request_id text        NOT NULL DEFAULT '',
    details    jsonb
);
CREATE INDEX audit_events_time_idx ON audit_events (time);
CREATE INDEX audit_events_actor_idx ON audit_events (actor, id);
CREATE INDEX audit_events_event_idx ON audit_events (event, id);
CREATE INDEX audit_events_client_id_idx ON audit_events (client_id, id) WHERE client_id <> '';

CREATE FUNCTION audit_events_refuse_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only'
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_update();

CREATE TABLE blocks (
    kind       text        NOT NULL,
    value      text        NOT NULL,
    reason     text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX blocks_expires_at_idx ON blocks (expires_at);
