-- Used DPoP proofs (RFC 9449 §11.1), shared by every replica, so a proof is
-- accepted once however many replicas see it.
--
-- key_hash is storage.HashKey of "dpop\x00<jkt>\x00<jti>": the jti is unique
-- per key, so one client's jti cannot collide with another's. One
-- INSERT … ON CONFLICT DO NOTHING decides whether a proof is fresh: the
-- statement that inserts the row is the one request that may use it.
-- expires_at is the end of the proof's iat window plus a margin; the janitor
-- trims on it. The table takes one row per DPoP request and lives for
-- minutes, so it has no foreign keys and nothing else.
CREATE TABLE dpop_proofs (
    key_hash   text        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX dpop_proofs_expires_at_idx ON dpop_proofs (expires_at);
