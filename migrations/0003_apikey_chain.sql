-- API key containment walks rotation links and owners in one statement
-- (storage/postgres/apikeychain.go); these indexes keep both off a table scan.
CREATE INDEX api_keys_replaces_id_idx ON api_keys (replaces_id) WHERE replaces_id <> '';
CREATE INDEX api_keys_owner_idx ON api_keys (owner_type, owner_id);
