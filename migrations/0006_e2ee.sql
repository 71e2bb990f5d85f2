-- End-to-end encryption (spec: client-server-api, "End-to-End Encryption"). One-time and
-- fallback keys are not here: they live in each user's `UserKeys` Durable Object, where a
-- claim is atomic.

-- Each device's signed device keys, as uploaded (signatures by others are in key_signatures).
CREATE TABLE device_keys (
    user_id   TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json  TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- The user's cross-signing keys: usage is 'master', 'self_signing' or 'user_signing';
-- public_key is the key's unpadded base64 (the part after `ed25519:`).
CREATE TABLE cross_signing_keys (
    user_id    TEXT NOT NULL,
    usage      TEXT NOT NULL,
    public_key TEXT NOT NULL,
    key_json   TEXT NOT NULL,
    PRIMARY KEY (user_id, usage)
);

-- Signatures uploaded with /keys/signatures/upload, verified before they are stored.
-- target_key is a device ID or a cross-signing public key of target_user.
CREATE TABLE key_signatures (
    target_user TEXT NOT NULL,
    target_key  TEXT NOT NULL,
    signer_user TEXT NOT NULL,
    signer_key  TEXT NOT NULL,
    signature   TEXT NOT NULL,
    PRIMARY KEY (target_user, target_key, signer_user, signer_key)
);

-- The device-list stream: the latest position at which each user's devices or
-- cross-signing keys changed (allocated in the write as MAX(stream)+1).
CREATE TABLE device_list_changes (
    user_id TEXT PRIMARY KEY,
    stream  INTEGER NOT NULL
);
CREATE INDEX device_list_changes_stream ON device_list_changes (stream);

-- MSC3814: at most one dehydrated device per user (the device itself is in `devices`).
CREATE TABLE dehydrated_devices (
    user_id     TEXT PRIMARY KEY,
    device_id   TEXT NOT NULL,
    device_data TEXT NOT NULL
);
