-- The algorithm a client's ID tokens are signed with (OpenID Connect
-- Dynamic Client Registration 1.0 §2, id_token_signed_response_alg). Empty
-- means the server's default (--id-token-alg).
ALTER TABLE clients ADD COLUMN id_token_signed_response_alg text NOT NULL DEFAULT '';
