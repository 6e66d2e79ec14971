"""Subscribers: who gets the issues, who left, when, why and from where.

One subscriber per address, matched by its key (digest.subscribers.address_key: letter case and the
IDNA form of the domain aside); the address is stored as first given. Every status change writes a
row of history (``subscriber_events``) in the same transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from digest.store.records import ImportReport, SubscriberEventRecord, SubscriberRecord, record_from_row
from digest.store.repository import Repository, utcnow
from digest.store.schema import deliveries, subscriber_events, subscribers, suppressions
from digest.subscribers import address_key

s = subscribers.c

_ACTIVE = sa.select(s.email, s.name).where(s.status == "active").order_by(s.email)

#: Statuses that keep someone off the list for a reason outside their own choice.
SUPPRESSED = ("bounced", "complained")


def _listing(status: str | None) -> sa.Select[Any]:
    q = sa.select(subscribers).order_by(s.email)
    return q if status is None else q.where(s.status == status)


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def record_status(conn: Connection, key: str, status: str, *, origin: str, reason: str | None, now: datetime) -> None:
    """Set the status of the subscriber keyed ``key`` and write the change into its history
    (inside the caller's transaction). Nothing is written when the status is already that."""
    changed = conn.execute(
        subscribers.update().where(s.address_key == key, s.status != status).values(status=status, updated_at=now)
    ).rowcount
    if changed:
        conn.execute(
            subscriber_events.insert().values(address_key=key, at=now, status=status, origin=origin, reason=reason)
        )


def _insert_active(
    conn: Connection, email: str, name: str | None, *, origin: str, reason: str | None, now: datetime
) -> bool:
    """Add ``email`` as active with its history row; False when the address is on the list already.
    INSERT … ON CONFLICT DO NOTHING rather than look-then-insert alone: two imports (or the subscriber
    syncs of two first sends) at once then serialise on the row instead of one failing on the key."""
    key = address_key(email)
    # (Imported here: on SQLite, importing the PostgreSQL dialect cost every command 25 ms.)
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = (
        insert(subscribers)
        .values(email=email, name=name, status="active", created_at=now, updated_at=now, address_key=key)
        .on_conflict_do_nothing(index_elements=[s.address_key])
    )
    if not conn.execute(stmt).rowcount:
        return False
    conn.execute(
        subscriber_events.insert().values(address_key=key, at=now, status="active", origin=origin, reason=reason)
    )
    return True


def mark_bounced(conn: Connection, emails: Sequence[str], *, reason: str | None, now: datetime) -> None:
    """Mark the active subscribers among ``emails``, whose delivery bounced, as bounced (inside the
    caller's transaction, with history)."""
    for email in emails:
        key = address_key(email)
        if conn.execute(sa.select(s.status).where(s.address_key == key)).scalar() == "active":
            record_status(conn, key, "bounced", origin="delivery", reason=reason, now=now)


class SubscribersRepository(Repository):
    def _find(self, conn: Connection, key: str) -> SubscriberRecord | None:
        row = conn.execute(sa.select(subscribers).where(s.address_key == key)).first()
        return None if row is None else record_from_row(SubscriberRecord, row)

    def _removed(self, conn: Connection, key: str) -> bool:
        return (
            conn.execute(sa.select(suppressions.c.key_hash).where(suppressions.c.key_hash == _key_hash(key))).first()
            is not None
        )

    def find(self, email: str) -> SubscriberRecord | None:
        """The subscriber with this address (letter case aside), or None."""
        with self.engine.connect() as conn:
            return self._find(conn, address_key(email))

    def is_removed(self, email: str) -> bool:
        """Whether this address was removed from the list (`digest subscribers remove`)."""
        with self.engine.connect() as conn:
            return self._removed(conn, address_key(email))

    def add(
        self,
        rows: Iterable[tuple[str, str | None]],
        *,
        now: datetime | None = None,
        origin: str = "import",
        reason: str | None = None,
    ) -> ImportReport:
        """Add new addresses as active. Existing ones keep their status: an import never
        re-subscribes someone who left, nor anyone removed from the list; the report says so per address."""
        now = now or utcnow()
        report = ImportReport([], [], [])
        with self.engine.begin() as conn:
            for email, name in rows:
                key = address_key(email)
                found = self._find(conn, key)
                if found is not None:
                    if found.status == "active":
                        report.present.append(found.email)
                    else:
                        since = found.updated_at.strftime("%Y-%m-%d")
                        report.kept_out.append((email, f"{found.status} since {since}; not re-subscribed"))
                    continue
                if self._removed(conn, key):
                    report.kept_out.append((email, "removed from the list; not added back"))
                    continue
                if _insert_active(conn, email, name, origin=origin, reason=reason, now=now):
                    report.added.append(email)
                else:  # added by another process a moment ago
                    report.present.append(email)
        return report

    def add_new(self, rows: Iterable[tuple[str, str | None]], *, now: datetime, chunk: int = 50_000) -> None:
        """Add addresses known not to be on the list yet as active, in bulk (one transaction), without
        history; for filling a database fast, e.g. in a benchmark. An address already present is an error."""
        batch: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            for email, name in rows:
                batch.append(
                    {
                        "email": email,
                        "name": name,
                        "status": "active",
                        "created_at": now,
                        "updated_at": now,
                        "address_key": address_key(email),
                    }
                )
                if len(batch) >= chunk:
                    conn.execute(subscribers.insert(), batch)
                    batch = []
            if batch:
                conn.execute(subscribers.insert(), batch)

    def set_status(
        self,
        email: str,
        status: str,
        *,
        now: datetime | None = None,
        origin: str = "cli",
        reason: str | None = None,
    ) -> bool:
        """Set a subscriber's status, recording when, why and from where; False when the address
        is not on the list."""
        key = address_key(email)
        with self.engine.begin() as conn:
            if self._find(conn, key) is None:
                return False
            record_status(conn, key, status, origin=origin, reason=reason, now=now or utcnow())
        return True

    def suppress(
        self, email: str, status: str, *, origin: str, reason: str | None = None, now: datetime | None = None
    ) -> bool:
        """Mark an address ``bounced`` or ``complained`` (whatever its status was: a complaint after an
        unsubscribe is still worth knowing). False when the address is not on the list."""
        if status not in SUPPRESSED:
            raise ValueError(f"suppress: status must be one of {', '.join(SUPPRESSED)}, got {status!r}")
        return self.set_status(email, status, now=now, origin=origin, reason=reason)

    def unsubscribe(
        self, email: str, *, now: datetime | None = None, origin: str = "one-click", reason: str | None = None
    ) -> str:
        """Unsubscribe an address. Returns ``unsubscribed`` when it was active, ``already`` when it
        had already left (or bounced), ``unknown`` when it is not on the list."""
        key = address_key(email)
        with self.engine.begin() as conn:
            found = self._find(conn, key)
            if found is None:
                return "unknown"
            if found.status != "active":
                return "already"
            record_status(conn, key, "unsubscribed", origin=origin, reason=reason, now=now or utcnow())
        return "unsubscribed"

    def resubscribe(
        self, email: str, *, now: datetime | None = None, origin: str = "cli", reason: str | None = None
    ) -> str:
        """Bring someone who left back as active. Returns ``resubscribed``, ``already`` (active) or
        ``unknown``. A removed address is added afresh (its suppression lifted): only a deliberate
        act by the person or the editor calls this."""
        return self._make_active(email, None, now=now, origin=origin, reason=reason, add_new=False)

    def activate(
        self,
        email: str,
        name: str | None,
        *,
        now: datetime | None = None,
        origin: str = "form",
        reason: str | None = None,
    ) -> str:
        """Put a confirmed sign-up on the list: ``added`` when the address is new, ``resubscribed``
        when it had left, bounced or been removed (confirming is the person's own deliberate act),
        ``already`` when it is active. The stored spelling of the address is kept."""
        return self._make_active(email, name, now=now, origin=origin, reason=reason, add_new=True)

    def _make_active(
        self, email: str, name: str | None, *, now: datetime | None, origin: str, reason: str | None, add_new: bool
    ) -> str:
        """Make an address active: one that left gets its status back (and ``name``, when given),
        a removed one is added afresh with its suppression lifted, and an unknown one is added only
        with ``add_new`` (else ``unknown``)."""
        now = now or utcnow()
        key = address_key(email)
        with self.engine.begin() as conn:
            found = self._find(conn, key)
            if found is None:
                removed = self._removed(conn, key)
                if not removed and not add_new:
                    return "unknown"
                if removed:
                    conn.execute(suppressions.delete().where(suppressions.c.key_hash == _key_hash(key)))
                if not _insert_active(conn, email, name, origin=origin, reason=reason, now=now):
                    return "already"  # made active by another process a moment ago
                return "resubscribed" if removed else "added"
            if found.status == "active":
                return "already"
            record_status(conn, key, "active", origin=origin, reason=reason, now=now)
            if name:
                conn.execute(subscribers.update().where(s.address_key == key).values(name=name))
        return "resubscribed"

    def status_of(self, email: str) -> str | None:
        """The status of an address (letter case aside), or None when it is not on the list."""
        found = self.find(email)
        return None if found is None else found.status

    def remove(self, email: str, *, now: datetime | None = None) -> bool:
        """Erase a person: their subscriber row and history; their name and address in past
        deliveries (which stay, anonymised, for the issue counts) and their undelivered ones. Keeps
        only a hash of the address key, so an import cannot add them again. False when unknown."""
        now = now or utcnow()
        key = address_key(email)
        digest = _key_hash(key)
        with self.engine.begin() as conn:
            found = self._find(conn, key)
            if found is None:
                return False
            d = deliveries.c
            conn.execute(deliveries.delete().where(d.email == found.email, d.status.in_(("pending", "retry"))))
            conn.execute(
                deliveries.update()
                .where(d.email == found.email)
                .values(email=f"removed:{digest[:16]}", name=None, detail=None)
            )
            conn.execute(subscriber_events.delete().where(subscriber_events.c.address_key == key))
            conn.execute(subscribers.delete().where(s.address_key == key))
            if not self._removed(conn, key):
                conn.execute(suppressions.insert().values(key_hash=digest, created_at=now))
        return True

    def history(self, email: str) -> list[SubscriberEventRecord]:
        """The status changes of an address, oldest first."""
        e = subscriber_events.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(e.at, e.status, e.origin, e.reason).where(e.address_key == address_key(email)).order_by(e.id)
            )
            return [record_from_row(SubscriberEventRecord, r) for r in rows]

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
