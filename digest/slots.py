"""Scheduled slots and issue keys.

An issue belongs to a slot: a moment the ``[schedule] cron`` fires, in the newsletter's time zone.
The slot's key names the issue (``2025-W33`` for a weekly schedule), so every run for the same
slot — a retry, a restart, a second process, a manual ``digest run`` — agrees on which issue it is.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_TICK = timedelta(microseconds=1)


def trigger_for(cron: str, tz: ZoneInfo) -> CronTrigger:
    return CronTrigger.from_crontab(cron, timezone=tz)


def next_slot(trigger: CronTrigger, after: datetime) -> datetime:
    """The first slot strictly after ``after``."""
    # APScheduler 3 has no type hints: a fire time, or None when the trigger is done.
    t: datetime | None = trigger.get_next_fire_time(None, after + _TICK)
    if t is None:
        raise ValueError("the schedule never fires again")
    return t


def slot_at_or_before(trigger: CronTrigger, moment: datetime) -> datetime:
    """The latest slot at or before ``moment``."""
    for days in (1, 8, 32, 367, 4 * 366):
        t: datetime | None = trigger.get_next_fire_time(None, moment - timedelta(days=days))
        if t is None or t > moment:
            continue
        while True:
            n: datetime | None = trigger.get_next_fire_time(t, t + _TICK)
            if n is None or n > moment:
                return t
            t = n
    raise ValueError(f"the schedule has no slot in the four years before {moment.isoformat()}")


def issue_key(trigger: CronTrigger, slot: datetime) -> str:
    """A readable key for the slot: the ISO week when the schedule fires at most weekly, the date
    when at most daily, else the local date and time."""
    local = slot.astimezone(trigger.timezone)
    before = slot_at_or_before(trigger, slot - _TICK)
    after = next_slot(trigger, slot)

    def fmt(t: datetime, f: str) -> str:
        return t.astimezone(trigger.timezone).strftime(f)

    if fmt(before, "%G-W%V") != fmt(slot, "%G-W%V") != fmt(after, "%G-W%V"):
        return local.strftime("%G-W%V")
    if fmt(before, "%Y-%m-%d") != fmt(slot, "%Y-%m-%d") != fmt(after, "%Y-%m-%d"):
        return local.strftime("%Y-%m-%d")
    return local.strftime("%Y-%m-%dT%H%M")
