"""The state database a test uses: a SQLite file in its tmp_path, or — when
$DIGEST_TEST_DATABASE_URL names a PostgreSQL database (scripts/postgres.sh starts one) — a schema
of its own in that database, so tests never see each other's rows."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
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


def deliveries_rows_read(store: Any, action: Callable[[], object]) -> int:
    """Rows of the deliveries table that the plans PostgreSQL ran for ``action`` (on ``store``)
    went through: the rows each scan of the table returned or filtered out, and the pairs a join
    tried and dropped. PostgreSQL reports the plans it ran itself (auto_explain, its notices caught
    in each transaction the action's statements ran in)."""
    plans: list[dict[str, Any]] = []

    def explain_each_statement(conn: sa.Connection) -> None:
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        dbapi.add_notice_handler(lambda notice: plans.append(json.loads(notice.message_primary.split("\n", 1)[1])))
        cursor = dbapi.cursor()  # (beneath SQLAlchemy's events)
        cursor.execute("LOAD 'auto_explain'")
        for setting in ("log_min_duration = 0", "log_analyze = on", "log_format = json", "log_level = notice"):
            cursor.execute(f"SET LOCAL auto_explain.{setting}")
        cursor.close()

    sa.event.listen(store.engine, "begin", explain_each_statement)
    try:
        action()
    finally:
        sa.event.remove(store.engine, "begin", explain_each_statement)
    assert plans, "PostgreSQL reported the plans it ran"
    return sum(_rows_through(p["Plan"]) for p in plans)


def _rows_through(node: dict[str, Any]) -> int:
    loops = node.get("Actual Loops", 1)
    rows = node.get("Rows Removed by Join Filter", 0) * loops
    if node.get("Relation Name") == "deliveries" and node["Node Type"] != "ModifyTable":
        rows += (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * loops
    return rows + sum(_rows_through(child) for child in node.get("Plans", []))


def sqlite_steps(store: Any, action: Callable[[], object], *, per: int) -> int:
    """Virtual-machine steps SQLite takes for ``action`` (on ``store``), in units of ``per``
    (a progress handler on each connection opened meanwhile)."""
    counted = [0]

    def count(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_progress_handler(lambda: counted.__setitem__(0, counted[0] + 1) or 0, per)

    store.engine.dispose()
    sa.event.listen(store.engine, "connect", count)
    try:
        action()
    finally:
        sa.event.remove(store.engine, "connect", count)
        store.engine.dispose()
    return counted[0]
