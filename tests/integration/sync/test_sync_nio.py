"""A scripted matrix-nio client that long-polls /sync and sees typing, receipts and unread
counts change as another user acts."""

import asyncio

from nio import AsyncClient, ReceiptEvent, RoomCreateResponse, SyncResponse, TypingNoticeEvent

from matrix_helpers import new_user


async def _flow(base):
    a_info, b_info = new_user(base), new_user(base)
    a = AsyncClient(base, a_info["user_id"])
    b = AsyncClient(base, b_info["user_id"])
    for c, info in ((a, a_info), (b, b_info)):
        c.access_token, c.user_id, c.device_id = info["access_token"], info["user_id"], info["device_id"]
    try:
        created = await a.room_create(name="nio sync", invite=[b.user_id])
        assert isinstance(created, RoomCreateResponse), created
        room = created.room_id
        first = await b.sync(timeout=0)
        assert isinstance(first, SyncResponse), first
        assert room in first.rooms.invite
        await b.join(room)
        s = await b.sync(timeout=0)
        assert room in s.rooms.join

        async def next_sync(pred, timeout_ms=15000, tries=5):
            """Long-polls until `pred(response)` holds."""
            for _ in range(tries):
                r = await b.sync(timeout=timeout_ms, since=b.next_batch)
                assert isinstance(r, SyncResponse), r
                if pred(r):
                    return r
            raise AssertionError("condition never seen in sync")

        # Typing: B's long-poll wakes when A starts typing.
        task = asyncio.create_task(next_sync(lambda r: room in r.rooms.join and any(
            isinstance(e, TypingNoticeEvent) and a.user_id in e.users for e in r.rooms.join[room].ephemeral)))
        await asyncio.sleep(0.3)
        await a.room_typing(room, typing_state=True, timeout=20000)
        await task
        assert a.user_id in b.rooms[room].typing_users

        # Unread counts: two messages from A, one mentioning B.
        await a.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "hello"})
        sent = await a.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "ping",
                                                          "m.mentions": {"user_ids": [b.user_id]}})
        r = await next_sync(lambda r: room in r.rooms.join and r.rooms.join[room].unread_notifications.notification_count == 2)
        assert r.rooms.join[room].unread_notifications.highlight_count == 1

        # B reads: a receipt reaches A, and B's counts drop to zero.
        a_since = (await a.sync(timeout=0)).next_batch
        await b.update_receipt_marker(room, sent.event_id)
        r = await next_sync(lambda r: room in r.rooms.join and r.rooms.join[room].unread_notifications.notification_count == 0)
        assert r.rooms.join[room].unread_notifications.highlight_count == 0
        ra = await a.sync(timeout=15000, since=a_since)
        receipts = [rc for e in ra.rooms.join[room].ephemeral if isinstance(e, ReceiptEvent) for rc in e.receipts]
        assert any(rc.user_id == b.user_id and rc.event_id == sent.event_id for rc in receipts), receipts

        # Typing stops.
        await a.room_typing(room, typing_state=False)
        await next_sync(lambda r: room in r.rooms.join and any(
            isinstance(e, TypingNoticeEvent) and e.users == [] for e in r.rooms.join[room].ephemeral))
    finally:
        await a.close()
        await b.close()


def test_nio_client_sees_typing_receipts_and_unread_counts(base):
    asyncio.run(_flow(base))
