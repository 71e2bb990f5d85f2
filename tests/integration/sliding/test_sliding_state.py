"""Sliding sync state that only the store can arrange: state stubs for state a state reset
deleted (MSC4186 `StateStub`), and the room ordering table (migration 0016, `room_bump`)
against its own backfill. Both read or write the local D1 files of an instance started
here (a state reset needs another server's events; the backfill ran before any row
existed)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from local_state import sqlite_with_table
from rooms_helpers import create_room, put_state, send
from sliding_helpers import lists_only, room_list, sliding, timeline_ids

MIGRATION = Path(__file__).resolve().parents[3] / "migrations" / "0016_room_bump.sql"


def d1(server) -> Path:
    dbs = sqlite_with_table(server, "room_bump", kind="d1")
    if not dbs:
        pytest.skip("needs the local D1 files of an instance started here")
    assert len(dbs) == 1, dbs
    return dbs[0]


def test_state_stub_for_state_a_reset_deleted(stratus, user):
    db = d1(stratus)
    base, tok = stratus.base, user["access_token"]
    room = create_room(base, tok, name="Stubs", topic="to be reset away")
    newer = lists_only({"all": room_list(required_state={"include": [{"type": "m.room.name"}, {"type": "m.room.topic"}]})})
    older = lists_only({"all": room_list(required_state=[["m.room.name", ""], ["m.room.topic", ""]])})
    new_pos = sliding(base, tok, newer, conn_id="newer")["pos"]
    old_pos = sliding(base, tok, older, conn_id="older")["pos"]
    # A remote event arrives and state resolution drops the topic (as `graph` records it).
    ev = send(base, tok, room, "the event whose arrival reset the state")
    con = sqlite3.connect(db, timeout=10)
    try:
        (stream,) = con.execute("SELECT stream FROM events WHERE event_id = ?", (ev,)).fetchone()
        con.execute("INSERT INTO state_resets (stream, room_id, type, state_key, event_id) VALUES (?, ?, 'm.room.topic', '', NULL)",
                    (stream, room))
        con.execute("DELETE FROM current_state WHERE room_id = ? AND type = 'm.room.topic'", (room,))
        con.commit()
    finally:
        con.close()

    r = sliding(base, tok, newer, pos=new_pos, conn_id="newer")["rooms"][room]
    assert timeline_ids(r) == [ev]
    assert r["required_state"] == [{"type": "m.room.topic", "state_key": ""}]
    # The pair form is the wire without stubs (Synapse's; matrix-rust-sdk reads every entry
    # as an event): only the timeline.
    r = sliding(base, tok, older, pos=old_pos, conn_id="older")["rooms"][room]
    assert timeline_ids(r) == [ev] and r["required_state"] == []
    # A new connection gets the state as it is now: no topic, no stub.
    r = sliding(base, tok, newer, conn_id="fresh")["rooms"][room]
    assert [e["type"] for e in r["required_state"]] == ["m.room.name"]


def test_room_bump_is_what_its_backfill_computes(stratus, user, user2):
    db = d1(stratus)
    base, tok = stratus.base, user["access_token"]
    a, b = create_room(base, tok), create_room(base, tok, name="b")
    send(base, tok, a, "a message bumps")
    bumped = send(base, tok, b, "so does this")
    # A reaction and a state event do not bump, but are the latest events.
    send(base, tok, b, {"m.relates_to": {"rel_type": "m.annotation", "event_id": bumped, "key": "+1"}}, etype="m.reaction")
    put_state(base, tok, a, "m.room.topic", {"topic": "later"})
    sql = MIGRATION.read_text()
    backfill = re.search(r"INSERT INTO room_bump \(room_id, last_bump, last_event\)\s*(SELECT .*?);", sql, re.S)
    assert backfill, "the migration's backfill statement"
    con = sqlite3.connect(db, timeout=10)
    try:
        computed = sorted(con.execute(backfill.group(1)).fetchall())
        kept = sorted(con.execute("SELECT room_id, last_bump, last_event FROM room_bump").fetchall())
        rows = {r: (bump, last) for r, bump, last in kept}
        (b_msg,) = con.execute("SELECT stream FROM events WHERE event_id = ?", (bumped,)).fetchone()
    finally:
        con.close()
    assert kept == computed
    assert rows[b][0] == b_msg and rows[b][1] > b_msg
    assert rows[a][1] > rows[a][0]
    # The list orders by it: b's message is newer than a's.
    body = sliding(base, tok, lists_only({"all": room_list(ranges=[[0, 1]])}), conn_id="bump")
    assert body["rooms"][b]["bump_stamp"] == b_msg
    assert body["rooms"][a]["bump_stamp"] < b_msg
