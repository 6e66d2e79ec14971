"""Feedback after a send: bounces, complaints and unsubscribes, each matched to an issue when it
can be, and the one-time webhook tokens already seen."""

from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from digest.store.repository import Repository, utcnow
from digest.store.schema import deliveries, feedback, issues, subscribers, webhook_tokens
from digest.store.subscribers import record_status
from digest.subscribers import address_key

# The Message-IDs digest writes (digest.delivery.mime.MessageTemplate.new_message_id): the issue's
# key, a random part and a sequence number.
_OUR_MESSAGE_ID = re.compile(r"^(?P<key>.+)\.[0-9a-f]{16}\.\d+@")


class FeedbackRepository(Repository):
    """Each lookup here runs once per bounce, complaint or unsubscribe, against every delivery ever
    made (an issue's worth per subscriber and issue): none may read them all. The deliveries are
    found through their primary key, issue by issue, or within the one issue a Message-ID names."""

    def delivery_for_message_id(self, message_id: str) -> tuple[str, str] | None:
        """(issue key, address) of the delivery sent with this Message-ID, or None."""
        bare = message_id.strip().strip("<>")
        cond: list[sa.ColumnElement[bool]] = [deliveries.c.message_id.in_([bare, f"<{bare}>"])]
        ours = _OUR_MESSAGE_ID.match(bare)
        with self.engine.connect() as conn:
            if ours and conn.execute(sa.select(issues.c.key).where(issues.c.key == ours["key"])).first():
                cond.append(deliveries.c.issue_key == ours["key"])  # (a Message-ID of ours: one issue)
            row = conn.execute(sa.select(deliveries.c.issue_key, deliveries.c.email).where(*cond)).first()
        return None if row is None else (row.issue_key, row.email)

    def _addresses(self, conn: sa.Connection, email: str) -> list[str]:
        """The forms ``email`` may be stored in: as the subscriber it matches gave it (the same
        address key: letter case, the domain as Unicode or IDNA), and as given here."""
        stored = conn.execute(sa.select(subscribers.c.email).where(subscribers.c.address_key == address_key(email)))
        return list(dict.fromkeys([*stored.scalars(), email]))

    def _sent_to(self, conn: sa.Connection, addresses: list[str]) -> list[str]:
        """The issues sent to any of ``addresses``, newest first. For each address and issue, its
        delivery is looked up by primary key: one address at a time, and as a subquery with a
        LIMIT, which no planner turns into a read of the deliveries, whatever its statistics say."""
        d = deliveries.c
        slots: dict[str, datetime] = {}
        for address in addresses:
            sent = (
                sa.select(sa.literal(1))
                .where(d.issue_key == issues.c.key, d.status == "sent", d.email == address)
                .limit(1)
                .correlate(issues)
                .scalar_subquery()
            )
            for key, slot in conn.execute(sa.select(issues.c.key, issues.c.slot).where(sent.is_not(None))):
                slots[key] = slot
        return sorted(slots, key=lambda key: slots[key], reverse=True)

    def stored_address(self, email: str) -> str:
        """``email`` as its subscriber gave it (the same address key), or as given when no
        subscriber has it: feedback is recorded under one form of each address."""
        with self.engine.connect() as conn:
            return self._addresses(conn, email)[0]

    def latest_issue_for(self, email: str) -> str | None:
        """The last issue sent to ``email``, for feedback that names no issue."""
        with self.engine.connect() as conn:
            sent = self._sent_to(conn, self._addresses(conn, email))
        return sent[0] if sent else None

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
        with self.engine.connect() as conn:
            addresses = self._addresses(conn, email)
            soft = sa.select(feedback.c.issue_key).where(
                feedback.c.email.in_(addresses), feedback.c.kind == "soft-bounce"
            )
            bounced = set(conn.execute(soft).scalars())
            run = 0
            for issue_key in self._sent_to(conn, addresses):
                if issue_key not in bounced:
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
