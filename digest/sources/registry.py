"""The source kinds by name: the values ``[[sources]] kind`` accepts.

This table is the one list of kinds: loading the config checks each source's kind against it, and
:func:`source_from_settings` builds the source it names. The contract module
(:mod:`digest.sources.base`) imports no source, so no source imports back into a module that
imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from digest.sources.base import Source
from digest.sources.feed import FeedSource
from digest.sources.folder import FolderSource
from digest.sources.http import Fetcher
from digest.sources.page import PageSource

if TYPE_CHECKING:
    from digest.config import SourceSettings

SOURCE_KINDS: dict[str, type[Source]] = {source.kind: source for source in (FeedSource, PageSource, FolderSource)}


def source_from_settings(settings: SourceSettings, *, tz: ZoneInfo, fetcher: Fetcher | None = None) -> Source:
    """The source a ``[[sources]]`` table describes."""
    return SOURCE_KINDS[settings.kind](settings, tz=tz, fetcher=fetcher)
