"""What comes back after a send — bounces, complaints, unsubscribes — applied to the list.

Every source of feedback (an e-mail service's webhook, the bounce mailbox, the unsubscribe mailto)
turns what it read into :class:`Feedback` and hands it to :func:`apply_feedback`: hard bounces and
complaints take the address off the list at once, a soft bounce only after
``[webhooks] soft_bounce_limit`` issues in a row bounced softly. Each is recorded against the issue
it answers (by Message-ID when known, else the last issue sent to the address), for
``digest status ISSUE``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from digest.store import Store

log = logging.getLogger(__name__)

Kind = Literal["hard-bounce", "soft-bounce", "complaint", "unsubscribe"]

# The subscriber status each kind of feedback leaves behind when it suppresses.
_STATUS = {"hard-bounce": "bounced", "soft-bounce": "bounced", "complaint": "complained", "unsubscribe": "unsubscribed"}


@dataclass(frozen=True)
class Feedback:
    email: str
    kind: Kind
    #: Where it came from: webhook:mailgun, webhook:sendgrid, webhook:postmark, mailbox.
    origin: str
    message_id: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Applied:
    """What :func:`apply_feedback` did with one report, and what it matched the report to."""

    #: ``suppressed``, ``recorded`` (a soft bounce below the limit, or an address already off the
    #: list) or ``unmatched`` (a report that names no address and returns no message of ours).
    outcome: str
    #: The address: the delivery's when the report returned a message of ours, else as reported.
    address: str
    issue_key: str | None


def apply_feedback(store: Store, item: Feedback, *, now: datetime, soft_bounce_limit: int) -> Applied:
    """Record ``item`` and suppress the address when it calls for that; says what was done."""
    found = store.feedback.delivery_for_message_id(item.message_id) if item.message_id else None
    address = found[1] if found else item.email
    if not address:
        return Applied("unmatched", address, None)
    # (Recorded as the subscriber gave the address, whatever case or form the report used, so the
    # soft bounces of one address are counted together.)
    email = address if found else store.feedback.stored_address(address)
    issue_key = found[0] if found else store.feedback.latest_issue_for(email)
    store.feedback.record(
        email=email, kind=item.kind, origin=item.origin, issue_key=issue_key, detail=item.detail, now=now
    )
    if item.kind == "soft-bounce" and store.feedback.soft_bounces_in_a_row(email) < soft_bounce_limit:
        log.info("%s: soft bounce from %s recorded", item.origin, email)
        return Applied("recorded", address, issue_key)
    if store.feedback.suppress(email, _STATUS[item.kind], origin=item.origin, now=now):
        log.info("%s: %s from %s: taken off the list", item.origin, item.kind, email)
        return Applied("suppressed", address, issue_key)
    return Applied("recorded", address, issue_key)
