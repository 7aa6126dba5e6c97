-- State that guards secrets, shared by every replica (issue 9 item 6,
-- issue 10 "Lockouts are cluster-wide").
--
-- Keys are storage.HashKey of "<guard>\x00<account>" (or of the used TOTP
-- step): no username, client id or code is stored in clear. Both tables are
-- trimmed by the janitor on expires_at.

-- Attempt counters: one row per guarded key. An attempt is counted with
-- INSERT … ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count
-- before the secret is checked; expires_at is the end of the current window.
CREATE TABLE attempt_counters (
    key_hash   text        PRIMARY KEY,
    count      integer     NOT NULL CHECK (count >= 0),
    expires_at timestamptz NOT NULL
);
CREATE INDEX attempt_counters_expires_at_idx ON attempt_counters (expires_at);

-- Single-use marks (an accepted TOTP code of one user and time step): the
-- INSERT that creates the row is the one that may use the value.
CREATE TABLE used_marks (
    key_hash   text        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX used_marks_expires_at_idx ON used_marks (expires_at);
