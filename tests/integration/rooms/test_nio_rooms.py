"""Rooms with a real client library (matrix-nio): create, invite, join, send, read back with
/messages, redact, leave. (Sync-driven flows come with /sync.)"""

import asyncio

from nio import (
    AsyncClient,
    JoinResponse,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomLeaveResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomPutStateResponse,
    RoomRedactResponse,
    RoomSendResponse,
    RedactedEvent,
)

from matrix_helpers import new_user


async def _client(base, u):
    c = AsyncClient(base, u["user_id"])
    c.access_token = u["access_token"]
    c.user_id = u["user_id"]
    c.device_id = u["device_id"]
    return c


async def _flow(base):
    a_user, b_user = new_user(base, "nioa"), new_user(base, "niob")
    a, b = await _client(base, a_user), await _client(base, b_user)
    try:
        created = await a.room_create(name="nio room", topic="from nio")
        assert isinstance(created, RoomCreateResponse), created
        room = created.room_id

        inv = await a.room_invite(room, b_user["user_id"])
        assert isinstance(inv, RoomInviteResponse), inv
        joined = await b.join(room)
        assert isinstance(joined, JoinResponse), joined

        sent = []
        for i in range(5):
            r = await a.room_send(room, "m.room.message", {"msgtype": "m.text", "body": f"hello {i}"})
            assert isinstance(r, RoomSendResponse), r
            sent.append(r.event_id)
        r = await b.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "reply"})
        assert isinstance(r, RoomSendResponse), r

        topic = await a.room_put_state(room, "m.room.topic", {"topic": "changed"})
        assert isinstance(topic, RoomPutStateResponse), topic

        red = await a.room_redact(room, sent[0], reason="oops")
        assert isinstance(red, RoomRedactResponse), red

        msgs = await b.room_messages(room, start="", limit=50)
        assert isinstance(msgs, RoomMessagesResponse), msgs
        texts = [e.body for e in msgs.chunk if isinstance(e, RoomMessageText)]
        assert texts == ["reply", "hello 4", "hello 3", "hello 2", "hello 1"], texts
        redacted = [e for e in msgs.chunk if isinstance(e, RedactedEvent)]
        assert [e.event_id for e in redacted] == [sent[0]], msgs.chunk

        left = await b.room_leave(room)
        assert isinstance(left, RoomLeaveResponse), left
    finally:
        await a.close()
        await b.close()


def test_nio_room_flow(base):
    asyncio.run(_flow(base))
