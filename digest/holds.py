"""Holding an issue back from its slot (``digest hold``): which issues may be held."""

from __future__ import annotations

from datetime import datetime

from digest.config import Settings
from digest.errors import UsageError
from digest.pipeline import due_slot, upcoming_slot
from digest.store import Store

# How far ahead an issue may be held, in slots (more than a year of a weekly schedule).
HOLD_AHEAD_SLOTS = 60

_DONE = {"sent": "was already sent", "sending": "is being sent", "skipped": "was skipped"}


def holdable_keys(settings: Settings, now: datetime) -> list[str]:
    """The issue due now, then the next :data:`HOLD_AHEAD_SLOTS` ones."""
    keys = [due_slot(settings, now).key]
    moment = now
    for _ in range(HOLD_AHEAD_SLOTS):
        slot = upcoming_slot(settings, moment)
        keys.append(slot.key)
        moment = slot.at
    return keys


def hold_issue(settings: Settings, store: Store, key: str, *, now: datetime) -> bool:
    """Hold issue ``key`` back; False when it was already held. Raises UsageError for an issue
    that has gone out (or begun to) and for a key that is not an upcoming issue of the schedule."""
    row = store.issues.get(key)
    if row is not None:
        raise UsageError(f"issue {key} {_DONE.get(row.status, row.status)}; a hold cannot change that")
    known = holdable_keys(settings, now)
    if key not in known:
        raise UsageError(
            f"{key!r} is not an upcoming issue of this schedule; the next ones are {', '.join(known[1:4])}"
        )
    return store.issues.hold(key, now=now)
