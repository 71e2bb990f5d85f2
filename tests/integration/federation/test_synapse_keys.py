"""Plumbing: Synapse reaches each Stratus instance over TLS on loopback and gets its signing
key (what every federation exchange starts with). Synapse's notary endpoint fetches the key
from the server itself when asked for a key ID it has not cached."""

from __future__ import annotations

import pytest

from fed_helpers import notary_query, server_key


@pytest.mark.parametrize("target", ["stratus", "stratus2", "synapse2"])
def test_synapse_fetches_signing_key_over_tls(hs, target):
    notary, peer = hs("synapse"), hs(target)
    own = server_key(peer)
    assert own["server_name"] == peer.server_name, own
    key_id = next(iter(own["verify_keys"]))
    got = notary_query(notary, peer, key_id)["server_keys"]
    assert got, f"{notary} returned no key for {peer}: it could not fetch {peer.fed_base}/_matrix/key/v2/server\n{notary.log_tail(15)}"
    doc = got[0]
    assert doc["server_name"] == peer.server_name, doc
    assert doc["verify_keys"] == own["verify_keys"], (doc, own)
    # Signed by the server itself (checked by Synapse on fetch) and countersigned by the notary.
    assert key_id in doc["signatures"][peer.server_name], doc
    assert notary.server_name in doc["signatures"], doc
