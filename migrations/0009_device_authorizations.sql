-- Device authorization grant (RFC 8628). One row per device authorization
-- request; no code is stored in clear (device_code_hash and user_code_hash
-- are storage.HashKey values). Every transition is one UPDATE … WHERE …
-- RETURNING on this row: the user's decision (status pending → approved or
-- denied) and each poll (which consumes an approval: approved → issued, and
-- records its own outcome in last_outcome). The janitor deletes rows on
-- expires_at.
CREATE TABLE device_authorizations (
    device_code_hash text        PRIMARY KEY,
    user_code_hash   text        NOT NULL UNIQUE,
    user_code_hint   text        NOT NULL,
    client_id        text        NOT NULL,
    request_id       text        NOT NULL,
    scopes           text[]      NOT NULL DEFAULT '{}',
    audience         text[]      NOT NULL DEFAULT '{}',
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'denied', 'issued')),
    subject          text        NOT NULL DEFAULT '',
    request          jsonb,
    interval_seconds integer     NOT NULL CHECK (interval_seconds > 0),
    last_polled_at   timestamptz,
    last_outcome     text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    decided_at       timestamptz,
    expires_at       timestamptz NOT NULL
);
CREATE INDEX device_authorizations_expires_at_idx ON device_authorizations (expires_at);
