-- End-to-end encryption across servers (spec: server-server-api, "End-to-End Encryption"
-- and "Device Management").

-- Remote users whose device lists we keep (they share a room with one of our users): the
-- last `stream_id` their server told us (an `m.device_list_update` or a `/user/devices`
-- resync), their master and self-signing keys, and whether the cache is stale (a gap in the
-- updates was seen and the resync has not finished).
CREATE TABLE remote_device_lists (
    user_id          TEXT PRIMARY KEY,
    stream_id        INTEGER NOT NULL,
    master_key       TEXT,
    self_signing_key TEXT,
    stale            INTEGER NOT NULL DEFAULT 0,
    updated_ms       INTEGER NOT NULL
);

-- Their devices: the signed device keys as their server sent them (NULL for a device that
-- has not uploaded keys) and the display name, if their server shares it.
CREATE TABLE remote_devices (
    user_id      TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    keys_json    TEXT,
    display_name TEXT,
    PRIMARY KEY (user_id, device_id)
);

-- Our users' outbound device-list stream: the `stream_id` of the last `m.device_list_update`
-- about them (each change takes the next one; `prev_id` names the previous).
CREATE TABLE device_list_outbound (
    user_id   TEXT PRIMARY KEY,
    stream_id INTEGER NOT NULL
);
