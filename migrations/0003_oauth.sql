-- The OAuth 2.0 / OpenID Connect provider (MSC3861). No foreign keys (D1 design rule).
-- Authorization codes live in KV (600 s TTL); oauth_code_uses makes each single-use.

-- Dynamically registered public clients (RFC 7591). client_id is derived from the
-- metadata, so identical registrations share one row.
CREATE TABLE oauth_clients (
    client_id  TEXT PRIMARY KEY,
    metadata   TEXT NOT NULL,              -- JSON: the validated client metadata
    created_ts INTEGER NOT NULL
);

-- One authorization grant: a device, a client and its refresh token family. Access
-- tokens (JWTs) name it in `sid`; revoking it stops them at once.
CREATE TABLE oauth_sessions (
    session_id TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    revoked_ts INTEGER                     -- NULL while the session is alive
);
CREATE INDEX oauth_sessions_device ON oauth_sessions (user_id, device_id);

-- Refresh tokens, by SHA-256 hash. used_ts is set when the token is exchanged; a used
-- token presented again revokes its session.
CREATE TABLE oauth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    used_ts    INTEGER
);
CREATE INDEX oauth_refresh_tokens_session ON oauth_refresh_tokens (session_id);

-- The atomic single-use guard for authorization codes: the primary key lets only one
-- token request win. session_id is the session that code started (revoked on replay).
CREATE TABLE oauth_code_uses (
    code_hash  TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    used_ts    INTEGER NOT NULL
);

-- Browser sign-ins to the provider's pages (authorize "continue as", account management).
CREATE TABLE oauth_browser_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    expires_ts INTEGER NOT NULL
);
