"""The state database a test uses: a SQLite file in its tmp_path, or — when
$DIGEST_TEST_DATABASE_URL names a PostgreSQL database (scripts/postgres.sh starts one) — a schema
of its own in that database, so tests never see each other's rows."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

TEST_DATABASE_ENV = "DIGEST_TEST_DATABASE_URL"
_made: list[str] = []


def server_url() -> str | None:
    return os.environ.get(TEST_DATABASE_ENV) or None


def state_url(tmp_path: Path, name: str = "state.sqlite3") -> str:
    """The URL of the test's state database (the same one for the same tmp_path)."""
    server = server_url()
    if server is None:
        return f"sqlite:///{tmp_path / name}"
    schema = "t_" + hashlib.sha1(f"{tmp_path}/{name}".encode()).hexdigest()[:16]
    if schema not in _made:
        engine = sa.create_engine(server)
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        engine.dispose()
        _made.append(schema)
    sep = "&" if "?" in server else "?"
    return f"{server}{sep}options={quote(f'-csearch_path={schema}')}"


def state_toml(tmp_path: Path) -> str:
    """The ``[state]`` table that points a test's config at its database ('' for SQLite: the
    default file beside the config)."""
    return "" if server_url() is None else f'\n[state]\nurl = "{state_url(tmp_path)}"\n'


def drop_schemas() -> None:
    server = server_url()
    if server is None or not _made:
        return
    engine = sa.create_engine(server)
    with engine.begin() as conn:
        for schema in _made:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()
    _made.clear()
