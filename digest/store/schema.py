"""The schema: every table, the UTCDateTime type, the schema version and the migrations to it.

A database records its schema version in ``meta``. Opening an older one runs the migrations from its
version up, each in one transaction; a newer one is refused, since this code would misread it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from digest.errors import StateError

SCHEMA_VERSION = 8


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
    # The image's natural width in pixels, when the source or the image's header said (version 3).
    sa.Column("image_width", sa.Integer),
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

# Every way an article is recognised — its id, its canonical URL, the fingerprint of its text, its
# title and minute of publication — hashed to a fixed width (see digest.sources.identity.article_key).
# The same article reached through another source, or under a GUID its publisher changed, finds its row here.
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
    # active | unsubscribed | bounced | complained (see digest.subscribers.STATUS_WEIGHT)
    sa.Column("status", sa.String(16), nullable=False, default="active"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # The address as matched (digest.subscribers.address_key): ``B@Example.ORG`` and ``b@example.org``
    # are one subscriber, stored as first given. Nullable only because SQLite cannot add a NOT NULL
    # column to a filled table; every write sets it.
    sa.Column("address_key", sa.String(320)),
    sa.Index("ux_subscribers_address_key", "address_key", unique=True),
)

# Every change of a subscriber's status: when, to what, why and from where (import, form,
# one-click, webhook, bounce-mailbox, cli, delivery, migration). Erased with the subscriber.
subscriber_events = sa.Table(
    "subscriber_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("address_key", sa.String(320), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("origin", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text),
)

# People removed from the list (`digest subscribers remove`): only a SHA-256 of the address key is
# kept, so an old CSV cannot bring them back while their address itself is gone.
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
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
    # Whether the message may be on its way: set (durably) before its content goes out, cleared
    # with its outcome (version 7). Only such deliveries can be duplicated by a sender's crash.
    sa.Column("handed", sa.Boolean, nullable=False, default=False, server_default=sa.false()),
    # How often this delivery was in flight when its sender stopped (each may be one duplicate).
    sa.Column("interrupted", sa.Integer, nullable=False, default=0),
    sa.Index("ix_deliveries_issue_status", "issue_key", "status", "email"),
)


# PostgreSQL: the pending deliveries alone, in the order a claim takes them (version 8). The
# planner picks by its statistics, which right after an issue is opened say every delivery is
# pending: it then took the batch from the primary key in address order, reading past every
# delivery already sent. This index holds only what a claim looks for. (SQLite plans the claim
# from the status index. Made by this hook rather than declared as an Index with a PostgreSQL
# clause, which would load SQLAlchemy's PostgreSQL dialect into every process.)
def _create_pending_index(_table: sa.Table, conn: Connection, **_kw: Any) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text(
                "CREATE INDEX IF NOT EXISTS ix_deliveries_pending ON deliveries (issue_key, email) "
                "WHERE status = 'pending'"
            )
        )


sa.event.listen(deliveries, "after_create", _create_pending_index)

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

# The editor's choices for an upcoming issue (`digest issue pin|drop|order|subject|note`, or the
# preview page): one row per issue; the lists are JSON arrays of article ids.
issue_edits = sa.Table(
    "issue_edits",
    metadata,
    sa.Column("issue_key", sa.String(64), primary_key=True),
    sa.Column("pinned", sa.String(255)),
    sa.Column("dropped", sa.Text, nullable=False, default="[]"),
    sa.Column("ordered", sa.Text, nullable=False, default="[]"),
    sa.Column("subject", sa.Text),
    sa.Column("note", sa.Text),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)


# What came back after a send: bounces, complaints and unsubscribes, from an e-mail service's
# webhook, the bounce mailbox or the unsubscribe link; matched to the issue when it can be.
# kind: hard-bounce | soft-bounce | complaint | unsubscribe
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("issue_key", sa.String(64), index=True),
    sa.Column("email", sa.String(320), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("origin", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("at", UTCDateTime, nullable=False),
)

# Webhook tokens already seen (Mailgun's one-time token): a replayed request is refused.
webhook_tokens = sa.Table(
    "webhook_tokens",
    metadata,
    sa.Column("token", sa.String(128), primary_key=True),
    sa.Column("seen_at", UTCDateTime, nullable=False),
)


def _add_feedback_tables(conn: Connection) -> None:
    feedback.create(conn, checkfirst=True)
    webhook_tokens.create(conn, checkfirst=True)


def _add_summary_by_editor(conn: Connection) -> None:
    kind = sa.Boolean().compile(dialect=conn.dialect)
    false = sa.false().compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE articles ADD COLUMN summary_by_editor {kind} NOT NULL DEFAULT {false}"))
    # Before version 2 the teaser took a summary as the editor's when the article came from a
    # Markdown or plain-text file. Re-ingesting would not set the flag (it is not part of the
    # content hash), so the rows stored then keep that reading here.
    editor_files = sa.or_(*(articles.c.origin.like(f"%{suffix}") for suffix in (".md", ".markdown", ".txt")))
    conn.execute(articles.update().where(articles.c.summary.is_not(None), editor_files).values(summary_by_editor=True))


def _add_issue_edits(conn: Connection) -> None:
    # Version 3: the table of per-issue editorial choices; nothing earlier to carry over.
    issue_edits.create(conn, checkfirst=True)


def _add_image_width(conn: Connection) -> None:
    # Nullable: the rows stored before are shown as before (at the column's width).
    kind = sa.Integer().compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE articles ADD COLUMN image_width {kind}"))


def _one_subscriber_per_address(conn: Connection) -> None:
    """Version 6: subscribers get an address key; rows whose addresses differ only in letter case
    become one, keeping the most restrictive status (someone who left stays gone) and recording
    the merge in the new history table."""
    from digest.subscribers import address_key, most_restrictive

    conn.execute(sa.text("ALTER TABLE subscribers ADD COLUMN address_key VARCHAR(320)"))
    subscriber_events.create(conn, checkfirst=True)
    s = subscribers.c
    groups: dict[str, list[Any]] = {}
    for row in conn.execute(sa.select(s.email, s.name, s.status, s.created_at).order_by(s.created_at, s.email)):
        groups.setdefault(address_key(row.email), []).append(row)
    now = datetime.now(timezone.utc)
    for key, rows in groups.items():
        keep, others = rows[0], rows[1:]
        status = most_restrictive(r.status for r in rows)
        name = next((r.name for r in rows if r.name), None)
        if others:
            conn.execute(subscribers.delete().where(s.email.in_([r.email for r in others])))
            merged = ", ".join(r.email for r in others)
            conn.execute(
                subscriber_events.insert().values(
                    address_key=key, at=now, status=status, origin="migration", reason=f"merged with {merged}"
                )
            )
        conn.execute(
            subscribers.update().where(s.email == keep.email).values(address_key=key, status=status, name=name)
        )
    for index in subscribers.indexes:
        index.create(conn)


def _add_delivery_handed(conn: Connection) -> None:
    """Version 7: deliveries record whether their message may be on its way. What an older
    sender left in flight may have gone out: it keeps counting as such."""
    kind = sa.Boolean().compile(dialect=conn.dialect)
    false = sa.false().compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE deliveries ADD COLUMN handed {kind} NOT NULL DEFAULT {false}"))
    conn.execute(deliveries.update().where(deliveries.c.status == "inflight").values(handed=True))


def _add_pending_index(conn: Connection) -> None:
    """Version 8: on PostgreSQL, the index of pending deliveries a claim reads."""
    _create_pending_index(deliveries, conn)


#: The step that brings a database to each version from the one before it.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: _add_summary_by_editor,
    3: _add_issue_edits,
    4: _add_image_width,
    5: _add_feedback_tables,
    6: _one_subscriber_per_address,
    7: _add_delivery_handed,
    8: _add_pending_index,
}


def _version(conn: Connection) -> int | None:
    if not sa.inspect(conn).has_table(meta.name):
        return None
    found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
    return None if found is None else int(found)


def _holds_only_other_tables(conn: Connection) -> bool:
    """Whether the database has tables and none of them is digest's (APScheduler's job table,
    which digest keeps beside its own, does not count as digest's)."""
    present = set(sa.inspect(conn).get_table_names())
    return bool(present) and not present & set(metadata.tables)


def migrate(engine: Engine, *, where: str) -> None:
    """Bring the database at ``engine`` to SCHEMA_VERSION: create it when empty, run the missing
    migrations when older, refuse it (StateError naming ``where``) when newer."""
    with engine.connect() as conn:
        found = _version(conn)
        foreign = found is None and _holds_only_other_tables(conn)
    if foreign:
        raise StateError(
            f"state database {where} holds tables but none of digest's, so it is another program's "
            "database; give [state] url a database of digest's own"
        )
    if found is not None and found > SCHEMA_VERSION:
        raise StateError(
            f"state database {where} has schema version {found}, newer than this digest's {SCHEMA_VERSION}; "
            "upgrade digest or use a fresh [state] url"
        )
    if found is not None:
        for version in range(found + 1, SCHEMA_VERSION + 1):
            with engine.begin() as conn:
                # Another process may have run this step since the version was read.
                if (_version(conn) or 0) >= version:
                    continue
                MIGRATIONS[version](conn)
                conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(version)))
    metadata.create_all(engine)
    if found is None:
        with engine.begin() as conn:
            try:
                conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            except IntegrityError:
                pass  # another process made the database at the same moment
