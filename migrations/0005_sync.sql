-- Sync: per-user and ephemeral streams. Each table has its own `stream` column, allocated
-- inside the write as MAX(stream)+1 (D1 runs writes one at a time, so positions commit in
-- increasing order). A sync token carries one position per stream (src/core/sync_token.rs).

-- Stored filters (POST /user/{userId}/filter).
CREATE TABLE filters (
    user_id   TEXT NOT NULL,
    filter_id INTEGER NOT NULL,
    json      TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

-- Account data, global (room_id '') and per room; m.push_rules and m.tag live here too.
CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL DEFAULT '',
    type    TEXT NOT NULL,
    content TEXT NOT NULL,
    stream  INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_stream ON account_data (user_id, stream);

-- Receipts: the latest per (room, user, type, thread). thread_id '' is unthreaded.
-- event_stream is the receipt's event position, for unread counts.
CREATE TABLE receipts (
    room_id      TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    thread_id    TEXT NOT NULL DEFAULT '',
    event_id     TEXT NOT NULL,
    event_stream INTEGER NOT NULL,
    ts           INTEGER NOT NULL,
    stream       INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
);
CREATE INDEX receipts_stream ON receipts (stream);
CREATE INDEX receipts_user ON receipts (user_id, room_id);

-- Who is typing in each room: written by the room's Room Durable Object, which keeps the
-- timeouts; `user_ids` is a JSON array.
CREATE TABLE room_typing (
    room_id  TEXT PRIMARY KEY,
    user_ids TEXT NOT NULL,
    stream   INTEGER NOT NULL
);
CREATE INDEX room_typing_stream ON room_typing (stream);

CREATE TABLE presence (
    user_id          TEXT PRIMARY KEY,
    presence         TEXT NOT NULL,
    status_msg       TEXT,
    last_active_ts   INTEGER NOT NULL,
    currently_active INTEGER NOT NULL DEFAULT 0,
    stream           INTEGER NOT NULL
);
CREATE INDEX presence_stream ON presence (stream);

-- The push rules' verdict on each event for each member it notifies (unread counts,
-- /notifications). thread_id is 'main' or the thread root.
CREATE TABLE push_actions (
    user_id   TEXT NOT NULL,
    event_id  TEXT NOT NULL,
    room_id   TEXT NOT NULL,
    stream    INTEGER NOT NULL,
    thread_id TEXT NOT NULL,
    highlight INTEGER NOT NULL,
    actions   TEXT NOT NULL,
    ts        INTEGER NOT NULL,
    PRIMARY KEY (user_id, event_id)
);
CREATE INDEX push_actions_user_room ON push_actions (user_id, room_id, stream);
CREATE INDEX push_actions_user_stream ON push_actions (user_id, stream);

CREATE TABLE pushers (
    user_id             TEXT NOT NULL,
    app_id              TEXT NOT NULL,
    pushkey             TEXT NOT NULL,
    kind                TEXT NOT NULL,
    app_display_name    TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag         TEXT,
    lang                TEXT NOT NULL,
    data                TEXT NOT NULL,
    access_token_device TEXT,
    created_ts          INTEGER NOT NULL,
    PRIMARY KEY (user_id, app_id, pushkey)
);
CREATE INDEX pushers_pushkey ON pushers (app_id, pushkey);
