"""Deliveries: one row per issue × recipient. The ledger's queries (protocol in
digest.delivery.ledger), and what `digest status` and the send loop read of them."""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from digest.errors import StateError
from digest.models import DeliveryResult
from digest.store.records import DeliveryRecord, record_from_row
from digest.store.repository import Repository
from digest.store.schema import UTCDateTime, deliveries, issues, subscribers
from digest.store.subscribers import mark_bounced

d = deliveries
# What a delivery leaving the in-flight state drops.
_NOT_IN_FLIGHT = {"owner": None, "claim": None, "lease_until": None, "handed": False}
_LEFT = "subscriber left before delivery"


# The rows a sender's claim still holds (each statement below writes only those).
_HELD = (
    d.c.issue_key == sa.bindparam("b_key"),
    d.c.email == sa.bindparam("b_email"),
    d.c.claim == sa.bindparam("b_claim"),
)
# Recording an outcome runs once per message (each is committed as the server answers it), so the
# statement is built once: building it per call cost more CPU than executing it.
_RECORD = (
    d.update()
    .where(*_HELD)
    .values(
        status=sa.bindparam("b_status"),
        message_id=sa.bindparam("b_message_id"),
        detail=sa.bindparam("b_detail"),
        next_attempt=sa.bindparam("b_next", type_=UTCDateTime),
        attempts=d.c.attempts + 1,
        updated_at=sa.bindparam("b_now", type_=UTCDateTime),
        **_NOT_IN_FLIGHT,
    )
)
# A claimed delivery's message is about to go out: marked (and committed) before its content
# ends, so a crash leaves exactly the messages that may have arrived marked.
_HAND_OVER = d.update().where(*_HELD).values(handed=True)


def _outcome_params(
    key: str,
    claim: str,
    outcomes: Sequence[tuple[DeliveryResult, datetime | None]],
    now: Any,
    moment: Callable[[datetime], Any],
) -> list[dict[str, Any]]:
    """_RECORD's parameters for each outcome; ``moment`` turns a next attempt into what the
    statement takes (as ``now`` already was)."""
    return [
        {
            "b_key": key,
            "b_claim": claim,
            "b_now": now,
            "b_email": r.recipient,
            "b_status": r.status,
            "b_message_id": r.message_id,
            "b_detail": r.detail,
            "b_next": None if nxt is None else moment(nxt),
        }
        for r, nxt in outcomes
    ]


def _hand_over_params(key: str, claim: str, emails: Sequence[str]) -> list[dict[str, Any]]:
    return [{"b_key": key, "b_claim": claim, "b_email": e} for e in emails]


class _DriverStatement:
    """A statement compiled once for the engine's driver, executed with plain parameter rows."""

    def __init__(self, statement: sa.Update, engine: Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = compiled.string
        # The statement's own literals (the 1 of attempts + 1, the true of handed = true).
        self.fixed = {k: v for k, v in compiled.params.items() if not k.startswith("b_")}
        # Positional drivers (SQLite's "?") take tuples in the statement's order; named ones dicts.
        order = list(compiled.positiontup or ()) if compiled.positional else []
        self._pick = operator.itemgetter(*order) if len(order) > 1 else None

    def rows(self, params: list[dict[str, Any]]) -> list[Any]:
        fixed, pick = self.fixed, self._pick
        if pick is None:
            return [{**p, **fixed} for p in params]
        return [pick({**p, **fixed}) for p in params]


def _one_round_trip(dbapi_connection: Any) -> Callable[[], AbstractContextManager[Any]]:
    """What sends a transaction's statements and its commit to the server together: psycopg's
    pipeline mode, where the driver and its libpq (14 and later) have it; otherwise nothing (each
    executemany and the commit took a round trip of their own; SQLite has none)."""
    pipeline = getattr(dbapi_connection, "pipeline", None)
    if pipeline is None:
        return nullcontext
    # (psycopg, the driver of this connection, is loaded; an optional dependency, so not imported here)
    driver = sys.modules[type(dbapi_connection).__module__.partition(".")[0]]
    return pipeline if driver.Pipeline.is_supported() else nullcontext


class OutcomeWriter:
    """Writes one message's (or a few messages') outcomes per transaction, as fast as the driver
    allows: the send records every message as its server answers it, so this runs thousands of
    times a second. It keeps a connection of its own and the UPDATE compiled once for the
    database's driver, and hands the driver plain parameter rows (SQLAlchemy's per-execution work,
    which cost more CPU than the write itself, is skipped). Use it from one thread at a time;
    the connection is opened on first use, in the thread that writes."""

    def __init__(self, engine: Engine, key: str) -> None:
        self.engine = engine
        self.key = key
        self._record = _DriverStatement(_RECORD, engine)
        self._hand_over = _DriverStatement(_HAND_OVER, engine)
        self._moment = UTCDateTime().bind_processor(engine.dialect) or (lambda v: v)
        self._conn: Any = None
        self._together: Callable[[], AbstractContextManager[Any]] = nullcontext

    def write(
        self,
        claim: str,
        outcomes: Sequence[tuple[DeliveryResult, datetime | None]],
        *,
        now: datetime,
        handed: Sequence[str] = (),
    ) -> None:
        """Record outcomes (result, next attempt for a retry) of deliveries still held under
        ``claim``, and mark the ``handed`` ones as on their way, in one transaction. A database
        error is a StateError naming no value."""
        if not outcomes and not handed:
            return
        moment = self._moment
        results = self._record.rows(_outcome_params(self.key, claim, outcomes, moment(now), moment))
        marks = self._hand_over.rows(_hand_over_params(self.key, claim, handed))
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        try:
            if self._conn is None:
                self._conn = self.engine.raw_connection()
                self._together = _one_round_trip(self._conn.dbapi_connection)
            with self._together():
                cursor = self._conn.cursor()
                try:
                    if results:
                        cursor.executemany(self._record.sql, results)
                    if marks:
                        cursor.executemany(self._hand_over.sql, marks)
                finally:
                    cursor.close()
                self._conn.commit()
        except dbapi_error as exc:
            self._discard()
            raise StateError(
                f"state database error while recording delivery outcomes ({exc.__class__.__name__}); "
                "the send stops and resumes from what was recorded"
            ) from None

    def _discard(self) -> None:
        """Give the connection back (the pool rolls back, or drops a broken one); the next write
        opens another."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already failing; the first error is the one reported
                pass

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _claim_on_postgresql(
    conn: sa.Connection,
    key: str,
    status: str,
    order: sa.ColumnElement[Any],
    extra: sa.ColumnElement[bool] | None,
    limit: int,
    values: dict[str, Any],
) -> int:
    """Claim up to ``limit`` of an issue's deliveries in ``status`` on PostgreSQL: pick and lock
    them, skipping rows another sender's claim has locked (so concurrent senders take different
    deliveries instead of queueing on the same ones), then update exactly those rows by their
    place in the table (``ctid``, which stays while they are locked). Each step reads the batch,
    never the whole issue, whatever the planner's statistics say: the status is written into the
    pick, so its plan is the index of pending deliveries; the update is a TID scan. (As one
    statement with the pick as a subquery, planned while the statistics knew none of a new
    issue's deliveries, a claim read every pending delivery and matched each against the pick:
    a second per claim in an issue of 20,000.)"""
    cond = [d.c.issue_key == key, d.c.status == sa.bindparam("pick_status", status, literal_execute=True)]
    if extra is not None:
        cond.append(extra)
    picked: list[str] = list(
        conn.execute(
            sa.select(sa.literal_column("ctid", sa.Text))
            .where(*cond)
            .order_by(order)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    if not picked:
        return 0
    # (The rows are locked by this transaction since the pick: they are still as picked.)
    return conn.execute(
        d.update().where(sa.text("ctid = ANY(CAST(:picked AS tid[]))").bindparams(picked=picked)).values(**values)
    ).rowcount


class DeliveriesRepository(Repository):
    def claim(
        self,
        key: str,
        *,
        owner: str,
        claim: str,
        limit: int,
        now: datetime,
        lease_until: datetime,
        handed: bool = True,
    ) -> list[tuple[str, str | None, int]]:
        """Move up to ``limit`` deliveries that are due (pending, or retry whose time has come) to
        ``inflight`` under ``claim``, in one transaction, and return them as (email, name,
        attempts). On SQLite each UPDATE re-checks the status, so two senders never claim the same
        row; on PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``, so any number of senders
        claim disjoint batches at once (:func:`_claim_on_postgresql`).
        Deliveries whose subscriber has left since the issue began are marked ``skipped``.
        ``handed``: whether the claimed deliveries count as on their way from the start (a sender
        that marks each message before its content goes out claims them with False)."""
        values = {
            "status": "inflight",
            "owner": owner,
            "claim": claim,
            "lease_until": lease_until,
            "updated_at": now,
            "handed": handed,
        }
        with self.engine.begin() as conn:
            left = limit
            for status, order, extra in (
                ("pending", d.c.email, None),
                ("retry", d.c.next_attempt, d.c.next_attempt <= now),
            ):
                if left <= 0:
                    break
                if conn.dialect.name == "postgresql":
                    got = _claim_on_postgresql(conn, key, status, order, extra, left, values)
                else:
                    # SQLite, one writer at a time: the pick and the update in one statement,
                    # which checks the status again.
                    cond = [d.c.issue_key == key, d.c.status == status]
                    if extra is not None:
                        cond.append(extra)
                    pick = sa.select(d.c.email).where(*cond).order_by(order).limit(left).cte("pick")
                    got = conn.execute(
                        d.update().where(*cond, d.c.email.in_(sa.select(pick.c.email))).values(**values)
                    ).rowcount
                left -= max(got or 0, 0)
            rows = conn.execute(
                sa.select(d.c.email, d.c.name, d.c.attempts, subscribers.c.status.label("sub"))
                .select_from(d.outerjoin(subscribers, subscribers.c.email == d.c.email))
                # (the status first: its index finds the batch; by the claim alone, every
                # delivery of the issue would be read for each claim)
                .where(d.c.issue_key == key, d.c.status == "inflight", d.c.claim == claim)
                .order_by(d.c.email)
            ).all()
            gone = [r.email for r in rows if r.sub is not None and r.sub != "active"]
            if gone:
                conn.execute(
                    d.update()
                    .where(d.c.issue_key == key, d.c.status == "inflight", d.c.claim == claim, d.c.email.in_(gone))
                    .values(status="skipped", detail=_LEFT, updated_at=now, **_NOT_IN_FLIGHT)
                )
        return [(r.email, r.name, r.attempts) for r in rows if r.sub is None or r.sub == "active"]

    def record(
        self,
        key: str,
        claim: str,
        outcomes: Sequence[tuple[DeliveryResult, datetime | None]],
        *,
        now: datetime,
        bounced: Sequence[str] = (),
        handed: Sequence[str] = (),
    ) -> None:
        """Record a batch's outcomes (result, next attempt for a retry), the subscribers whose
        address bounced and the deliveries now on their way (``handed``), in one transaction.
        Only rows still held under ``claim`` are written."""
        if not outcomes and not bounced and not handed:
            return
        params = _outcome_params(key, claim, outcomes, now, lambda nxt: nxt)
        with self.engine.begin() as conn:
            if params:
                conn.execute(_RECORD, params)
            if handed:
                conn.execute(_HAND_OVER, _hand_over_params(key, claim, handed))
            if bounced:
                mark_bounced(conn, bounced, reason="the receiving server refused the address", now=now)

    def outcome_writer(self, key: str) -> OutcomeWriter:
        """A fast writer of issue ``key``'s outcomes, for the send's group commit."""
        return OutcomeWriter(self.engine, key)

    def release_claim(self, key: str, claim: str, *, now: datetime) -> int:
        """Give a claimed batch back as pending (nothing was sent), e.g. after bad credentials."""
        with self.engine.begin() as conn:
            return conn.execute(
                d.update()
                .where(d.c.issue_key == key, d.c.claim == claim, d.c.status == "inflight")
                .values(status="pending", updated_at=now, **_NOT_IN_FLIGHT)
            ).rowcount

    def inflight_owners(self, key: str) -> list[tuple[str, datetime | None, int]]:
        """Senders holding in-flight deliveries of an issue: (owner, earliest lease end, count)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(d.c.owner, sa.func.min(d.c.lease_until), sa.func.count())
                .where(d.c.issue_key == key, d.c.status == "inflight")
                .group_by(d.c.owner)
            ).all()
        return [(o or "", t, n) for o, t, n in rows]

    def renew_claims(self, key: str, owner: str, *, lease_until: datetime) -> int:
        """A live sender's heartbeat: extend the lease of its in-flight deliveries."""
        with self.engine.begin() as conn:
            return conn.execute(
                d.update()
                .where(d.c.issue_key == key, d.c.status == "inflight", d.c.owner == owner)
                .values(lease_until=lease_until)
            ).rowcount

    def reclaim_interrupted(self, key: str, owner: str, *, now: datetime) -> int:
        """Give the in-flight deliveries of a sender that stopped back as pending, counting those
        whose message was on its way (``handed``) as interrupted: each may have been delivered
        once. Returns how many were given back."""
        with self.engine.begin() as conn:
            return conn.execute(
                d.update()
                .where(d.c.issue_key == key, d.c.status == "inflight", d.c.owner == owner)
                .values(
                    status="pending",
                    interrupted=d.c.interrupted + sa.case((d.c.handed, 1), else_=0),
                    detail=sa.case(
                        (d.c.handed, "was on its way when its sender stopped; sent again (possibly a duplicate)"),
                        else_="was claimed by a sender that stopped before sending it",
                    ),
                    updated_at=now,
                    **_NOT_IN_FLIGHT,
                )
            ).rowcount

    def count_interrupted(self, key: str, emails: Sequence[str], *, now: datetime) -> None:
        """Count deliveries whose message may have arrived although no answer came (a connection
        dropped after the final dot) as interrupted: their retry may be a duplicate."""
        if not emails:
            return
        with self.engine.begin() as conn:
            conn.execute(
                d.update()
                .where(d.c.issue_key == key, d.c.email.in_(list(emails)))
                .values(interrupted=d.c.interrupted + 1, updated_at=now)
            )

    def next_retry_at(self, key: str) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.min(d.c.next_attempt)).where(d.c.issue_key == key, d.c.status == "retry")
            ).scalar()

    def skip_departed(self, key: str, *, now: datetime) -> int:
        """Mark the undelivered deliveries of subscribers who have left as skipped."""
        gone = sa.select(subscribers.c.email).where(subscribers.c.status != "active")
        with self.engine.begin() as conn:
            return conn.execute(
                d.update()
                .where(d.c.issue_key == key, d.c.status.in_(("pending", "retry")), d.c.email.in_(gone))
                .values(status="skipped", detail=_LEFT, updated_at=now)
            ).rowcount

    def reset_failed(self, key: str, *, now: datetime) -> int:
        """Put an issue's failed deliveries back to pending (with a fresh attempt budget) and the
        issue back to sending. Returns how many."""
        with self.engine.begin() as conn:
            n = conn.execute(
                d.update()
                .where(d.c.issue_key == key, d.c.status == "failed")
                .values(status="pending", attempts=0, next_attempt=None, updated_at=now)
            ).rowcount
            if n:
                conn.execute(issues.update().where(issues.c.key == key).values(status="sending", finished_at=None))
        return n

    def with_status(self, key: str, statuses: Sequence[str]) -> list[DeliveryRecord]:
        """An issue's deliveries in any of ``statuses``, by address."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(d.c.email, d.c.status, d.c.attempts, d.c.detail, d.c.next_attempt, d.c.interrupted)
                .where(d.c.issue_key == key, d.c.status.in_(list(statuses)))
                .order_by(d.c.email)
            ).all()
        return [record_from_row(DeliveryRecord, r) for r in rows]

    def interrupted_total(self, key: str) -> int:
        """How many times an issue's deliveries were in flight when their sender stopped."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(d.c.interrupted), 0)).where(d.c.issue_key == key)
                ).scalar()
                or 0
            )

    def pending(self, key: str) -> Iterator[tuple[str, str | None]]:
        """(email, name) of the deliveries still to make (pending or retry), by address, streamed
        a chunk at a time (on PostgreSQL through a server-side cursor)."""
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=2000).execute(
                sa.select(d.c.email, d.c.name)
                .where(d.c.issue_key == key, d.c.status.in_(("pending", "retry")))
                .order_by(d.c.email)
            ):
                yield row.email, row.name

    def failed(self, key: str) -> list[tuple[str, str]]:
        """(email, the server's words) of the deliveries that failed for good."""
        return [(r.email, r.detail or "") for r in self.with_status(key, ("failed",))]

    def counts(self, key: str) -> dict[str, int]:
        """How many of an issue's deliveries are in each status."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(d.c.status, sa.func.count()).where(d.c.issue_key == key).group_by(d.c.status)
            ).all()
        return {status: n for status, n in rows}
