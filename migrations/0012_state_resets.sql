-- State resets (rooms that are not linear): changes to a room's current state that state
-- resolution made when an event from another server arrived, beyond the event's own
-- (type, state_key) -> event. E.g. two servers set the topic concurrently and, when the
-- branches meet, resolution keeps the other branch's older topic event; or a ban on one
-- branch beats a join on the other. No event in the timeline shows such a change, so
-- `/sync`, which reads state by stream position, reads these rows too (Synapse's model is its
-- `current_state_delta_stream`).
-- `stream`: the stream position of the event whose arrival made the change (the change is
-- part of the state from that position on); `event_id`: the event now at the key, NULL when
-- the key left the state.
CREATE TABLE state_resets (
    stream    INTEGER NOT NULL,
    room_id   TEXT NOT NULL,
    type      TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id  TEXT,
    PRIMARY KEY (room_id, stream, type, state_key)
);
CREATE INDEX state_resets_stream ON state_resets (stream);
