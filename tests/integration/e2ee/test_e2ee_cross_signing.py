"""Cross-signing (spec: client-server-api, "Cross-signing"): key upload with the MSC3967 UIA
rule, signature upload with every signature verified, and who sees what in /keys/query."""

from __future__ import annotations

from e2ee_helpers import CrossSigning, Signer, query, setup_device, signatures_upload, signing_upload
from matrix_helpers import DEFAULT_PASSWORD, assert_error, assert_ok, call, new_user, password_auth
from rooms_helpers import create_room, invite, join
from sync_helpers import sync


def test_first_upload_needs_no_uia_and_others_see_public_parts(base, user, user2):
    cs = CrossSigning(user["user_id"])
    assert_ok(signing_upload(base, user["access_token"], cs.upload_body()))
    mine = query(base, user["access_token"], {user["user_id"]: []})
    assert mine["master_keys"][user["user_id"]]["keys"] == {cs.master.key_id: cs.master.public}
    assert mine["self_signing_keys"][user["user_id"]]["keys"] == {cs.ssk.key_id: cs.ssk.public}
    assert mine["user_signing_keys"][user["user_id"]]["keys"] == {cs.usk.key_id: cs.usk.public}
    theirs = query(base, user2["access_token"], {user["user_id"]: []})
    assert user["user_id"] in theirs["master_keys"] and user["user_id"] in theirs["self_signing_keys"]
    assert user["user_id"] not in theirs["user_signing_keys"]


def test_replacing_keys_needs_the_password_but_the_same_keys_do_not(base, user):
    cs = CrossSigning(user["user_id"])
    assert_ok(signing_upload(base, user["access_token"], cs.upload_body()))
    # The same keys again: no UIA (a retried request).
    assert_ok(signing_upload(base, user["access_token"], cs.upload_body()))
    new = CrossSigning(user["user_id"])
    r = signing_upload(base, user["access_token"], new.upload_body())
    assert r.status_code == 401 and ["m.login.password"] in [f["stages"] for f in r.json()["flows"]], r.text
    body = dict(new.upload_body(), auth=password_auth(user["user_id"], "wrong password", r.json()["session"]))
    assert signing_upload(base, user["access_token"], body).status_code == 401
    body = dict(new.upload_body(), auth=password_auth(user["user_id"], DEFAULT_PASSWORD, r.json()["session"]))
    assert_ok(signing_upload(base, user["access_token"], body))
    assert query(base, user["access_token"], {user["user_id"]: []})["master_keys"][user["user_id"]]["keys"] == {new.master.key_id: new.master.public}


def test_bad_cross_signing_keys_are_refused(base, user):
    cs = CrossSigning(user["user_id"])
    body = cs.upload_body()
    # Self-signing key signed by some other key.
    body["self_signing_key"] = Signer().sign(cs.key(cs.ssk, "self_signing") | {"signatures": {}}, user["user_id"])
    assert_error(signing_upload(base, user["access_token"], body), 400, "M_INVALID_PARAM")
    # Wrong usage, wrong owner, key ID not the key.
    body = cs.upload_body()
    body["master_key"]["usage"] = ["self_signing"]
    assert_error(signing_upload(base, user["access_token"], body), 400, "M_INVALID_PARAM")
    body = cs.upload_body()
    body["master_key"]["user_id"] = "@else:" + user["user_id"].split(":", 1)[1]
    assert_error(signing_upload(base, user["access_token"], body), 400, "M_INVALID_PARAM")
    body = cs.upload_body()
    body["master_key"]["keys"] = {"ed25519:abc": cs.master.public}
    assert_error(signing_upload(base, user["access_token"], body), 400, "M_INVALID_PARAM")
    # No master key at all.
    assert_error(signing_upload(base, user["access_token"], {"self_signing_key": cs.key(cs.ssk, "self_signing")}), 400, "M_INVALID_PARAM")
    assert query(base, user["access_token"], {user["user_id"]: []})["master_keys"] == {}


def test_signatures_are_verified_stored_and_shown(base, user, user2):
    alice, bob = user, user2
    a_dev = setup_device(base, alice)
    a_cs, b_cs = CrossSigning(alice["user_id"]), CrossSigning(bob["user_id"])
    assert_ok(signing_upload(base, alice["access_token"], a_cs.upload_body()))
    assert_ok(signing_upload(base, bob["access_token"], b_cs.upload_body()))
    dk = query(base, alice["access_token"], {alice["user_id"]: []})["device_keys"][alice["user_id"]][alice["device_id"]]
    dk.pop("unsigned", None)

    # Alice's self-signing key signs her device; her device signs her master key; her
    # user-signing key signs Bob's master key. One forged signature fails alone.
    signed_dev = a_cs.ssk.sign(dk, alice["user_id"])
    master = a_cs.key(a_cs.master, "master")
    signed_master = a_dev.sign(master, alice["user_id"])
    bob_master = b_cs.key(b_cs.master, "master")
    signed_bob = a_cs.usk.sign(bob_master, alice["user_id"])
    forged_bob = Signer(a_cs.usk.key.version).sign(bob_master, alice["user_id"])
    r = assert_ok(signatures_upload(base, alice["access_token"], {
        alice["user_id"]: {alice["device_id"]: signed_dev, a_cs.master.public: signed_master},
        bob["user_id"]: {b_cs.master.public: signed_bob},
    }))
    assert r["failures"] == {}, r
    r = assert_ok(signatures_upload(base, alice["access_token"], {bob["user_id"]: {b_cs.master.public: forged_bob}}))
    assert r["failures"][bob["user_id"]][b_cs.master.public]["errcode"] == "M_INVALID_SIGNATURE"

    q = query(base, bob["access_token"], {alice["user_id"]: [], bob["user_id"]: []})
    dev_sigs = q["device_keys"][alice["user_id"]][alice["device_id"]]["signatures"][alice["user_id"]]
    assert dev_sigs[a_cs.ssk.key_id] == signed_dev["signatures"][alice["user_id"]][a_cs.ssk.key_id]
    assert f"ed25519:{alice['device_id']}" in q["master_keys"][alice["user_id"]]["signatures"][alice["user_id"]]
    # Alice's signature on Bob's master key: Alice sees it, Bob... only the signer and the
    # owner's own signatures are shown, so a third user does not see it.
    q_alice = query(base, alice["access_token"], {bob["user_id"]: []})
    assert a_cs.usk.key_id in q_alice["master_keys"][bob["user_id"]]["signatures"][alice["user_id"]]
    carol = new_user(base, "carol")
    q_carol = query(base, carol["access_token"], {bob["user_id"]: []})
    assert alice["user_id"] not in q_carol["master_keys"][bob["user_id"]].get("signatures", {})


def test_signature_upload_failures(base, user, user2):
    setup_device(base, user)
    cs = CrossSigning(user["user_id"])
    assert_ok(signing_upload(base, user["access_token"], cs.upload_body()))
    dk = query(base, user["access_token"], {user["user_id"]: []})["device_keys"][user["user_id"]][user["device_id"]]
    dk.pop("unsigned", None)
    # Signed by a key that is not the self-signing key; a changed object; an unknown device;
    # another user's device (only master keys of others can be signed).
    wrong = Signer(cs.ssk.key.version).sign(dk, user["user_id"])
    changed = cs.ssk.sign(dict(dk, algorithms=["x"]), user["user_id"])
    setup_device(base, user2)
    r = assert_ok(signatures_upload(base, user["access_token"], {
        user["user_id"]: {user["device_id"]: wrong, "NOSUCHDEVICE": cs.ssk.sign(dk, user["user_id"])},
        user2["user_id"]: {user2["device_id"]: {"x": 1}},
    }))
    f = r["failures"]
    assert f[user["user_id"]][user["device_id"]]["errcode"] == "M_INVALID_SIGNATURE"
    assert f[user["user_id"]]["NOSUCHDEVICE"]["errcode"] == "M_NOT_FOUND"
    assert user2["user_id"] in f
    r = assert_ok(signatures_upload(base, user["access_token"], {user["user_id"]: {user["device_id"]: changed}}))
    assert r["failures"][user["user_id"]][user["device_id"]]["errcode"] == "M_INVALID_SIGNATURE"
    sigs = query(base, user2["access_token"], {user["user_id"]: []})["device_keys"][user["user_id"]][user["device_id"]]["signatures"][user["user_id"]]
    assert list(sigs) == [f"ed25519:{user['device_id']}"]
    assert_error(call(base, "POST", "/_matrix/client/v3/keys/signatures/upload", [], token=user["access_token"]), 400, "M_BAD_JSON")


def test_cross_signing_changes_reach_room_members(base, user, user2):
    room = create_room(base, user["access_token"])
    invite(base, user["access_token"], room, user2["user_id"])
    join(base, user2["access_token"], room)
    since = sync(base, user["access_token"])["next_batch"]
    assert_ok(signing_upload(base, user2["access_token"], CrossSigning(user2["user_id"]).upload_body()))
    body = sync(base, user["access_token"], since)
    assert user2["user_id"] in body["device_lists"]["changed"]


def test_oauth_sessions_approve_a_reset_in_the_account_page(base):
    """Spec v1.17 "OAuth authentication": an OAuth 2.0 session replacing its cross-signing
    keys gets the `m.oauth` stage, whose URL the user opens to approve that one reset."""
    import sys
    from pathlib import Path

    import requests

    # The OAuth flow helpers live beside the OAuth tests; importable when e2ee runs alone too.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "oauth"))
    from test_oauth import hidden, register_client, signed_in

    user, f, token = signed_in(base, register_client(base)["client_id"], "oauthcs")
    at = token["access_token"]
    assert_ok(signing_upload(base, at, CrossSigning(user["user_id"]).upload_body()))  # first: no UIA

    new = CrossSigning(user["user_id"])
    r = signing_upload(base, at, new.upload_body())
    assert r.status_code == 401, r.text
    uia = r.json()
    assert [fl["stages"] for fl in uia["flows"]] == [["m.oauth"]]
    url = uia["params"]["m.oauth"]["url"]
    assert "action=org.matrix.cross_signing_reset" in url
    path = url[url.index("/account"):]

    # Not approved yet: neither the bare session nor claiming the stage completes it, and the
    # password is not a stage offered to OAuth sessions.
    for auth in ({"session": uia["session"]}, {"type": "m.oauth", "session": uia["session"]}):
        r = signing_upload(base, at, dict(new.upload_body(), auth=auth))
        assert r.status_code == 401 and r.json()["session"] == uia["session"], r.text
    r = signing_upload(base, at, dict(new.upload_body(), auth=password_auth(user["user_id"], DEFAULT_PASSWORD, uia["session"])))
    assert r.status_code == 401 and r.json().get("errcode") == "M_UNRECOGNIZED", r.text

    # Another user's browser cannot approve it.
    _, g, _ = signed_in(base, register_client(base)["client_id"], "oauthother")
    assert g.browser.get(base + path, timeout=30).status_code == 404

    # A browser that is not signed in signs in first and comes back to the same page.
    b = requests.Session()
    r = b.get(base + path, timeout=30)
    assert r.status_code == 200 and 'name="password"' in r.text
    r = b.post(f"{base}/account", data={"action": "login", "csrf": hidden(r.text, "csrf"), "next": hidden(r.text, "next"),
                                         "username": user["username"], "password": DEFAULT_PASSWORD}, allow_redirects=False, timeout=30)
    assert r.status_code == 303 and "session=" in r.headers["Location"]
    page = b.get(base + r.headers["Location"], timeout=30)
    assert page.status_code == 200 and "Approve the reset" in page.text
    # Without the CSRF token nothing is approved.
    r = b.post(f"{base}/account", data={"action": "org.matrix.cross_signing_reset", "session": uia["session"]}, timeout=30)
    assert r.status_code == 403
    r = b.post(f"{base}/account", data={"action": "org.matrix.cross_signing_reset", "session": uia["session"], "csrf": hidden(page.text, "csrf")}, timeout=30)
    assert r.status_code == 200 and "approved" in r.text

    assert_ok(signing_upload(base, at, dict(new.upload_body(), auth={"session": uia["session"]})))
    keys = query(base, at, {user["user_id"]: []})
    assert keys["master_keys"][user["user_id"]]["keys"] == {new.master.key_id: new.master.public}
    # The approval was for that one reset: the next one asks again.
    assert signing_upload(base, at, CrossSigning(user["user_id"]).upload_body()).status_code == 401
