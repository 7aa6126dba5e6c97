-- OpenID Connect Back-Channel Logout 1.0: session ids, the relying-party
-- sessions derived from each login session, and the durable outbox of
-- logout tokens still to deliver.

-- sid: the login session's id towards relying parties (the sid claim). It
-- is random and unrelated to the key (the hashed cookie). Sessions created
-- before this migration have none and join no relying party.
ALTER TABLE login_sessions ADD COLUMN sid text NOT NULL DEFAULT '';

-- Which relying party (client) received an authorization for which login
-- session. A logout deletes the rows it ends (DELETE … RETURNING), so each
-- is turned into a logout token exactly once.
CREATE TABLE rp_sessions (
    sid        text        NOT NULL,
    client_id  text        NOT NULL,
    subject    text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (sid, client_id)
);
CREATE INDEX rp_sessions_subject_idx ON rp_sessions (subject, client_id);
CREATE INDEX rp_sessions_expires_at_idx ON rp_sessions (expires_at);

-- The outbox. Rows are inserted in the transaction of the state change
-- that causes them (logout, user disabled, …), claimed by workers on any
-- replica with FOR UPDATE SKIP LOCKED under a lease, and deleted once
-- delivered or given up on. The token is signed at delivery; jti is fixed
-- here so every attempt carries the same one.
CREATE TABLE backchannel_logouts (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id       text        NOT NULL,
    subject         text        NOT NULL,
    sid             text        NOT NULL DEFAULT '',
    jti             text        NOT NULL UNIQUE,
    reason          text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text        NOT NULL DEFAULT '',
    lease           text        NOT NULL DEFAULT '',
    lease_until     timestamptz
);
CREATE INDEX backchannel_logouts_due_idx ON backchannel_logouts (next_attempt_at);

-- Wake the workers when logouts are queued; NOTIFY is delivered only if
-- the queuing transaction commits. Workers also poll, so a lost
-- notification only delays delivery.
CREATE FUNCTION bulwark_announce_backchannel() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows) THEN
        PERFORM pg_notify('bulwark_backchannel', 'queued');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER backchannel_logouts_announce
    AFTER INSERT ON backchannel_logouts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bulwark_announce_backchannel();
