-- `m.direct_to_device` EDUs already received, by (origin, message_id): a message_id may come
-- again in another transaction (a sender retrying after a lost answer, or relaying) and its
-- messages must be queued once (spec: server-server-api, "Send-to-device messaging": the
-- message_id is "used for idempotence"). Rows older than a week are deleted as new ones
-- arrive (`store::edus::claim_to_device_message`), so the table stays bounded.
CREATE TABLE federation_to_device_ids (
    origin      TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    received_ts INTEGER NOT NULL,
    PRIMARY KEY (origin, message_id)
);
CREATE INDEX federation_to_device_ids_ts ON federation_to_device_ids (received_ts);
