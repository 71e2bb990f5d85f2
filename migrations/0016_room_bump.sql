-- Sliding sync (MSC4186) orders a user's rooms by recency: per room, the stream position of
-- its latest event of the bump types (`core::sliding::list::BUMP_TYPES`) and of its latest
-- event. Kept here, written in the same D1 batch as each event (`store::sync::bump_stmt`),
-- so the room list is one indexed read per room instead of a lookup per bump type.
-- `last_bump` NULL: no bump event stored. Rooms the user is not joined to are ordered by
-- the membership row instead.
CREATE TABLE room_bump (
    room_id    TEXT PRIMARY KEY,
    last_bump  INTEGER,
    last_event INTEGER NOT NULL
);

-- The rooms as they are (the same predicate as `core::sliding::list::is_bump`).
INSERT INTO room_bump (room_id, last_bump, last_event)
SELECT room_id,
       MAX(CASE WHEN (type = 'm.room.create' AND state_key = '')
                  OR (type = 'm.beacon_info' AND state_key IS NOT NULL)
                  OR (state_key IS NULL AND type IN ('m.room.message', 'm.room.encrypted', 'm.sticker', 'm.call.invite', 'm.poll.start'))
                THEN stream END),
       MAX(stream)
FROM events GROUP BY room_id;
