-- Invites from other servers to rooms this server is not in (spec: server-server-api,
-- "Inviting to a room", `PUT /_matrix/federation/v2/invite`). The invite event itself is also
-- stored as an out-of-band row of `events` (no state groups) with a `memberships` row
-- `invite`, so that `/sync` finds it like a local invite; this table keeps what only a
-- remote invite has: the stripped state the inviter sent, the room version and the server to
-- reject through. The row goes when the user rejects (or joins through the join path).
CREATE TABLE remote_invites (
    room_id           TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    event_id          TEXT NOT NULL,
    event_json        TEXT NOT NULL,   -- the invite, with our signature added
    invite_state_json TEXT NOT NULL,   -- JSON array: invite_room_state as sent
    room_version      TEXT NOT NULL,
    via_server        TEXT NOT NULL,   -- the inviting server (origin of the request)
    created_ts        INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX remote_invites_user ON remote_invites (user_id);
