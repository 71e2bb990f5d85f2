"""Plumbing: the two Stratus instances serve their federation API over TLS with the test
certificate, under their own names and with distinct signing keys."""

from __future__ import annotations

from fed_helpers import server_key


def test_two_stratus_instances_have_distinct_names_and_keys(hs):
    a, b = hs("stratus"), hs("stratus2")
    ka, kb = server_key(a), server_key(b)
    assert a.fed_base.startswith("https://") and b.fed_base.startswith("https://")
    assert ka["server_name"] == a.server_name and kb["server_name"] == b.server_name
    assert a.server_name != b.server_name
    assert set(ka["verify_keys"]) and set(kb["verify_keys"])
    pub_a = {v["key"] for v in ka["verify_keys"].values()}
    pub_b = {v["key"] for v in kb["verify_keys"].values()}
    assert not pub_a & pub_b, "both instances sign with the same key (SIGNING_KEY from .dev.vars not overridden)"
