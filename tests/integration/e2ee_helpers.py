"""Helpers for the E2EE key API tests: real ed25519 keys (PyNaCl via signedjson) and
correctly signed device keys, one-time keys and cross-signing keys."""

from __future__ import annotations

import base64
import copy
import os
import uuid
from typing import Any

from signedjson.key import encode_verify_key_base64, generate_signing_key
from signedjson.sign import sign_json

from matrix_helpers import CLIENT_V3, assert_ok, call

DEHYDRATED = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


class Signer:
    """An ed25519 key. Its key ID is `ed25519:<version>`; by default the version is the
    public key itself (as for cross-signing keys)."""

    def __init__(self, version: str | None = None):
        self.key = generate_signing_key("v")
        self.public = encode_verify_key_base64(self.key.verify_key)
        self.key.version = version or self.public

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.key.version}"

    def sign(self, obj: dict, user_id: str) -> dict:
        return sign_json(copy.deepcopy(obj), user_id, self.key)


def device_keys(user_id: str, device_id: str, signer: Signer | None = None, **extra: Any) -> tuple[dict, Signer]:
    signer = signer or Signer(device_id)
    dk = {
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"ed25519:{device_id}": signer.public, f"curve25519:{device_id}": b64(os.urandom(32))},
    }
    dk.update(extra)
    return signer.sign(dk, user_id), signer


def one_time_keys(n: int, user_id: str, signer: Signer, fallback: bool = False) -> dict:
    out = {}
    for _ in range(n):
        key = {"key": b64(os.urandom(32))}
        if fallback:
            key["fallback"] = True
        out[f"signed_curve25519:{uuid.uuid4().hex[:12]}"] = signer.sign(key, user_id)
    return out


def upload(base: str, token: str, body: dict):
    return call(base, "POST", f"{CLIENT_V3}/keys/upload", body, token=token)


def query(base: str, token: str, users: dict) -> dict:
    return assert_ok(call(base, "POST", f"{CLIENT_V3}/keys/query", {"device_keys": users}, token=token))


def claim(base: str, token: str, wanted: dict):
    return call(base, "POST", f"{CLIENT_V3}/keys/claim", {"one_time_keys": wanted}, token=token)


def setup_device(base: str, u: dict, otks: int = 0) -> Signer:
    """Uploads signed device keys (and some one-time keys) for the user's device."""
    dk, signer = device_keys(u["user_id"], u["device_id"])
    body: dict = {"device_keys": dk}
    if otks:
        body["one_time_keys"] = one_time_keys(otks, u["user_id"], signer)
    assert_ok(upload(base, u["access_token"], body))
    return signer


class CrossSigning:
    """A user's master, self-signing and user-signing keys, correctly signed."""

    def __init__(self, user_id: str):
        self.user_id = user_id
        self.master = Signer()
        self.ssk = Signer()
        self.usk = Signer()

    def key(self, signer: Signer, usage: str) -> dict:
        k = {"user_id": self.user_id, "usage": [usage], "keys": {signer.key_id: signer.public}}
        return k if usage == "master" else self.master.sign(k, self.user_id)

    def upload_body(self) -> dict:
        return {
            "master_key": self.key(self.master, "master"),
            "self_signing_key": self.key(self.ssk, "self_signing"),
            "user_signing_key": self.key(self.usk, "user_signing"),
        }


def signing_upload(base: str, token: str, body: dict):
    return call(base, "POST", f"{CLIENT_V3}/keys/device_signing/upload", body, token=token)


def signatures_upload(base: str, token: str, body: dict):
    return call(base, "POST", f"{CLIENT_V3}/keys/signatures/upload", body, token=token)
