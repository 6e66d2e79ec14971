"""The source contract.

A source is built from its ``[[sources]]`` table and, when read, returns every article it can see
as :class:`~digest.models.Article` values, newest or oldest first (order does not matter). It never
writes state; the pipeline stores what it returns. A source that cannot be read at all raises
:class:`~digest.errors.SourceError` naming the source and the reason; an individual unreadable item
is skipped with a warning in the log, so one bad file does not hide the others.

``now`` is the moment of reading (a controllable clock in tests); ``tz`` is the newsletter's time
zone, used for dates that carry none.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from zoneinfo import ZoneInfo

from digest.config import SourceSettings
from digest.models import Article


class Source(ABC):
    def __init__(self, settings: SourceSettings, *, tz: ZoneInfo) -> None:
        self.settings = settings
        self.name = settings.name
        self.tz = tz

    @property
    def location(self) -> str:
        return self.settings.url or str(self.settings.path)

    @abstractmethod
    def read(self, now: datetime) -> list[Article]:
        """Every article this source offers now."""


def source_from_settings(settings: SourceSettings, *, tz: ZoneInfo) -> Source:
    from digest.sources.feed import FeedSource
    from digest.sources.folder import FolderSource
    from digest.sources.page import PageSource

    kinds: dict[str, type[Source]] = {"feed": FeedSource, "page": PageSource, "folder": FolderSource}
    return kinds[settings.kind](settings, tz=tz)
