-- Every statement that finds a grant's rows by request_id also names the
-- kind (rotating a refresh token deletes the family's access tokens,
-- revoking a family finds its refresh token). With request_id alone
-- indexed, a planner working from statistics older than a burst of new
-- rows ANDed the request_id index with the primary key's kind prefix —
-- every access token in the table — and a refresh took 20–40 ms once
-- 45,000 client-credentials tokens had been issued (docs/performance.md,
-- round 5). (request_id, kind) answers those statements with one index
-- scan whatever the statistics say, and still serves request_id alone.
--
-- The build holds writes to token_sessions while it runs (about a second
-- per million rows). A large deployment can build it first without
-- blocking, then migrate; IF NOT EXISTS then skips it:
--   CREATE INDEX CONCURRENTLY token_sessions_request_id_kind_idx ON token_sessions (request_id, kind);
CREATE INDEX IF NOT EXISTS token_sessions_request_id_kind_idx ON token_sessions (request_id, kind);
DROP INDEX IF EXISTS token_sessions_request_id_idx;
