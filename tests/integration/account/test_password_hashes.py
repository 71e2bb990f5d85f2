"""Password hashes are PBKDF2-HMAC-SHA256 in `$pbkdf2-sha256$i=N$salt$hash` form, derived in
the Worker by WebCrypto (or in wasm past workerd's 100,000-iteration limit). The bytes must
be the standard ones: a hash the Worker stores verifies with Python's hashlib, and hashes
made elsewhere (older Stratus, any PBKDF2) log in, at and above WebCrypto's limit."""

import base64
import hashlib
import os
import sqlite3

import pytest

from local_state import sqlite_with_table
from matrix_helpers import DEFAULT_PASSWORD, assert_error, login, login_raw, new_user


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode().rstrip("=")


def unb64(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4))


def d1_users(stratus):
    """The local D1 file that holds the users table."""
    dbs = sqlite_with_table(stratus, "users")
    if not dbs:
        pytest.skip("needs the local D1 files of an instance started here")
    return dbs[0]


def stored_hash(db, user_id):
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute("SELECT password_hash FROM users WHERE user_id = ?", (user_id,)).fetchone()[0]
    finally:
        con.close()


def set_hash(db, user_id, value):
    con = sqlite3.connect(db, timeout=10)
    try:
        con.execute("UPDATE users SET password_hash = ? WHERE user_id = ?", (value, user_id))
        con.commit()
    finally:
        con.close()


def test_stored_hash_is_standard_pbkdf2(stratus):
    db = d1_users(stratus)
    u = new_user(stratus.base)
    _, algo, it, salt, digest = stored_hash(db, u["user_id"]).split("$")
    assert algo == "pbkdf2-sha256"
    iterations = int(it.removeprefix("i="))
    want = hashlib.pbkdf2_hmac("sha256", DEFAULT_PASSWORD.encode(), unb64(salt), iterations, 32)
    assert unb64(digest) == want


@pytest.mark.parametrize("iterations", [1000, 100_000, 150_000])
def test_hashes_made_elsewhere_log_in(stratus, iterations):
    db = d1_users(stratus)
    u = new_user(stratus.base)
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", b"a different password", salt, iterations, 32)
    set_hash(db, u["user_id"], f"$pbkdf2-sha256$i={iterations}${b64(salt)}${b64(digest)}")
    assert_error(login_raw(stratus.base, {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": u["user_id"]}, "password": DEFAULT_PASSWORD}), 403, "M_FORBIDDEN")
    out = login(stratus.base, u["user_id"], "a different password")
    assert out["user_id"] == u["user_id"]


def test_a_hash_of_another_cost_is_made_again_at_login(stratus):
    """The cost is a per-plan choice (`PASSWORD_PBKDF2_ITERATIONS`, issue #17): a hash of another
    cost still logs in, and that login stores the password again at the configured cost; a
    wrong password changes nothing."""
    db = d1_users(stratus)
    u = new_user(stratus.base)
    configured = stored_hash(db, u["user_id"]).split("$")[2]
    salt = os.urandom(16)
    old = f"$pbkdf2-sha256$i=1000${b64(salt)}${b64(hashlib.pbkdf2_hmac('sha256', b'old cost', salt, 1000, 32))}"
    set_hash(db, u["user_id"], old)
    assert_error(login_raw(stratus.base, {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": u["user_id"]}, "password": "wrong"}), 403, "M_FORBIDDEN")
    assert stored_hash(db, u["user_id"]) == old
    login(stratus.base, u["user_id"], "old cost")
    _, _, it, new_salt, digest = stored_hash(db, u["user_id"]).split("$")
    assert it == configured and it != "i=1000"
    assert unb64(digest) == hashlib.pbkdf2_hmac("sha256", b"old cost", unb64(new_salt), int(it.removeprefix("i=")), 32)
    assert login(stratus.base, u["user_id"], "old cost")["user_id"] == u["user_id"]
