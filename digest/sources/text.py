"""Text clean-up shared by every reader: whitespace, entities, tags, dates."""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

_WS = re.compile(r"\s+")
# A tag starts with a letter, "/" or "!": text such as "I <3 feeds" or "a < b > c" is not markup.
_TAG = re.compile(r"</?[A-Za-z!][^<>]*>")
# C0/C1 control characters other than whitespace: illegal in XML 1.0, yet real feeds carry them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_text(value: str | None) -> str:
    """Text from markup: decode entities, drop tags, then :func:`normalise_space`."""
    if not value:
        return ""
    text = html.unescape(_TAG.sub(" ", value)) if ("<" in value or "&" in value) else value
    return normalise_space(text)


def normalise_space(value: str | None) -> str:
    """Plain text tidied: NFC, soft hyphens and control characters gone, whitespace (non-breaking
    too) folded to one space."""
    if not value:
        return ""
    text = unicodedata.normalize("NFC", value).replace("\u00ad", "")
    return _WS.sub(" ", _CONTROL.sub("", text)).strip()


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
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)
