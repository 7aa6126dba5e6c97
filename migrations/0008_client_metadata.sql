-- Client metadata for browser apps on their own origin (CORS), DPoP-bound
-- tokens (RFC 9449 §5.2) and OpenID Connect Back-Channel Logout 1.0.
ALTER TABLE clients
    ADD COLUMN allowed_cors_origins                text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN dpop_bound_access_tokens            boolean NOT NULL DEFAULT false,
    ADD COLUMN backchannel_logout_uri              text    NOT NULL DEFAULT '',
    ADD COLUMN backchannel_logout_session_required boolean NOT NULL DEFAULT false;
