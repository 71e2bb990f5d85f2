"""Durable Object requests of a sliding sync request's extensions (#17): with the to-device
and e2ee extensions on (as matrix-rust-sdk's encryption connection asks), the one-time-key
counts come with the to-device read from the user's `UserSync` object, whose copy every key
upload and claim keeps fresh, so `UserKeys` is not asked; the counts stay right.

The instance runs with ``DEV_COST_HEADER=on`` (``X-Stratus-Cost`` names the objects called)."""

from __future__ import annotations

import pytest

from e2ee_helpers import claim, one_time_keys, setup_device, upload
from matrix_helpers import assert_ok, cost_do_calls, new_user
from sliding_helpers import sliding_raw

BOTH = {"conn_id": "encryption", "extensions": {"to_device": {"enabled": True}, "e2ee": {"enabled": True}}}
E2EE_ONLY = {"conn_id": "e2ee-only", "extensions": {"e2ee": {"enabled": True}}}


@pytest.fixture(scope="module")
def dev(stratus_factory):
    return stratus_factory({"DEV_COST_HEADER": "on", "LOGIN_FAILURES_IP_MAX": "100000"})


def counts(base, token, body, pos=None):
    r = sliding_raw(base, token, body, pos=pos, conn_id=None)
    got = assert_ok(r)
    return got, got["extensions"]["e2ee"]["device_one_time_keys_count"]["signed_curve25519"], cost_do_calls(r)


def test_key_counts_ride_on_the_to_device_read(dev):
    base = dev.base
    alice, bob = new_user(base), new_user(base)
    signer = setup_device(base, alice)
    assert_ok(upload(base, alice["access_token"], {"one_time_keys": one_time_keys(5, alice["user_id"], signer)}))

    first, n, calls = counts(base, alice["access_token"], BOTH)
    assert n == 5
    assert "UserKeys" not in calls, calls
    assert first["extensions"]["to_device"]["events"] == []

    # A claim by someone else refreshes the copy: the next response has 4, still without UserKeys.
    assert_ok(claim(base, bob["access_token"], {alice["user_id"]: {alice["device_id"]: "signed_curve25519"}}))
    _, n, calls = counts(base, alice["access_token"], BOTH, pos=first["pos"])
    assert n == 4
    assert "UserKeys" not in calls, calls


def test_e2ee_without_to_device_still_counts(dev):
    base = dev.base
    carol = new_user(base)
    signer = setup_device(base, carol)
    assert_ok(upload(base, carol["access_token"], {"one_time_keys": one_time_keys(3, carol["user_id"], signer)}))
    _, n, calls = counts(base, carol["access_token"], E2EE_ONLY)
    assert n == 3
    assert calls.get("UserKeys") == 1, calls
