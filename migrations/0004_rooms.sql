-- Rooms and the event graph. No foreign keys: src/store/rooms.rs keeps them consistent, and
-- every event append is one D1 batch.

CREATE TABLE rooms (
    room_id       TEXT PRIMARY KEY,
    room_version  TEXT NOT NULL,
    creator       TEXT NOT NULL,
    is_public     INTEGER NOT NULL DEFAULT 0,  -- listed in the room directory
    head_event    TEXT,                        -- the latest event (local rooms are linear)
    head_depth    INTEGER NOT NULL DEFAULT 0,
    state_group   TEXT,                        -- state group of the current state
    created_ts    INTEGER NOT NULL
);

-- Every event, in stream order. `stream` is allocated inside the INSERT from MAX(stream)+1;
-- D1 runs writes one at a time, so positions commit in increasing order with no gaps a
-- reader could skip.
CREATE TABLE events (
    event_id         TEXT PRIMARY KEY,
    room_id          TEXT NOT NULL,
    stream           INTEGER NOT NULL UNIQUE,
    depth            INTEGER NOT NULL,
    type             TEXT NOT NULL,
    state_key        TEXT,
    sender           TEXT NOT NULL,
    origin_server_ts INTEGER NOT NULL,
    json             TEXT NOT NULL,            -- the signed PDU (canonical JSON)
    state_before     TEXT,                     -- state group before the event
    state_after      TEXT,                     -- state group after the event
    membership       TEXT,                     -- content.membership of m.room.member events
    redacted_by      TEXT,                     -- the redaction event, once redacted
    relates_to       TEXT,                     -- content.m.relates_to.event_id
    rel_type         TEXT,                     -- content.m.relates_to.rel_type
    txn_id           TEXT,                     -- the sender's transaction ID, for echo
    txn_device       TEXT
);
CREATE INDEX events_room_stream ON events (room_id, stream);
CREATE INDEX events_room_ts ON events (room_id, origin_server_ts);
CREATE INDEX events_relates ON events (relates_to, rel_type);
CREATE INDEX events_room_state ON events (room_id, type, state_key, stream);

-- State snapshots as delta chains: a group is the state after the state event whose ID it
-- carries. `delta` is a JSON array of [type, state_key, event_id]; `prev_id` NULL means a
-- full snapshot (taken every 32 links, so a lookup reads at most 33 rows).
CREATE TABLE state_groups (
    id        TEXT PRIMARY KEY,
    room_id   TEXT NOT NULL,
    prev_id   TEXT,
    delta     TEXT NOT NULL,
    chain_len INTEGER NOT NULL
);

CREATE TABLE current_state (
    room_id   TEXT NOT NULL,
    type      TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);

-- Each user's current membership in each room (a projection of current_state).
CREATE TABLE memberships (
    room_id    TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    stream     INTEGER NOT NULL,
    forgotten  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id, membership);

-- Idempotent sends: (user, device, txn) → event.
CREATE TABLE txn_ids (
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

CREATE TABLE room_aliases (
    alias      TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL,
    creator    TEXT NOT NULL,
    created_ts INTEGER NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

-- Reports of events, rooms and users, for the server's admins.
CREATE TABLE reports (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    reporter   TEXT NOT NULL,
    room_id    TEXT,
    event_id   TEXT,
    user_id    TEXT,
    reason     TEXT,
    score      INTEGER,
    created_ts INTEGER NOT NULL
);
