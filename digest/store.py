"""State through SQLAlchemy Core: articles, issues, deliveries, subscribers, sources.

SQLite (WAL mode) by default; any SQLAlchemy URL works, PostgreSQL included. No state that a
second process would need is kept in memory: every decision that matters is made in the database.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
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
    sa.Column("summary_by_editor", sa.Boolean, nullable=False, default=False),
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
    # Where a permanent redirect moved the configured URL; fetched instead of it until the
    # configured location changes.
    sa.Column("moved_to", sa.Text),
    sa.Column("last_checked", UTCDateTime),
    # What the last successful read found, e.g. "12 articles (3 new, 1 updated)" or "not modified".
    sa.Column("last_note", sa.Text),
)

# Every way an article is recognised — its id, its canonical URL, the fingerprint of its text
# (see digest.sources.identity), its title and minute of publication — hashed to a fixed width by article_key(). The same article
# reached through another source, or under a GUID its publisher changed, finds its row here.
article_keys = sa.Table(
    "article_keys",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("article_id", sa.String(255), nullable=False, index=True),
    sa.Column("source", sa.String(255), nullable=False, index=True),
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
    # Shallow: asdict() would deep-copy every body block only to have them re-encoded below.
    row = {f.name: getattr(a, f.name) for f in fields(a)}
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
        summary_by_editor=bool(m["summary_by_editor"]),
    )


def content_hash(a: Article) -> str:
    import hashlib

    h = hashlib.sha256()
    # The dates count (a new "updated" is an edit), except a first-seen date, which is this run's clock.
    published = "" if a.date_is_first_seen else a.published.isoformat()
    updated = a.updated.isoformat() if a.updated else ""
    for part in (
        a.title,
        a.url or "",
        a.dek or "",
        a.summary or "",
        a.author or "",
        a.image or "",
        published,
        updated,
        "\x1f".join(a.tags),
    ):
        h.update(part.encode("utf-8") + b"\0")
    for b in a.body:
        h.update(b.kind.encode() + b.text.encode("utf-8") + b"\0")
    return h.hexdigest()


def article_key(kind: str, value: str) -> str:
    """The article_keys key for an id (``kind`` "id"), a canonical URL ("url") or a text
    fingerprint ("text")."""
    return hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()


def _keys_for(a: Article, shared_urls: set[str] = frozenset()) -> list[tuple[str, str]]:  # type: ignore[assignment]
    """(kind, key) for each way the article can be recognised, strongest first. A URL that
    several items of one batch share identifies none of them."""
    from digest.sources.identity import canonical_url, text_fingerprint

    keys = [("id", article_key("id", a.id))]
    url = canonical_url(a.url)
    if url and url not in shared_urls:
        keys.append(("url", article_key("url", url)))
    fingerprint = text_fingerprint(a.title, a.body)
    if fingerprint:
        keys.append(("text", article_key("text", fingerprint)))
    title_words = " ".join(re.findall(r"\w+", a.title.lower()))
    if not a.date_is_first_seen and title_words:
        # The same title published the same minute: one site's RSS and JSON feeds, which may
        # link the same post differently (a link blog's permalink in one, the linked page in the other).
        when = a.published.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M")
        keys.append(("dated", article_key("dated", f"{title_words}|{when}")))
    return keys


class _RowView:
    """A row not yet written, looked at like one read from the table."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _body_chars(body_json: str | None) -> int:
    return sum(len(t) for _k, t in json.loads(body_json or "[]"))


@dataclass(frozen=True)
class UpsertReport:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    # Copies of articles already stored from another source, not stored again.
    duplicates: int = 0


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
            raise StateError(
                f"state database {self._safe_url()}: {exc.__class__.__name__}: {exc.args[0] if exc.args else exc}"
            ) from None
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

    def __enter__(self) -> Store:
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

    def store_articles(self, items: Iterable[Article], *, now: datetime | None = None) -> UpsertReport:
        """Store a batch of articles (one source's read), recognising ones already stored.

        An incoming article is the stored one with the same id, else the one with the same
        canonical URL, else the one with the same text fingerprint, else the one with the same
        title published the same minute. Then:

        - from the source that stored it: updated in place when its content changed (an edit, or
          a GUID the publisher changed while the link stayed); the row keeps its id and first-seen
          time, and an undated item keeps its first-seen date;
        - from another source: a duplicate, not stored again, unless this copy has more text (a
          full article where the first source had a stub), which then replaces the stored one.

        Two items of the same batch with different ids are never merged: a feed that lists two
        items under one link (a link blog, or posts that are anchors on one day's page) means two
        articles, and that link is not used to recognise either of them.
        """
        from digest.sources.identity import canonical_url

        now = now or _utcnow()
        items = list(items)
        batch_ids: dict[str, set[str]] = {}
        url_count: dict[tuple[str, str], int] = {}
        for a in items:
            batch_ids.setdefault(a.source, set()).add(a.id)
            url = canonical_url(a.url)
            if url:
                url_count[(a.source, url)] = url_count.get((a.source, url), 0) + 1
        shared_urls = {url for (_src, url), n in url_count.items() if n > 1}
        new = updated = unchanged = duplicates = 0
        cols = (
            articles.c.id,
            articles.c.source,
            articles.c.content_hash,
            articles.c.first_seen,
            articles.c.published,
            articles.c.body,
        )
        item_keys = [_keys_for(a, shared_urls) for a in items]
        with self.engine.begin() as conn:
            # Everything the batch could match, read in a few queries; then decided in memory.
            found: dict[str, str] = {}
            for chunk in _chunks(sorted({k for keys in item_keys for _, k in keys})):
                found.update(
                    conn.execute(
                        sa.select(article_keys.c.key, article_keys.c.article_id).where(article_keys.c.key.in_(chunk))
                    ).all()
                )
            rows: dict[str, Any] = {}
            for chunk in _chunks(sorted(set(found.values()) | {a.id for a in items})):
                rows.update((r.id, r) for r in conn.execute(sa.select(*cols).where(articles.c.id.in_(chunk))))
            pending: dict[str, dict[str, Any]] = {}
            new_keys: list[dict[str, str]] = []
            for a, keys in zip(items, item_keys):
                target = None
                for kind, key in keys:
                    row = rows.get(found.get(key, ""))
                    if row is None:
                        continue
                    if kind != "id" and row.source == a.source and row.id != a.id and row.id in batch_ids[a.source]:
                        continue
                    target = row
                    break
                # A row stored before it had keys.
                target = target or rows.get(a.id)
                h = content_hash(a)
                if target is None:
                    values = article_to_row(a, first_seen=now, content_hash=h)
                    pending[a.id] = values
                    rows[a.id] = _RowView(values)
                    new += 1
                    owner = a.id
                else:
                    owner = target.id
                    replace = (
                        target.content_hash != h
                        if target.source == a.source
                        else sum(len(b.text) for b in a.body) > _body_chars(target.body)
                    )
                    if replace:
                        values = article_to_row(a, first_seen=target.first_seen, content_hash=h)
                        values["id"] = target.id
                        if a.date_is_first_seen:
                            # An undated item keeps the moment it was first seen, not this run's.
                            values["published"] = target.published
                        if target.id in pending:
                            pending[target.id] = values
                        else:
                            conn.execute(articles.update().where(articles.c.id == target.id).values(**values))
                        rows[target.id] = _RowView(values)
                        updated += 1
                    elif target.source == a.source:
                        unchanged += 1
                    else:
                        duplicates += 1
                for _, key in keys:
                    if key not in found:
                        found[key] = owner
                        new_keys.append({"key": key, "article_id": owner, "source": a.source})
            if pending:
                conn.execute(articles.insert(), list(pending.values()))
            if new_keys:
                conn.execute(article_keys.insert(), new_keys)
        return UpsertReport(new, updated, unchanged, duplicates)

    def known_keys(self, source: str) -> frozenset[str]:
        """The article keys recorded for a source: whatever it has already delivered."""
        with self.engine.connect() as conn:
            return frozenset(
                conn.execute(sa.select(article_keys.c.key).where(article_keys.c.source == source)).scalars()
            )

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

    def record_source(
        self,
        name: str,
        location: str,
        *,
        error: str | None,
        now: datetime,
        validators: tuple[str | None, str | None] | None = None,
        moved_to: str | None = None,
        note: str | None = None,
    ) -> None:
        """Record one read of a source: success (its ETag and Last-Modified when given, where a
        permanent redirect moved it, what it found) or failure (the error, one more failure in a
        row). When the configured location changed, what was remembered about the old one goes."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(sources).where(sources.c.name == name)).first()
            if row is None:
                conn.execute(sources.insert().values(name=name, location=location, failures=0))
            values: dict[str, Any] = {"location": location, "last_checked": now}
            if row is not None and row.location != location:
                values.update(etag=None, last_modified=None, moved_to=None)
            if error is None:
                values.update(last_success=now, failures=0, last_note=note)
                if validators is not None:
                    values.update(etag=validators[0], last_modified=validators[1])
                if moved_to is not None:
                    values["moved_to"] = moved_to
            else:
                values.update(last_error=error, last_error_at=now, failures=sources.c.failures + 1)
            conn.execute(sources.update().where(sources.c.name == name).values(**values))

    def source_row(self, name: str, location: str) -> Any | None:
        """The stored row of a source, or None when there is none or it was for another location."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sources).where(sources.c.name == name)).first()
        return row if row is not None and row.location == location else None

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
                            {
                                "issue_key": key,
                                "email": e,
                                "name": n,
                                "status": "pending",
                                "attempts": 0,
                                "interrupted": 0,
                                "updated_at": now,
                            }
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
                    issues.insert().values(
                        key=key, slot=slot, status="skipped", created_at=now, finished_at=now, note=note
                    )
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

    def unfinished_issues(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(sa.select(issues).where(issues.c.status == "sending").order_by(issues.c.slot)).all()
            )

    # --- deliveries ---------------------------------------------------------------------------

    def pending_deliveries(self, key: str) -> Iterator[tuple[str, str | None]]:
        with self.engine.connect() as conn:
            for row in conn.execute(
                sa.select(deliveries.c.email, deliveries.c.name)
                .where(deliveries.c.issue_key == key, deliveries.c.status.in_(("pending", "retry")))
                .order_by(deliveries.c.email)
            ):
                yield row.email, row.name

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

    def add_subscribers(
        self, rows: Iterable[tuple[str, str | None]], *, now: datetime | None = None
    ) -> tuple[int, int]:
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
        q = (
            sa.select(subscribers.c.email, subscribers.c.name)
            .where(subscribers.c.status == "active")
            .order_by(subscribers.c.email)
        )
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

    def take_over_lease(self, name: str, old_owner: str, new_owner: str, *, now: datetime, ttl: timedelta) -> bool:
        """Move a lease from ``old_owner`` (known to be gone) to ``new_owner``, atomically: False
        when someone else took it first."""
        with self.engine.begin() as conn:
            moved = conn.execute(
                leases.update()
                .where(leases.c.name == name, leases.c.owner == old_owner)
                .values(owner=new_owner, acquired_at=now, expires_at=now + ttl)
            ).rowcount
        return bool(moved)

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
                conn.execute(
                    reviews.insert().values(issue_key=key, sent_at=now, recipients=json.dumps(list(recipients)))
                )
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
                    .values(
                        status="skipped",
                        detail="subscriber left before delivery",
                        owner=None,
                        claim=None,
                        lease_until=None,
                        updated_at=now,
                    )
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
            {
                "b_email": r.recipient,
                "b_status": r.status,
                "b_message_id": r.message_id,
                "b_detail": r.detail,
                "b_next": nxt,
            }
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
            return int(
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(d.c.interrupted), 0)).where(d.c.issue_key == key)
                ).scalar()
                or 0
            )

    def issue_rows(self, limit: int = 20) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(issues.c.key, issues.c.status, issues.c.slot, issues.c.note)
                    .order_by(issues.c.slot.desc())
                    .limit(limit)
                ).all()
            )

    def iter_active_recipients(self, chunk: int = 2000) -> Iterator[tuple[str, str | None]]:
        """The active subscribers, streamed from the database a chunk at a time."""
        q = (
            sa.select(subscribers.c.email, subscribers.c.name)
            .where(subscribers.c.status == "active")
            .order_by(subscribers.c.email)
        )
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=chunk).execute(q):
                yield row.email, row.name

    def iter_subscribers(self, status: str | None = None, chunk: int = 2000) -> Iterator[Any]:
        q = sa.select(subscribers).order_by(subscribers.c.email)
        if status is not None:
            q = q.where(subscribers.c.status == status)
        with self.engine.connect() as conn:
            yield from conn.execution_options(yield_per=chunk).execute(q)
