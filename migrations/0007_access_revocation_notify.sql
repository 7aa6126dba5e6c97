-- Announce access tokens that stop being valid before their expiry, so
-- in-memory caches of token validity (the forward-auth deny list) on every
-- replica learn of revocations within the NOTIFY latency. A trigger covers
-- every path that deletes access token rows (revocation endpoint, refresh
-- rotation and reuse detection, containment, client deletion) in the same
-- transaction, and pg_notify is delivered only if that transaction commits.
--
-- Payload: "<key> <expires_at unix seconds>" per token (see
-- storage.RevokedAccessPayload), or "*" when one statement removes more
-- than 100 unexpired tokens (storage.RevokedAccessListLimit): subscribers
-- then look up every token issued before it in this table. Expired rows
-- (the janitor) are not announced.
CREATE FUNCTION bulwark_announce_revoked_access() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    n   bigint;
    row record;
BEGIN
    SELECT count(*) INTO n FROM old_rows WHERE kind = 'access' AND expires_at > now();
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    IF n > 100 THEN
        PERFORM pg_notify('bulwark_access_revoked', '*');
        RETURN NULL;
    END IF;
    FOR row IN SELECT key, expires_at FROM old_rows WHERE kind = 'access' AND expires_at > now() LOOP
        PERFORM pg_notify('bulwark_access_revoked',
            row.key || ' ' || floor(extract(epoch FROM row.expires_at))::bigint::text);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER token_sessions_announce_revoked_access
    AFTER DELETE ON token_sessions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bulwark_announce_revoked_access();
