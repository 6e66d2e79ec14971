"""State databases as earlier versions of digest left them, to test the migrations on.

Version 1's tables are frozen in schema_v1.sql (SQLite's own record of what that version made), so
a later change to the tables cannot leak into the "old" database; later versions are reached by
running the migrations themselves, as an upgrade in the field would.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa

from digest.store.schema import MIGRATIONS

V1_DDL = Path(__file__).with_name("schema_v1.sql")


def database_at_version(path: Path, version: int) -> str:
    """A SQLite state database at ``path`` with the schema of ``version``; returns its URL."""
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_DDL.read_text(encoding="utf-8"))
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for step in range(2, version + 1):
            MIGRATIONS[step](conn)
        conn.execute(sa.text("UPDATE meta SET value = :v WHERE key = 'schema_version'"), {"v": str(version)})
    engine.dispose()
    return url
