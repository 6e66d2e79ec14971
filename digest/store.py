"""State through SQLAlchemy Core: articles, issues, deliveries, subscribers, sources.

SQLite (WAL mode) by default; any SQLAlchemy URL works, PostgreSQL included. No state that a
second process would need is kept in memory: every decision that matters is made in the database.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
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
)

# A lease on a named piece of work (``issue:2025-W33``): whoever holds an unexpired lease is the
# only process doing that work. Taking one is a single INSERT, or a single UPDATE of an expired
# row, so two processes (or two machines on one PostgreSQL) can never both hold it.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

# Issues an editor held back (`digest hold ISSUE`): not sent at their slot until released.
holds = sa.Table(
    "holds",
    metadata,
    sa.Column("issue_key", sa.String(64), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("note", sa.Text),
)

# [PREVIEW] copies sent to the editors before a slot; one row per issue, so a restart or a second
# scheduler never sends the preview twice.
reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("issue_key", sa.String(64), primary_key=True),
    sa.Column("sent_at", UTCDateTime, nullable=False),
    sa.Column("recipients", sa.Text, nullable=False),
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
        recipients: Sequence[tuple[str, str | None]],
        now: datetime,
    ) -> bool:
        """Start sending an issue: record it with its articles and freeze its recipients into
        pending deliveries, in one transaction. Returns False if the issue already exists (another
        run claimed it first), in which case nothing is changed."""
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
                if recipients:
                    conn.execute(
                        deliveries.insert(),
                        [
                            {"issue_key": key, "email": e, "name": n, "status": "pending", "attempts": 0, "updated_at": now}
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

    def unsubscribe(self, email: str, *, now: datetime | None = None) -> str:
        """Unsubscribe an address in one statement. Returns ``unsubscribed`` when it was active,
        ``already`` when it had already left (or bounced), ``unknown`` when it is not on the list."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                subscribers.update()
                .where(sa.func.lower(subscribers.c.email) == email.lower(), subscribers.c.status == "active")
                .values(status="unsubscribed", updated_at=now or _utcnow())
            ).rowcount
            if changed:
                return "unsubscribed"
            exists = conn.execute(
                sa.select(subscribers.c.email).where(sa.func.lower(subscribers.c.email) == email.lower())
            ).first()
        return "already" if exists else "unknown"

    # --- leases, holds, reviews ----------------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take the lease ``name`` for ``owner`` until ``now + ttl``. True when taken: it was
        free, expired, or already this owner's. Each step is one atomic statement."""
        until = now + ttl
        try:
            with self.engine.begin() as conn:
                conn.execute(leases.insert().values(name=name, owner=owner, acquired_at=now, expires_at=until))
            return True
        except IntegrityError:
            pass
        with self.engine.begin() as conn:
            taken = conn.execute(
                leases.update()
                .where(leases.c.name == name, sa.or_(leases.c.expires_at < now, leases.c.owner == owner))
                .values(owner=owner, acquired_at=now, expires_at=until)
            ).rowcount
        return bool(taken)

    def renew_lease(self, name: str, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        """Extend a lease this owner still holds; False when it was lost (expired and taken over)."""
        with self.engine.begin() as conn:
            kept = conn.execute(
                leases.update().where(leases.c.name == name, leases.c.owner == owner).values(expires_at=now + ttl)
            ).rowcount
        return bool(kept)

    def release_lease(self, name: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(leases.delete().where(leases.c.name == name, leases.c.owner == owner))

    def lease_holder(self, name: str) -> Any | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(leases).where(leases.c.name == name)).first()

    def hold_issue(self, key: str, *, now: datetime, note: str | None = None) -> bool:
        """Hold an issue back from its slot. False when it was already held."""
        try:
            with self.engine.begin() as conn:
                conn.execute(holds.insert().values(issue_key=key, created_at=now, note=note))
        except IntegrityError:
            return False
        return True

    def release_hold(self, key: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(holds.delete().where(holds.c.issue_key == key)).rowcount)

    def is_held(self, key: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(holds.c.issue_key).where(holds.c.issue_key == key)).first() is not None

    def held_issues(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(holds).order_by(holds.c.issue_key)).all())

    def claim_review(self, key: str, recipients: Sequence[str], *, now: datetime) -> bool:
        """Record that the [PREVIEW] of an issue goes out now; False when it already went."""
        try:
            with self.engine.begin() as conn:
                conn.execute(reviews.insert().values(issue_key=key, sent_at=now, recipients=json.dumps(list(recipients))))
        except IntegrityError:
            return False
        return True

    def review(self, key: str) -> Any | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(reviews).where(reviews.c.issue_key == key)).first()

    def published_issues(self) -> list[Any]:
        """Issues that went out (or are going out) to subscribers, newest slot first."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(issues.c.key, issues.c.slot, issues.c.subject, issues.c.preheader, issues.c.status)
                    .where(issues.c.status.in_(("sending", "sent")))
                    .order_by(issues.c.slot.desc())
                ).all()
            )
