-- The admin API (issue 18, Synapse-compatible `/_synapse/admin`). No foreign keys.

-- Registration tokens managed by admins (Synapse's `registration_tokens`). A use is
-- reserved when a registration's UIA session passes the token stage: the session's
-- `registration_token` is set by one statement guarded by
-- `completed + (live sessions holding the token) < uses_allowed`, so concurrent registrations
-- cannot over-use a token. `pending` is that count of live sessions (an abandoned session
-- stops counting when it expires); the use becomes `completed` in the same batch that ends
-- the session when its flow completes. `expiry_time` in ms; NULL means no limit.
CREATE TABLE registration_tokens (
    token        TEXT PRIMARY KEY,
    uses_allowed INTEGER,
    completed    INTEGER NOT NULL DEFAULT 0,
    expiry_time  INTEGER
);
ALTER TABLE uia_sessions ADD COLUMN registration_token TEXT;
CREATE INDEX uia_sessions_token ON uia_sessions (registration_token);

-- Shadow-banned users: their sends succeed for them but reach nobody.
ALTER TABLE users ADD COLUMN shadow_banned INTEGER NOT NULL DEFAULT 0;

-- Rooms nobody on this server may join (DELETE /_synapse/admin/v2/rooms/{id} with `block`).
CREATE TABLE blocked_rooms (
    room_id    TEXT PRIMARY KEY,
    blocked_by TEXT NOT NULL,
    created_ts INTEGER NOT NULL
);

-- Room deletions, run as bounded steps (members removed, then the room's rows deleted a chunk
-- per table per step) so that each request stays within a Worker's limits and an interrupted
-- deletion resumes. `status`: scheduled | active | complete | failed (Synapse's names).
CREATE TABLE room_deletes (
    delete_id            TEXT PRIMARY KEY,
    room_id              TEXT NOT NULL,
    requester            TEXT NOT NULL,
    block                INTEGER NOT NULL,
    purge                INTEGER NOT NULL,
    force_purge          INTEGER NOT NULL,
    status               TEXT NOT NULL,
    kicked_users         TEXT NOT NULL DEFAULT '[]',
    failed_to_kick_users TEXT NOT NULL DEFAULT '[]',
    local_aliases        TEXT NOT NULL DEFAULT '[]',
    error                TEXT,
    created_ts           INTEGER NOT NULL,
    updated_ts           INTEGER NOT NULL
);
CREATE INDEX room_deletes_room ON room_deletes (room_id, created_ts);
CREATE INDEX room_deletes_status ON room_deletes (status);

-- The server-notices room of each user (created on demand by send_server_notice).
CREATE TABLE server_notice_rooms (
    user_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL
);

-- So that a purge deletes by room without scanning these tables.
CREATE INDEX state_groups_room ON state_groups (room_id);
CREATE INDEX push_actions_room ON push_actions (room_id);
CREATE INDEX rejected_events_room ON rejected_events (room_id);
CREATE INDEX account_data_room ON account_data (room_id);
CREATE INDEX media_user ON media (user_id, created_ts);
