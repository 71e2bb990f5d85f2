-- Server-side key backups (spec: client-server-api, "Server-side key backups").
-- See src/store/backup.rs.

-- One row per backup version of a user. Versions are 1, 2, 3, ... per user; a deleted
-- version keeps its row (deleted = 1) so that its number is never issued again and deleting
-- it twice succeeds. The current version is the highest one not deleted. `etag` moves
-- whenever the version's stored keys change; `count` is the number of stored keys.
CREATE TABLE backup_versions (
    user_id   TEXT NOT NULL,
    version   INTEGER NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data TEXT NOT NULL,
    etag      INTEGER NOT NULL DEFAULT 0,
    count     INTEGER NOT NULL DEFAULT 0,
    deleted   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, version)
);

-- The backed-up session keys: `session_data` is the client's encrypted JSON, opaque here.
CREATE TABLE backup_keys (
    user_id             TEXT NOT NULL,
    version             INTEGER NOT NULL,
    room_id             TEXT NOT NULL,
    session_id          TEXT NOT NULL,
    first_message_index INTEGER NOT NULL,
    forwarded_count     INTEGER NOT NULL,
    is_verified         INTEGER NOT NULL,
    session_data        TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
