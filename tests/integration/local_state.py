"""The local state of a `wrangler dev` instance the harness started: miniflare keeps D1,
KV and R2 in SQLite files under the state directory. Tests use this to check or arrange
what the HTTP API cannot show (stored hashes, R2 objects, rows written before a check
existed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def sqlite_with_table(server, table: str, kind: str | None = None) -> list[Path] | None:
    """The SQLite files of `server`'s local state that have `table` (only those whose path
    names `kind`, e.g. "d1" or "r2", when given); None when the server is not one started
    here (no state directory to read)."""
    if server.state_dir is None:
        return None
    found = []
    for db in Path(server.state_dir, "persist").rglob("*.sqlite"):
        if kind is not None and kind not in str(db).lower():
            continue
        con = sqlite3.connect(db, timeout=10)
        try:
            tables = {t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
        if table in tables:
            found.append(db)
    return found
