"""Issues with their articles, the holds editors put on them, and the [PREVIEW] reviews sent before a slot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from digest.models import RenderedIssue
from digest.store.records import ArchivedIssue, HoldRecord, IssueRecord, IssueSummary, ReviewRecord, record_from_row
from digest.store.repository import Repository
from digest.store.schema import UTCDateTime, deliveries, holds, issue_articles, issues, reviews, subscribers

# Issues that went out, or are going out, to subscribers.
PUBLISHED = ("sending", "sent")


class IssuesRepository(Repository):
    def get(self, key: str) -> IssueRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(issues).where(issues.c.key == key)).first()
        return None if row is None else record_from_row(IssueRecord, row)

    def claim(
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
        fresh = {"status": "pending", "attempts": 0, "interrupted": 0, "updated_at": now}
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
                        [{"issue_key": key, "email": e, "name": n, **fresh} for e, n in recipients],
                    )
        except IntegrityError:
            return False
        if self.engine.dialect.name == "postgresql":
            # The issue's deliveries were just written, many at once: until the statistics count
            # them, PostgreSQL plans the send's statements as if the issue had none (and read the
            # whole issue for each batch a sender claimed). Autovacuum would catch up a minute
            # or so later; the send starts now.
            with self.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE deliveries")
                conn.commit()
        return True

    def record_skipped(self, key: str, *, slot: datetime, note: str, now: datetime) -> bool:
        """Record that an issue's slot passed without one (``note`` says why); False when it exists."""
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

    def unskip(self, key: str) -> bool:
        """Forget that an issue's slot was skipped, so it can be sent after all; False when the
        issue is not recorded as skipped."""
        with self.engine.begin() as conn:
            n = conn.execute(issues.delete().where(issues.c.key == key, issues.c.status == "skipped")).rowcount
        return bool(n)

    def rendered(self, key: str) -> RenderedIssue | None:
        """The issue as it was rendered when its send began (per-recipient markers still in)."""
        row = self.get(key)
        if row is None or row.html is None or row.subject is None or row.text is None:
            return None
        return RenderedIssue(key=key, subject=row.subject, preheader=row.preheader or "", html=row.html, text=row.text)

    def finish(self, key: str, *, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(issues.update().where(issues.c.key == key).values(status="sent", finished_at=now))

    def unfinished(self) -> list[IssueRecord]:
        """Issues whose send began and has not finished, oldest slot first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(issues).where(issues.c.status == "sending").order_by(issues.c.slot)).all()
        return [record_from_row(IssueRecord, r) for r in rows]

    def _summaries(self, q: sa.Select[Any]) -> list[IssueSummary]:
        with self.engine.connect() as conn:
            return [record_from_row(IssueSummary, r) for r in conn.execute(q)]

    def published(self) -> list[IssueSummary]:
        """Issues that went out (or are going out) to subscribers, newest slot first."""
        return self._summaries(self._summary_query().where(issues.c.status.in_(PUBLISHED)))

    def archived(self, *, sent_only: bool = False) -> list[ArchivedIssue]:
        """Issues that went out (``sent_only``: finished sending), newest slot first, each with
        the number of articles it carried."""
        count = (
            sa.select(sa.func.count())
            .where(issue_articles.c.issue_key == issues.c.key)
            .scalar_subquery()
            .label("articles")
        )
        cols = [issues.c[f] for f in ("key", "slot", "status", "subject", "preheader", "created_at", "finished_at")]
        statuses = ("sent",) if sent_only else PUBLISHED
        q = sa.select(*cols, count).where(issues.c.status.in_(statuses)).order_by(issues.c.slot.desc())
        with self.engine.connect() as conn:
            return [record_from_row(ArchivedIssue, r) for r in conn.execute(q)]

    def recent(self, limit: int = 20) -> list[IssueSummary]:
        """The latest issues of any status, newest slot first."""
        return self._summaries(self._summary_query().limit(limit))

    @staticmethod
    def _summary_query() -> sa.Select[Any]:
        cols = [
            issues.c[f] for f in ("key", "slot", "status", "subject", "preheader", "note", "created_at", "finished_at")
        ]
        return sa.select(*cols).order_by(issues.c.slot.desc())

    def carried_article_ids(self, *, excluding: str | None = None) -> set[str]:
        """Articles already carried by an issue that was sent or is being sent."""
        q = (
            sa.select(issue_articles.c.article_id)
            .join(issues, issues.c.key == issue_articles.c.issue_key)
            .where(issues.c.status.in_(PUBLISHED))
        )
        if excluding is not None:
            q = q.where(issues.c.key != excluding)
        with self.engine.connect() as conn:
            return set(conn.execute(q).scalars())

    # --- holds: issues an editor held back (`digest hold ISSUE`) ----------------------------------

    def hold(self, key: str, *, now: datetime, note: str | None = None) -> bool:
        """Hold an issue back from its slot. False when it was already held."""
        try:
            with self.engine.begin() as conn:
                conn.execute(holds.insert().values(issue_key=key, created_at=now, note=note))
        except IntegrityError:
            return False
        return True

    def release_hold(self, key: str) -> bool:
        """Let a held issue go out at its slot again; False when it was not held."""
        with self.engine.begin() as conn:
            return bool(conn.execute(holds.delete().where(holds.c.issue_key == key)).rowcount)

    def is_held(self, key: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(holds.c.issue_key).where(holds.c.issue_key == key)).first() is not None

    def held(self) -> list[HoldRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(holds).order_by(holds.c.issue_key)).all()
        return [record_from_row(HoldRecord, r) for r in rows]

    # --- reviews: the [PREVIEW] sent to the editors before a slot ---------------------------------

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

    def review(self, key: str) -> ReviewRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(reviews).where(reviews.c.issue_key == key)).first()
        return None if row is None else record_from_row(ReviewRecord, row)
