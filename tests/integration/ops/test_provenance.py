"""Provenance (README "Verifying a deploy"): the running server names the commit it was built
from, and an admin endpoint returns the provenance record it was deployed with."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from stratus_conftest import REPO
from matrix_helpers import admin_register_raw, assert_error, assert_ok, call, new_user, unique_username

RECORD = REPO / "build" / "provenance.json"


def built() -> dict:
    if not RECORD.exists():
        pytest.fail("build/provenance.json is missing: scripts/build.sh writes it (make build)")
    return json.loads(RECORD.read_text())


def test_build_writes_the_provenance_record():
    rec = built()
    assert re.fullmatch(r"[0-9a-f]{40}", rec["commit"]), rec
    assert isinstance(rec["dirty"], bool)
    for k, path in (("wasm_sha256", "build/index_bg.wasm"), ("js_sha256", "build/index.js"), ("cargo_lock_sha256", "Cargo.lock")):
        assert rec[k] == hashlib.sha256((REPO / path).read_bytes()).hexdigest(), k
    for k in ("rustc", "wasm_bindgen", "worker_build", "wasm_opt"):
        assert rec[k] and rec[k] != "unknown", (k, rec)


def test_federation_version_names_the_commit(base):
    rec = built()
    server = assert_ok(call(base, "GET", "/_matrix/federation/v1/version"))["server"]
    assert server["name"] == "Stratus"
    suffix = ".dirty" if rec["dirty"] else ""
    assert re.fullmatch(r"\d+\.\d+\.\d+\+" + rec["commit"] + re.escape(suffix), server["version"]), server


def test_provenance_endpoint_is_for_admins(stratus_factory):
    rec = built()
    server = stratus_factory({"STRATUS_PROVENANCE": json.dumps(rec)})
    u = new_user(server.base, prefix="pv")
    assert_error(call(server.base, "GET", "/_stratus/admin/v1/provenance", token=u["access_token"]), 403, "M_FORBIDDEN")
    assert_error(call(server.base, "GET", "/_stratus/admin/v1/provenance"), 401, "M_MISSING_TOKEN")
    admin = assert_ok(admin_register_raw(server.base, server.shared_secret, unique_username("pva"), admin=True))
    out = assert_ok(call(server.base, "GET", "/_stratus/admin/v1/provenance", token=admin["access_token"]))
    assert out["commit"] == rec["commit"] and out["dirty"] == rec["dirty"]
    assert out["build"] == rec
    assert out["server"]["version"].endswith("+" + rec["commit"] + (".dirty" if rec["dirty"] else ""))
    # Synapse's admin server_version (what synadm shows) names the same build.
    version = assert_ok(call(server.base, "GET", "/_synapse/admin/v1/server_version", token=admin["access_token"]))["server_version"]
    assert version == "Stratus " + out["server"]["version"], version
