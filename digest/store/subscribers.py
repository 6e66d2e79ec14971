"""Subscribers: who gets the issues, and who left."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from digest.store.records import SubscriberRecord, record_from_row
from digest.store.repository import Repository, utcnow
from digest.store.schema import subscribers

_ACTIVE = (
    sa.select(subscribers.c.email, subscribers.c.name)
    .where(subscribers.c.status == "active")
    .order_by(subscribers.c.email)
)


def _listing(status: str | None) -> sa.Select[Any]:
    q = sa.select(subscribers).order_by(subscribers.c.email)
    return q if status is None else q.where(subscribers.c.status == status)


class SubscribersRepository(Repository):
    def add(self, rows: Iterable[tuple[str, str | None]], *, now: datetime | None = None) -> tuple[int, int]:
        """Add new addresses as active; existing ones keep their status (an import never
        re-subscribes someone who left). Returns (added, already_present)."""
        now = now or utcnow()
        added = present = 0
        # INSERT … ON CONFLICT DO NOTHING rather than look-then-insert: two imports (or the
        # subscriber sync of two first sends) at once then serialise on the row instead of one
        # failing on the unique address.
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(subscribers).on_conflict_do_nothing(index_elements=[subscribers.c.email])
        with self.engine.begin() as conn:
            for email, name in rows:
                done = conn.execute(
                    stmt.values(email=email, name=name, status="active", created_at=now, updated_at=now)
                ).rowcount
                added += done
                present += 1 - done
        return added, present

    def add_new(self, rows: Iterable[tuple[str, str | None]], *, now: datetime, chunk: int = 50_000) -> None:
        """Add addresses known not to be on the list yet as active, in bulk (one transaction);
        for filling a database fast, e.g. in a benchmark. An address already present is an error."""
        batch: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            for email, name in rows:
                batch.append({"email": email, "name": name, "status": "active", "created_at": now, "updated_at": now})
                if len(batch) >= chunk:
                    conn.execute(subscribers.insert(), batch)
                    batch = []
            if batch:
                conn.execute(subscribers.insert(), batch)

    def set_status(self, email: str, status: str, *, now: datetime | None = None) -> bool:
        """Set a subscriber's status; False when the address is not on the list."""
        with self.engine.begin() as conn:
            result = conn.execute(
                subscribers.update()
                .where(subscribers.c.email == email)
                .values(status=status, updated_at=now or utcnow())
            )
        return bool(result.rowcount)

    def all(self, status: str | None = None) -> list[SubscriberRecord]:
        """Every subscriber (or those with ``status``), by address."""
        with self.engine.connect() as conn:
            return [record_from_row(SubscriberRecord, r) for r in conn.execute(_listing(status))]

    def stream(self, status: str | None = None, chunk: int = 2000) -> Iterator[SubscriberRecord]:
        """Like :meth:`all`, streamed from the database a chunk at a time."""
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=chunk).execute(_listing(status)):
                yield record_from_row(SubscriberRecord, row)

    def active_recipients(self) -> list[tuple[str, str | None]]:
        """(email, name) of the active subscribers, by address."""
        with self.engine.connect() as conn:
            return [(r.email, r.name) for r in conn.execute(_ACTIVE)]

    def iter_active_recipients(self, chunk: int = 2000) -> Iterator[tuple[str, str | None]]:
        """The active subscribers, streamed from the database a chunk at a time."""
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=chunk).execute(_ACTIVE):
                yield row.email, row.name

    def unsubscribe(self, email: str, *, now: datetime | None = None) -> str:
        """Unsubscribe an address in one statement. Returns ``unsubscribed`` when it was active,
        ``already`` when it had already left (or bounced), ``unknown`` when it is not on the list."""
        same_address = sa.func.lower(subscribers.c.email) == email.lower()
        with self.engine.begin() as conn:
            changed = conn.execute(
                subscribers.update()
                .where(same_address, subscribers.c.status == "active")
                .values(status="unsubscribed", updated_at=now or utcnow())
            ).rowcount
            if changed:
                return "unsubscribed"
            exists = conn.execute(sa.select(subscribers.c.email).where(same_address)).first()
        return "already" if exists else "unknown"

    def activate(self, email: str, name: str | None, *, now: datetime | None = None) -> str:
        """Put a confirmed sign-up on the list: ``added`` when the address is new,
        ``resubscribed`` when it had left (or bounced), ``already`` when it is active. Matched
        case-insensitively; the stored spelling is kept."""
        now = now or utcnow()
        same_address = sa.func.lower(subscribers.c.email) == email.lower()
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(subscribers.c.email, subscribers.c.status).where(same_address)).first()
            if found is None:
                conn.execute(
                    subscribers.insert().values(email=email, name=name, status="active", created_at=now, updated_at=now)
                )
                return "added"
            if found.status == "active":
                return "already"
            values: dict[str, Any] = {"status": "active", "updated_at": now}
            if name:
                values["name"] = name
            conn.execute(subscribers.update().where(subscribers.c.email == found.email).values(**values))
        return "resubscribed"

    def status_of(self, email: str) -> str | None:
        """The status of an address (matched case-insensitively), or None when it is not on the list."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(subscribers.c.status).where(sa.func.lower(subscribers.c.email) == email.lower())
            ).scalar()
