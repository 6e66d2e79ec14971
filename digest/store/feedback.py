"""Feedback after a send: bounces, complaints and unsubscribes, each matched to an issue when it
can be, and the one-time webhook tokens already seen."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from digest.store.repository import Repository, utcnow
from digest.store.schema import deliveries, feedback, issues, subscribers, webhook_tokens
from digest.store.subscribers import record_status
from digest.subscribers import address_key


class FeedbackRepository(Repository):
    def delivery_for_message_id(self, message_id: str) -> tuple[str, str] | None:
        """(issue key, address) of the delivery sent with this Message-ID, or None."""
        bare = message_id.strip().strip("<>")
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(deliveries.c.issue_key, deliveries.c.email).where(
                    deliveries.c.message_id.in_([bare, f"<{bare}>"])
                )
            ).first()
        return None if row is None else (row.issue_key, row.email)

    def latest_issue_for(self, email: str) -> str | None:
        """The last issue sent to ``email``, for feedback that names no issue."""
        q = (
            sa.select(deliveries.c.issue_key)
            .join(issues, issues.c.key == deliveries.c.issue_key)
            .where(sa.func.lower(deliveries.c.email) == email.lower(), deliveries.c.status == "sent")
            .order_by(issues.c.slot.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(q).scalar()

    def record(
        self,
        *,
        email: str,
        kind: str,
        origin: str,
        issue_key: str | None,
        detail: str | None = None,
        now: datetime | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                feedback.insert().values(
                    email=email, kind=kind, origin=origin, issue_key=issue_key, detail=detail, at=now or utcnow()
                )
            )

    def soft_bounces_in_a_row(self, email: str) -> int:
        """How many of the last issues sent to ``email``, newest first, soft-bounced without a
        break (an issue that did not bounce ends the run)."""
        sent = (
            sa.select(deliveries.c.issue_key)
            .join(issues, issues.c.key == deliveries.c.issue_key)
            .where(sa.func.lower(deliveries.c.email) == email.lower(), deliveries.c.status == "sent")
            .order_by(issues.c.slot.desc())
        )
        soft = sa.select(feedback.c.issue_key).where(
            sa.func.lower(feedback.c.email) == email.lower(), feedback.c.kind == "soft-bounce"
        )
        with self.engine.connect() as conn:
            bounced = {r.issue_key for r in conn.execute(soft)}
            run = 0
            for row in conn.execute(sent):
                if row.issue_key not in bounced:
                    break
                run += 1
        return run

    def counts(self, issue_key: str) -> dict[str, int]:
        """Feedback for one issue: kind → number of distinct addresses."""
        q = (
            sa.select(feedback.c.kind, sa.func.count(sa.distinct(sa.func.lower(feedback.c.email))))
            .where(feedback.c.issue_key == issue_key)
            .group_by(feedback.c.kind)
        )
        with self.engine.connect() as conn:
            return {kind: n for kind, n in conn.execute(q)}

    def suppress(self, email: str, status: str, *, origin: str, now: datetime | None = None) -> bool:
        """Take an active address off the list with ``status`` (bounced, complained,
        unsubscribed), recorded in its history with ``origin``; an address that already left keeps
        its status. True when it changed."""
        key = address_key(email)
        with self.engine.begin() as conn:
            active = conn.execute(
                sa.select(subscribers.c.email).where(subscribers.c.address_key == key, subscribers.c.status == "active")
            ).first()
            if active is None:
                return False
            record_status(conn, key, status, origin=origin, reason=f"{status} ({origin})", now=now or utcnow())
        return True

    def first_use(self, token: str, *, now: datetime | None = None) -> bool:
        """Record a one-time webhook token; False when it was seen before (a replay)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(webhook_tokens.insert().values(token=token, seen_at=now or utcnow()))
        except IntegrityError:
            return False
        return True
