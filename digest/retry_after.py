"""Reading an HTTP Retry-After header, for fetching feeds and for e-mail services alike."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime


def _http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def retry_after_seconds(value: str | None, *, date_header: str | None = None) -> float | None:
    """Seconds asked for by a Retry-After header: delay-seconds or an HTTP date (RFC 9110
    §10.2.3). An HTTP date is measured against the response's own Date header when there is one,
    so a skewed local clock does not matter. None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    ref = (_http_date(date_header) if date_header else None) or datetime.now(timezone.utc)
    return max(0.0, (when - ref).total_seconds())
