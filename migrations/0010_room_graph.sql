-- Rooms stop being linear (federation, spec: server-server-api "Receiving PDUs").
-- `rooms.extremities`: the forward extremities as a JSON array of event IDs (NULL: the room
-- is still linear and `head_event` is its only extremity).
ALTER TABLE rooms ADD COLUMN extremities TEXT;

-- Events known but not in the timeline: auth-chain and state events received with a join or
-- a state fetch (outliers), and soft-failed events (spec: "Soft failure"), which stay in the
-- graph for the events that reference them but never reach clients or extremities.
-- `state_after` is the state group after the event, when known.
CREATE TABLE outliers (
    event_id    TEXT PRIMARY KEY,
    room_id     TEXT NOT NULL,
    json        TEXT NOT NULL,
    state_after TEXT,
    soft_failed INTEGER NOT NULL DEFAULT 0,
    received_ts INTEGER NOT NULL
);
CREATE INDEX outliers_room ON outliers (room_id);

-- Events that failed the checks on receipt: kept so they are not fetched and checked again,
-- never served and never used to authorise others.
CREATE TABLE rejected_events (
    event_id    TEXT PRIMARY KEY,
    room_id     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    received_ts INTEGER NOT NULL
);

-- Inbound federation transactions, per origin (spec: "Transactions": a retried transaction
-- gets the same answer and is not processed twice).
CREATE TABLE federation_txns (
    origin      TEXT NOT NULL,
    txn_id      TEXT NOT NULL,
    response    TEXT NOT NULL,
    received_ts INTEGER NOT NULL,
    PRIMARY KEY (origin, txn_id)
);
