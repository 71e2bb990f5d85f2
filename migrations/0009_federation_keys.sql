-- Other servers' signing keys (spec: server-server-api, "Retrieving server keys"), cached
-- after the key document's self-signature was checked. See src/store/federation.rs.
-- No foreign keys (D1 design rule).

-- One row per key ever seen: a key that moves to `old_verify_keys` gets its `expired_ts`; a
-- key that disappears from later documents stays, so old events can still be checked.
CREATE TABLE server_keys (
    server_name    TEXT NOT NULL,
    key_id         TEXT NOT NULL,            -- `ed25519:abc`
    key            TEXT NOT NULL,            -- unpadded base64 public key
    valid_until_ts INTEGER NOT NULL,         -- of the newest document listing it as current
    expired_ts     INTEGER,                  -- NULL for a current key (`verify_keys`)
    fetched_ts     INTEGER NOT NULL,
    PRIMARY KEY (server_name, key_id)
);

-- The newest key document of each server as received (origin's signatures included), which
-- we countersign when we answer `/_matrix/key/v2/query` as a notary.
CREATE TABLE server_key_documents (
    server_name    TEXT PRIMARY KEY,
    document       TEXT NOT NULL,
    valid_until_ts INTEGER NOT NULL,
    fetched_ts     INTEGER NOT NULL
);
