"""State through SQLAlchemy Core: articles, issues, deliveries, subscribers, sources.

SQLite (WAL mode) by default; any SQLAlchemy URL works, PostgreSQL included. No state that a
second process would need is kept in memory: every decision that matters is made in the database.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from digest.errors import StateError
from digest.models import Article, Block, DeliveryResult, RenderedIssue

SCHEMA_VERSION = 1


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC (portable across SQLite and PostgreSQL); returns aware UTC."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; attach a time zone first")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


metadata = sa.MetaData()

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

articles = sa.Table(
    "articles",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("url", sa.Text),
    sa.Column("published", UTCDateTime, nullable=False, index=True),
    sa.Column("updated", UTCDateTime),
    sa.Column("author", sa.Text),
    sa.Column("dek", sa.Text),
    sa.Column("summary", sa.Text),
    sa.Column("image", sa.Text),
    sa.Column("image_alt", sa.Text),
    sa.Column("tags", sa.Text, nullable=False, default="[]"),
    sa.Column("section", sa.Text),
    sa.Column("language", sa.String(32)),
    sa.Column("body", sa.Text, nullable=False, default="[]"),
    sa.Column("origin", sa.Text),
    sa.Column("date_is_first_seen", sa.Boolean, nullable=False, default=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
)

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("location", sa.Text),
    sa.Column("last_success", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("last_error_at", UTCDateTime),
    sa.Column("failures", sa.Integer, nullable=False, default=0),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
)

issues = sa.Table(
    "issues",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("slot", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # sending | sent | skipped
    sa.Column("subject", sa.Text),
    sa.Column("preheader", sa.Text),
    sa.Column("html", sa.Text),
    sa.Column("text", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("note", sa.Text),
)

issue_articles = sa.Table(
    "issue_articles",
    metadata,
    sa.Column("issue_key", sa.String(64), sa.ForeignKey("issues.key"), primary_key=True),
    sa.Column("article_id", sa.String(255), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
)

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("email", sa.String(320), primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("status", sa.String(16), nullable=False, default="active"),  # active | unsubscribed | bounced
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("issue_key", sa.String(64), sa.ForeignKey("issues.key"), primary_key=True),
    sa.Column("email", sa.String(320), primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("status", sa.String(16), nullable=False, default="pending"),  # pending | sent | failed | retry
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("message_id", sa.Text),
    sa.Column("detail", sa.Text),
    sa.Column("next_attempt", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # The in-flight state (status "inflight"): which sender process holds the delivery, under
    # which batch claim, and until when. See digest.delivery.ledger for the protocol.
    sa.Column("owner", sa.String(160)),
    sa.Column("claim", sa.String(40)),
    sa.Column("lease_until", UTCDateTime),
    # How often this delivery was in flight when its sender stopped (each may be one duplicate).
    sa.Column("interrupted", sa.Integer, nullable=False, default=0),
    sa.Index("ix_deliveries_issue_status", "issue_key", "status", "email"),
)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def article_to_row(a: Article, *, first_seen: datetime, content_hash: str) -> dict[str, Any]:
    row = asdict(a)
    row["body"] = json.dumps([[b.kind, b.text] for b in a.body], ensure_ascii=False)
    row["tags"] = json.dumps(list(a.tags), ensure_ascii=False)
    row["first_seen"] = first_seen
    row["content_hash"] = content_hash
    return row


def row_to_article(row: Any) -> Article:
    m = row._mapping
    return Article(
        id=m["id"],
        source=m["source"],
        title=m["title"],
        url=m["url"],
        published=m["published"],
        updated=m["updated"],
        author=m["author"],
        dek=m["dek"],
        summary=m["summary"],
        image=m["image"],
        image_alt=m["image_alt"],
        tags=tuple(json.loads(m["tags"] or "[]")),
        section=m["section"],
        language=m["language"],
        body=tuple(Block(kind=k, text=t) for k, t in json.loads(m["body"] or "[]")),
        origin=m["origin"],
        date_is_first_seen=bool(m["date_is_first_seen"]),
    )


def content_hash(a: Article) -> str:
    import hashlib

    h = hashlib.sha256()
    for part in (a.title, a.url or "", a.dek or "", a.summary or "", a.author or "", a.image or ""):
        h.update(part.encode("utf-8") + b"\0")
    for b in a.body:
        h.update(b.kind.encode() + b.text.encode("utf-8") + b"\0")
    return h.hexdigest()


class Store:
    """The state database. Create with a SQLAlchemy URL; the schema is made on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if url.startswith("sqlite:///"):
                db_path = url.removeprefix("sqlite:///")
                if db_path and db_path != ":memory:":
                    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(url, future=True)
            if self.engine.dialect.name == "sqlite":
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            self._migrate()
        except SQLAlchemyError as exc:
            raise StateError(f"state database {self._safe_url()}: {exc.__class__.__name__}: {exc.args[0] if exc.args else exc}") from None
        except OSError as exc:
            raise StateError(f"state database {self._safe_url()}: {exc}") from None

    def _safe_url(self) -> str:
        try:
            return sa.engine.make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - only for messages
            return "(unparseable URL)"

    def _migrate(self) -> None:
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
            if found is None:
                try:
                    conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                except IntegrityError:
                    pass
            elif int(found) != SCHEMA_VERSION:
                raise StateError(
                    f"state database {self._safe_url()} has schema version {found}, this digest expects "
                    f"{SCHEMA_VERSION}; use a matching digest version or a fresh [state] url"
                )

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def begin(self) -> Any:
        return self.engine.begin()

    # --- meta ---------------------------------------------------------------------------------

    def meta_get(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()

    def secret(self) -> str:
        """A signing secret kept in the state database, made on first use (for when no
        environment variable supplies one). Every process sharing the database shares it."""
        existing = self.meta_get("secret")
        if existing:
            return existing
        with self.engine.begin() as conn:
            try:
                conn.execute(meta.insert().values(key="secret", value=secrets.token_urlsafe(32)))
            except IntegrityError:
                pass
        value = self.meta_get("secret")
        assert value
        return value

    # --- articles -----------------------------------------------------------------------------

    def upsert_articles(self, items: Iterable[Article], *, now: datetime | None = None) -> tuple[int, int]:
        """Store articles; an article whose content changed is updated in place.
        Returns (new, updated)."""
        now = now or _utcnow()
        new = updated = 0
        with self.engine.begin() as conn:
            for a in items:
                h = content_hash(a)
                old = conn.execute(
                    sa.select(articles.c.content_hash, articles.c.first_seen, articles.c.published, articles.c.date_is_first_seen).where(
                        articles.c.id == a.id
                    )
                ).first()
                if old is None:
                    conn.execute(articles.insert().values(**article_to_row(a, first_seen=now, content_hash=h)))
                    new += 1
                elif old.content_hash != h:
                    row = article_to_row(a, first_seen=old.first_seen, content_hash=h)
                    if a.date_is_first_seen:
                        # An undated item keeps the moment it was first seen, not this run's.
                        row["published"] = old.published
                    conn.execute(articles.update().where(articles.c.id == a.id).values(**row))
                    updated += 1
        return new, updated

    def articles_published_between(self, start: datetime, end: datetime) -> list[Article]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(articles)
                .where(articles.c.published > start, articles.c.published <= end)
                .order_by(articles.c.published.desc(), articles.c.id)
            ).all()
        return [row_to_article(r) for r in rows]

    def all_articles(self) -> list[Article]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(articles).order_by(articles.c.published.desc())).all()
        return [row_to_article(r) for r in rows]

    def article_ids_in_issues(self, *, excluding: str | None = None) -> set[str]:
        """Articles already carried by an issue that was sent or is being sent."""
        q = (
            sa.select(issue_articles.c.article_id)
            .join(issues, issues.c.key == issue_articles.c.issue_key)
            .where(issues.c.status.in_(("sending", "sent")))
        )
        if excluding is not None:
            q = q.where(issues.c.key != excluding)
        with self.engine.connect() as conn:
            return set(conn.execute(q).scalars())

    # --- sources ------------------------------------------------------------------------------

    def record_source(self, name: str, location: str, *, error: str | None, now: datetime) -> None:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(sources).where(sources.c.name == name)).first()
            if row is None:
                conn.execute(sources.insert().values(name=name, location=location, failures=0))
            if error is None:
                values: dict[str, Any] = {"last_success": now, "failures": 0, "location": location}
            else:
                values = {
                    "last_error": error,
                    "last_error_at": now,
                    "failures": sources.c.failures + 1,
                    "location": location,
                }
            conn.execute(sources.update().where(sources.c.name == name).values(**values))

    def source_rows(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(sources).order_by(sources.c.name)).all())

    # --- issues -------------------------------------------------------------------------------

    def issue(self, key: str) -> Any | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(issues).where(issues.c.key == key)).first()

    def claim_issue(
        self,
        key: str,
        *,
        slot: datetime,
        rendered: RenderedIssue,
        article_ids: Sequence[str],
        recipients: Sequence[tuple[str, str | None]] | None,
        now: datetime,
    ) -> bool:
        """Start sending an issue: record it with its articles and freeze its recipients into
        pending deliveries, in one transaction. Returns False if the issue already exists (another
        run claimed it first), in which case nothing is changed. ``recipients=None`` freezes the
        active subscribers inside the database (INSERT … SELECT), without loading them."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    issues.insert().values(
                        key=key,
                        slot=slot,
                        status="sending",
                        subject=rendered.subject,
                        preheader=rendered.preheader,
                        html=rendered.html,
                        text=rendered.text,
                        created_at=now,
                    )
                )
                if article_ids:
                    conn.execute(
                        issue_articles.insert(),
                        [{"issue_key": key, "article_id": a, "position": i} for i, a in enumerate(article_ids)],
                    )
                if recipients is None:
                    conn.execute(
                        deliveries.insert().from_select(
                            ["issue_key", "email", "name", "status", "attempts", "interrupted", "updated_at"],
                            sa.select(
                                sa.literal(key, sa.String(64)),
                                subscribers.c.email,
                                subscribers.c.name,
                                sa.literal("pending", sa.String(16)),
                                sa.literal(0, sa.Integer),
                                sa.literal(0, sa.Integer),
                                sa.literal(now, UTCDateTime),
                            ).where(subscribers.c.status == "active"),
                        )
                    )
                elif recipients:
                    conn.execute(
                        deliveries.insert(),
                        [
                            {"issue_key": key, "email": e, "name": n, "status": "pending", "attempts": 0, "interrupted": 0, "updated_at": now}
                            for e, n in recipients
                        ],
                    )
        except IntegrityError:
            return False
        return True

    def record_skipped_issue(self, key: str, *, slot: datetime, note: str, now: datetime) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    issues.insert().values(key=key, slot=slot, status="skipped", created_at=now, finished_at=now, note=note)
                )
        except IntegrityError:
            return False
        return True

    def rendered_issue(self, key: str) -> RenderedIssue | None:
        """The issue as it was rendered when its send began (per-recipient markers still in)."""
        row = self.issue(key)
        if row is None or row.html is None:
            return None
        return RenderedIssue(key=key, subject=row.subject, preheader=row.preheader or "", html=row.html, text=row.text)

    def finish_issue(self, key: str, *, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(issues.update().where(issues.c.key == key).values(status="sent", finished_at=now))

    def issue_article_ids(self, key: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(issue_articles.c.article_id)
                    .where(issue_articles.c.issue_key == key)
                    .order_by(issue_articles.c.position)
                ).scalars()
            )

    def articles_by_id(self, ids: Sequence[str]) -> list[Article]:
        with self.engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(sa.select(articles).where(articles.c.id.in_(list(ids)))).all()}
        return [row_to_article(rows[i]) for i in ids if i in rows]

    def unfinished_issues(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(issues).where(issues.c.status == "sending").order_by(issues.c.slot)).all())

    # --- deliveries ---------------------------------------------------------------------------

    def pending_deliveries(self, key: str) -> Iterator[tuple[str, str | None]]:
        with self.engine.connect() as conn:
            for row in conn.execute(
                sa.select(deliveries.c.email, deliveries.c.name)
                .where(deliveries.c.issue_key == key, deliveries.c.status.in_(("pending", "retry")))
                .order_by(deliveries.c.email)
            ):
                yield row.email, row.name

    def mark_deliveries(self, key: str, results: Sequence[DeliveryResult], *, now: datetime) -> None:
        """Record a batch of outcomes in one transaction."""
        if not results:
            return
        with self.engine.begin() as conn:
            for r in results:
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.issue_key == key, deliveries.c.email == r.recipient)
                    .values(
                        status=r.status,
                        message_id=r.message_id,
                        detail=r.detail,
                        attempts=deliveries.c.attempts + 1,
                        updated_at=now,
                    )
                )

    def failed_deliveries(self, key: str) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.email, deliveries.c.detail)
                .where(deliveries.c.issue_key == key, deliveries.c.status == "failed")
                .order_by(deliveries.c.email)
            ).all()
        return [(r.email, r.detail or "") for r in rows]

    def delivery_counts(self, key: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.status, sa.func.count())
                .where(deliveries.c.issue_key == key)
                .group_by(deliveries.c.status)
            ).all()
        return {status: n for status, n in rows}

    # --- subscribers --------------------------------------------------------------------------

    def add_subscribers(self, rows: Iterable[tuple[str, str | None]], *, now: datetime | None = None) -> tuple[int, int]:
        """Add new addresses as active; existing ones keep their status (an import never
        re-subscribes someone who left). Returns (added, already_present)."""
        now = now or _utcnow()
        added = present = 0
        with self.engine.begin() as conn:
            for email, name in rows:
                exists = conn.execute(sa.select(subscribers.c.email).where(subscribers.c.email == email)).first()
                if exists:
                    present += 1
                    continue
                conn.execute(
                    subscribers.insert().values(email=email, name=name, status="active", created_at=now, updated_at=now)
                )
                added += 1
        return added, present

    def set_subscriber_status(self, email: str, status: str, *, now: datetime | None = None) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                subscribers.update()
                .where(subscribers.c.email == email)
                .values(status=status, updated_at=now or _utcnow())
            )
        return bool(result.rowcount)

    def subscriber_rows(self, status: str | None = None) -> list[Any]:
        q = sa.select(subscribers).order_by(subscribers.c.email)
        if status is not None:
            q = q.where(subscribers.c.status == status)
        with self.engine.connect() as conn:
            return list(conn.execute(q).all())

    def active_recipients(self, conn: Connection | None = None) -> list[tuple[str, str | None]]:
        q = sa.select(subscribers.c.email, subscribers.c.name).where(subscribers.c.status == "active").order_by(subscribers.c.email)
        if conn is not None:
            return [(r.email, r.name) for r in conn.execute(q)]
        with self.engine.connect() as c:
            return [(r.email, r.name) for r in c.execute(q)]

    # --- deliveries: the ledger's queries (protocol in digest.delivery.ledger) -----------------

    def claim_deliveries(
        self, key: str, *, owner: str, claim: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[tuple[str, str | None, int]]:
        """Move up to ``limit`` deliveries that are due (pending, or retry whose time has come) to
        ``inflight`` under ``claim``, in one transaction, and return them as (email, name,
        attempts). Each UPDATE re-checks the status, so two senders never claim the same row.
        Deliveries whose subscriber has left since the issue began are marked ``skipped``."""
        d = deliveries
        with self.engine.begin() as conn:
            left = limit
            for status, order, extra in (
                ("pending", d.c.email, None),
                ("retry", d.c.next_attempt, d.c.next_attempt <= now),
            ):
                if left <= 0:
                    break
                cond = [d.c.issue_key == key, d.c.status == status]
                if extra is not None:
                    cond.append(extra)
                pick = sa.select(d.c.email).where(*cond).order_by(order).limit(left).scalar_subquery()
                got = conn.execute(
                    d.update()
                    .where(*cond, d.c.email.in_(pick))
                    .values(status="inflight", owner=owner, claim=claim, lease_until=lease_until, updated_at=now)
                ).rowcount
                left -= max(got or 0, 0)
            rows = conn.execute(
                sa.select(d.c.email, d.c.name, d.c.attempts, subscribers.c.status.label("sub"))
                .select_from(d.outerjoin(subscribers, subscribers.c.email == d.c.email))
                .where(d.c.issue_key == key, d.c.claim == claim)
                .order_by(d.c.email)
            ).all()
            gone = [r.email for r in rows if r.sub is not None and r.sub != "active"]
            if gone:
                conn.execute(
                    d.update()
                    .where(d.c.issue_key == key, d.c.claim == claim, d.c.email.in_(gone))
                    .values(status="skipped", detail="subscriber left before delivery", owner=None, claim=None, lease_until=None, updated_at=now)
                )
        return [(r.email, r.name, r.attempts) for r in rows if r.sub is None or r.sub == "active"]

    def record_deliveries(
        self,
        key: str,
        claim: str,
        outcomes: Sequence[tuple[DeliveryResult, datetime | None]],
        *,
        now: datetime,
        bounced: Sequence[str] = (),
    ) -> None:
        """Record a batch's outcomes (result, next attempt for a retry) in one transaction. Only
        rows still held under ``claim`` are written."""
        if not outcomes and not bounced:
            return
        d = deliveries
        stmt = (
            d.update()
            .where(d.c.issue_key == key, d.c.email == sa.bindparam("b_email"), d.c.claim == claim)
            .values(
                status=sa.bindparam("b_status"),
                message_id=sa.bindparam("b_message_id"),
                detail=sa.bindparam("b_detail"),
                next_attempt=sa.bindparam("b_next", type_=UTCDateTime),
                attempts=d.c.attempts + 1,
                owner=None,
                claim=None,
                lease_until=None,
                updated_at=now,
            )
        )
        params = [
            {"b_email": r.recipient, "b_status": r.status, "b_message_id": r.message_id, "b_detail": r.detail, "b_next": nxt}
            for r, nxt in outcomes
        ]
        with self.engine.begin() as conn:
            if params:
                conn.execute(stmt, params)
            if bounced:
                conn.execute(
                    subscribers.update()
                    .where(subscribers.c.email.in_(list(bounced)), subscribers.c.status == "active")
                    .values(status="bounced", updated_at=now)
                )

    def release_claim(self, key: str, claim: str, *, now: datetime) -> int:
        """Give a claimed batch back as pending (nothing was sent), e.g. after bad credentials."""
        d = deliveries
        with self.engine.begin() as conn:
            return conn.execute(
                d.update()
                .where(d.c.issue_key == key, d.c.claim == claim, d.c.status == "inflight")
                .values(status="pending", owner=None, claim=None, lease_until=None, updated_at=now)
            ).rowcount

    def inflight_owners(self, key: str) -> list[tuple[str, datetime | None, int]]:
        """Senders holding in-flight deliveries of an issue: (owner, earliest lease end, count)."""
        d = deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(d.c.owner, sa.func.min(d.c.lease_until), sa.func.count())
                .where(d.c.issue_key == key, d.c.status == "inflight")
                .group_by(d.c.owner)
            ).all()
        return [(o or "", t, n) for o, t, n in rows]

    def reclaim_interrupted(self, key: str, owner: str, *, now: datetime) -> int:
        """Give the in-flight deliveries of a sender that stopped back as pending, counting each
        as interrupted: it may already have been delivered once."""
        d = deliveries
        with self.engine.begin() as conn:
            return conn.execute(
                d.update()
                .where(d.c.issue_key == key, d.c.status == "inflight", d.c.owner == owner)
                .values(
                    status="pending",
                    owner=None,
                    claim=None,
                    lease_until=None,
                    interrupted=d.c.interrupted + 1,
                    detail="was in flight when its sender stopped; sent again (possibly a duplicate)",
                    updated_at=now,
                )
            ).rowcount

    def next_retry_at(self, key: str) -> datetime | None:
        d = deliveries
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.min(d.c.next_attempt)).where(d.c.issue_key == key, d.c.status == "retry")
            ).scalar()

    def skip_departed(self, key: str, *, now: datetime) -> int:
        """Mark the undelivered deliveries of subscribers who have left as skipped."""
        d = deliveries
        gone = sa.select(subscribers.c.email).where(subscribers.c.status != "active")
        with self.engine.begin() as conn:
            return conn.execute(
                d.update()
                .where(d.c.issue_key == key, d.c.status.in_(("pending", "retry")), d.c.email.in_(gone))
                .values(status="skipped", detail="subscriber left before delivery", updated_at=now)
            ).rowcount

    def reset_failed(self, key: str, *, now: datetime) -> int:
        """Put an issue's failed deliveries back to pending (with a fresh attempt budget) and the
        issue back to sending. Returns how many."""
        d = deliveries
        with self.engine.begin() as conn:
            n = conn.execute(
                d.update()
                .where(d.c.issue_key == key, d.c.status == "failed")
                .values(status="pending", attempts=0, next_attempt=None, updated_at=now)
            ).rowcount
            if n:
                conn.execute(issues.update().where(issues.c.key == key).values(status="sending", finished_at=None))
        return n

    def delivery_rows(self, key: str, statuses: Sequence[str]) -> list[Any]:
        d = deliveries
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(d.c.email, d.c.status, d.c.attempts, d.c.detail, d.c.next_attempt, d.c.interrupted)
                    .where(d.c.issue_key == key, d.c.status.in_(list(statuses)))
                    .order_by(d.c.email)
                ).all()
            )

    def interrupted_total(self, key: str) -> int:
        d = deliveries
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(d.c.interrupted), 0)).where(d.c.issue_key == key)).scalar() or 0)

    def issue_rows(self, limit: int = 20) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(issues.c.key, issues.c.status, issues.c.slot, issues.c.note).order_by(issues.c.slot.desc()).limit(limit)).all())

    def iter_active_recipients(self, chunk: int = 2000) -> Iterator[tuple[str, str | None]]:
        """The active subscribers, streamed from the database a chunk at a time."""
        q = sa.select(subscribers.c.email, subscribers.c.name).where(subscribers.c.status == "active").order_by(subscribers.c.email)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=chunk).execute(q):
                yield row.email, row.name

    def iter_subscribers(self, status: str | None = None, chunk: int = 2000) -> Iterator[Any]:
        q = sa.select(subscribers).order_by(subscribers.c.email)
        if status is not None:
            q = q.where(subscribers.c.status == status)
        with self.engine.connect() as conn:
            yield from conn.execution_options(yield_per=chunk).execute(q)
