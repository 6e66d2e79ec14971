"""Dates as pages and feeds print them. (Text clean-up shared with the other stages is in :mod:`digest.text`.)"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

_WS = re.compile(r"\s+")
_DATE_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%B %d %Y", "%d %B %Y", "%Y-%m-%d", "%b. %d, %Y")


def parse_loose_date(value: str) -> date | None:
    """A calendar date as printed on a page ("July 25, 2025", "2025-07-25"), or None."""
    v = _WS.sub(" ", value.strip())
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(v, fmt).date()
        except ValueError:
            continue
    return None


def as_aware(value: datetime | date, tz: ZoneInfo) -> datetime:
    """A timezone-aware datetime: naive values and bare dates are taken in ``tz`` (a bare date at
    midnight)."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0, 0))
    aware = value if value.tzinfo is not None else value.replace(tzinfo=tz)
    try:
        aware.astimezone(timezone.utc)  # stored in UTC: year 1 east of UTC would be year 0
    except OverflowError:
        raise ValueError(f"date {value.isoformat()} is out of range") from None
    return aware
