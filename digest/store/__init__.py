"""State through SQLAlchemy Core: articles, issues, deliveries, subscribers, sources, leases.

SQLite (WAL mode) by default; any SQLAlchemy URL works, PostgreSQL included. No state that a
second process would need is kept in memory: every decision that matters is made in the database.
Only this package knows SQL: each repository hands out typed records (digest.store.records) or
plain data (digest.models), never rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from digest.errors import StateError, os_reason
from digest.store.articles import ArticlesRepository
from digest.store.deliveries import DeliveriesRepository
from digest.store.edits import EditsRepository
from digest.store.feedback import FeedbackRepository
from digest.store.issues import IssuesRepository
from digest.store.jobs import scheduler_job_store
from digest.store.leases import LeasesRepository, MetaRepository
from digest.store.schema import migrate
from digest.store.sources import SourcesRepository
from digest.store.subscribers import SubscribersRepository

__all__ = ["Store", "state_error_line"]


def state_error_line(exc: BaseException) -> str | None:
    """One line for an error the state database raised mid-command — never its SQL or values —
    or None when ``exc`` is not one. A conflict means another digest process (a second send, an
    import) wrote the same records at the same moment."""
    if isinstance(exc, IntegrityError):
        return (
            "another digest process (a send or an import) changed the same records at the same moment; "
            "this one stopped there and changed nothing more: run it again"
        )
    if isinstance(exc, OperationalError) and "locked" in str(exc.orig):
        return "the state database is busy with another digest process; run the command again in a moment"
    if isinstance(exc, SQLAlchemyError):
        return f"state database error ({exc.__class__.__name__}); rerun with --debug for details"
    return None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


_SQLITE_HEADER = b"SQLite format 3\x00"


def _refuse_foreign_file(path: Path) -> None:
    """A state file that exists must be a SQLite database: SQLite would take an empty file for a
    new database (forgetting every issue sent) and fail later on any other file."""
    try:
        with path.open("rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return  # a new database
    except OSError as exc:
        raise StateError(f"state database {path}: cannot read it: {os_reason(exc)}") from None
    if head != _SQLITE_HEADER:
        what = "is empty" if not head else "is not a SQLite database"
        raise StateError(
            f"state database {path} {what}, so it is not digest's state; "
            "move it aside (or give [state] url another file) and digest makes a new one"
        )


class Store:
    """The state database. Create with a SQLAlchemy URL; the schema is made, or migrated, on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if url.startswith("sqlite:///"):
                db_path = url.removeprefix("sqlite:///")
                if db_path and db_path != ":memory:":
                    _refuse_foreign_file(Path(db_path))
                    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            # hide_parameters: no error message or traceback ever carries a row's values
            # (subscribers' names and addresses).
            self.engine: Engine = sa.create_engine(url, future=True, hide_parameters=True)
            if self.engine.dialect.name == "sqlite":
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            migrate(self.engine, where=self.safe_url)
        except SQLAlchemyError as exc:
            raise StateError(
                f"state database {self.safe_url}: {exc.__class__.__name__}: {exc.args[0] if exc.args else exc}"
            ) from None
        except OSError as exc:
            raise StateError(f"state database {self.safe_url}: {exc}") from None
        self.articles = ArticlesRepository(self.engine)
        self.issues = IssuesRepository(self.engine)
        self.deliveries = DeliveriesRepository(self.engine)
        self.subscribers = SubscribersRepository(self.engine)
        self.sources = SourcesRepository(self.engine)
        self.leases = LeasesRepository(self.engine)
        self.meta = MetaRepository(self.engine)
        self.edits = EditsRepository(self.engine)
        self.feedback = FeedbackRepository(self.engine)

    @property
    def safe_url(self) -> str:
        """The database URL with its password hidden, for messages."""
        try:
            return sa.engine.make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - only for messages
            return "(unparseable URL)"

    def shared_with(self, config: str) -> str | None:
        """One state database per newsletter: the first config file to open it is recorded as its
        owner. A warning when ``config`` is another one (two newsletters sharing a database mix
        their articles, issues and subscribers); None when it is the owner, or when the owner's
        file is gone (renamed or moved: ``config`` takes over)."""
        owner = self.meta.claim_owner(config)
        if owner == config:
            return None
        if not Path(owner).exists():
            self.meta.set_owner(config)
            return None
        return (
            f"state database {self.safe_url} belongs to {owner}, not {config}: two configs share one state "
            "(articles, issues, subscribers); give this one its own [state] url, or use the other config"
        )

    def scheduler_jobs(self) -> SQLAlchemyJobStore:
        """APScheduler's job store in this database (its own table, made when missing)."""
        return scheduler_job_store(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
