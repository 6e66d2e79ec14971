"""The scheduler's jobs, kept in the state database (APScheduler's SQLAlchemyJobStore), so a slot
that passed while the scheduler was down is still known when it starts again."""

from __future__ import annotations

import sqlalchemy as sa
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError


def scheduler_job_store(engine: Engine) -> SQLAlchemyJobStore:
    store = SQLAlchemyJobStore(engine=engine)
    try:
        # Made here, not only when the scheduler starts: two schedulers starting together on a
        # fresh database would otherwise race to create it.
        store.jobs_t.create(engine, checkfirst=True)
    except (OperationalError, IntegrityError, ProgrammingError):
        # The other one made it between the check and the CREATE (SQLite: "table exists";
        # PostgreSQL: a unique violation on its catalogue, or "relation already exists").
        if not sa.inspect(engine).has_table(store.jobs_t.name):
            raise
    return store
