-- Accounts, devices, tokens and the bookkeeping of login and user-interactive auth.
-- No foreign keys (D1 design rule): integrity is kept by the code in src/store/.

CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,          -- @localpart:server
    password_hash TEXT,                      -- $pbkdf2-sha256$i=N$salt$hash; NULL = no password login
    displayname   TEXT,
    avatar_url    TEXT,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    deactivated   INTEGER NOT NULL DEFAULT 0,
    created_ts    INTEGER NOT NULL
);

CREATE TABLE devices (
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    display_name TEXT,
    last_seen_ip TEXT,
    last_seen_ts INTEGER,
    created_ts   INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- Bearer tokens are stored only as SHA-256 hashes.
CREATE TABLE access_tokens (
    token_hash   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    created_ts   INTEGER NOT NULL,
    expires_ts   INTEGER,                    -- NULL = does not expire (no refresh token)
    refresh_hash TEXT,                       -- the refresh token issued with it
    used         INTEGER NOT NULL DEFAULT 0  -- set on first use (ends the old refresh token's grace)
);
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    next_hash  TEXT,                         -- the token it was rotated into
    parent_hash TEXT                         -- the token it was rotated from
);
CREATE INDEX refresh_tokens_parent ON refresh_tokens (parent_hash);
CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id);
CREATE INDEX refresh_tokens_next ON refresh_tokens (next_hash);

-- m.login.token tokens (from /login/get_token): short-lived, single use.
CREATE TABLE login_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    expires_ts INTEGER NOT NULL
);

-- User-interactive auth sessions.
CREATE TABLE uia_sessions (
    session_id TEXT PRIMARY KEY,
    operation  TEXT NOT NULL,                -- what the session authorises, e.g. "register"
    user_id    TEXT,                         -- who, for operations of a logged-in user
    completed  TEXT NOT NULL DEFAULT '[]',   -- JSON array of completed stages
    created_ts INTEGER NOT NULL
);

-- Failed logins, for rate limiting: one row per failure per key (account or address).
CREATE TABLE login_failures (
    key TEXT NOT NULL,
    ts  INTEGER NOT NULL
);
CREATE INDEX login_failures_key ON login_failures (key, ts);

-- Nonces of the shared-secret admin registration API: single use.
CREATE TABLE admin_nonces (
    nonce      TEXT PRIMARY KEY,
    created_ts INTEGER NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0
);
