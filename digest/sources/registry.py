"""The source kinds by name: the one table from a ``[[sources]] kind`` value to its class.

The config accepts the names in :data:`digest.config.SOURCE_KINDS` (it sits below the sources and
imports none of them; a test keeps that list equal to this table's keys), and
:func:`source_from_settings` builds the source a table describes. The contract module
(:mod:`digest.sources.base`) imports no source, so no source imports back into a module that
imports it.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from digest.config import SourceSettings
from digest.sources.base import Source
from digest.sources.feed import FeedSource
from digest.sources.folder import FolderSource
from digest.sources.http import Fetcher
from digest.sources.page import PageSource

SOURCE_KINDS: dict[str, type[Source]] = {source.kind: source for source in (FeedSource, PageSource, FolderSource)}


def source_from_settings(settings: SourceSettings, *, tz: ZoneInfo, fetcher: Fetcher | None = None) -> Source:
    """The source a ``[[sources]]`` table describes."""
    return SOURCE_KINDS[settings.kind](settings, tz=tz, fetcher=fetcher)
