"""GET /_matrix/key/v2/server: the server's signed signing-key document."""

import copy
import time

import pytest
from signedjson.key import decode_verify_key_bytes
from signedjson.sign import SignatureVerifyException, verify_signed_json
from unpaddedbase64 import decode_base64

from matrix_helpers import assert_ok, call


@pytest.fixture
def key_doc(base):
    r = call(base, "GET", "/_matrix/key/v2/server")
    return assert_ok(r)


def _verify_keys(doc):
    keys = []
    for key_id, info in doc["verify_keys"].items():
        raw = decode_base64(info["key"])
        keys.append(decode_verify_key_bytes(key_id, raw))
    return keys


def test_shape(key_doc, stratus):
    assert key_doc["server_name"] == stratus.server_name, key_doc
    assert isinstance(key_doc["valid_until_ts"], int), key_doc
    now_ms = int(time.time() * 1000)
    assert key_doc["valid_until_ts"] > now_ms, key_doc
    assert key_doc["old_verify_keys"] == {}, key_doc
    assert isinstance(key_doc["verify_keys"], dict) and key_doc["verify_keys"], key_doc
    for key_id, info in key_doc["verify_keys"].items():
        assert key_id.startswith("ed25519:"), key_id
        assert len(key_id) > len("ed25519:"), key_id
        key = info["key"]
        assert "=" not in key, "key must be unpadded base64"
        assert len(decode_base64(key)) == 32, key


def test_signature_verifies(key_doc):
    server_name = key_doc["server_name"]
    sigs = key_doc["signatures"][server_name]
    assert set(sigs) == set(key_doc["verify_keys"]), key_doc
    for verify_key in _verify_keys(key_doc):
        verify_signed_json(key_doc, server_name, verify_key)


def test_signature_covers_content(key_doc):
    server_name = key_doc["server_name"]
    tampered = copy.deepcopy(key_doc)
    tampered["valid_until_ts"] += 1
    for verify_key in _verify_keys(key_doc):
        with pytest.raises(SignatureVerifyException):
            verify_signed_json(tampered, server_name, verify_key)


def test_key_is_stable_across_requests(base, key_doc):
    again = assert_ok(call(base, "GET", "/_matrix/key/v2/server"))
    assert again["verify_keys"] == key_doc["verify_keys"]


def test_key_matches_signing_key_secret(stratus, key_doc):
    """If SIGNING_KEY is in Synapse's "ed25519 KEYID SEED" format, the published key must match."""
    if not stratus.owned:
        pytest.skip("SIGNING_KEY only known for a locally started server")
    from dev_vars import read_dev_vars

    raw = read_dev_vars().get("SIGNING_KEY", "")
    parts = raw.split()
    if len(parts) != 3 or parts[0] != "ed25519":
        pytest.skip(f"SIGNING_KEY is not in 'ed25519 KEYID SEED' form")
    from signedjson.key import decode_signing_key_base64, get_verify_key
    from unpaddedbase64 import encode_base64

    sk = decode_signing_key_base64("ed25519", parts[1], parts[2])
    expected = encode_base64(get_verify_key(sk).encode())
    assert key_doc["verify_keys"] == {f"ed25519:{parts[1]}": {"key": expected}}, key_doc
