"""Device lists across servers when a peer was away (issue: Federation II, "The peer stopped
while a user adds a device, then restarted: the device-list change arrives (nothing
lost)"). Each over a (local, remote) pair: the device is added on `local` while `remote` is
stopped. Here Stratus→Synapse, Synapse→Stratus and the Synapse→Synapse baseline;
test_stratus_devices.py runs it over Stratus→Stratus2 and Stratus2→Stratus.
"""

from __future__ import annotations

import time

from fed_helpers import api, joined_pair, login_device, ok, signed_device_keys, sync_once, wait_until
from matrix_helpers import CLIENT_V3, call


def test_device_added_while_peer_down_arrives(pair):
    local, remote = pair
    a, b, room = joined_pair(local, remote)
    sync_once(b, 0)
    since = b.since
    remote.stop_process()
    try:
        token, device = login_device(local, a.user_id)
        ok(call(local.base, "POST", f"{CLIENT_V3}/keys/upload", {"device_keys": signed_device_keys(a.user_id, device)}, token=token),
           f"{a}'s new device uploads its keys")
        time.sleep(2)
    finally:
        remote.start_process()

    def changed() -> bool:
        nonlocal since
        r = api(b, "GET", f"{CLIENT_V3}/sync", params={"since": since, "timeout": "2000"})
        body = ok(r, f"{b}'s /sync")
        since = body["next_batch"]
        return a.user_id in body.get("device_lists", {}).get("changed", [])

    wait_until(changed, f"{a} in {b}'s device_lists.changed after {remote} came back", timeout=60)

    def has_device() -> bool:
        body = ok(api(b, "POST", f"{CLIENT_V3}/keys/query", {"device_keys": {a.user_id: []}}), f"{b}'s /keys/query")
        return device in body.get("device_keys", {}).get(a.user_id, {})

    wait_until(has_device, f"{a}'s new device {device} in {b}'s /keys/query", timeout=30)
