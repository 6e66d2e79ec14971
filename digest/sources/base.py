"""The source contract.

A source is built from its ``[[sources]]`` table. :meth:`Source.collect` reads it once and returns
a :class:`SourceResult`: every article it can see now (order does not matter), or ``not_modified``
when the site answered a conditional GET with 304 (nothing was downloaded or parsed), plus what
the pipeline should remember for next time (validators, a permanently moved URL) and one line per
item that could not be read. :meth:`Source.read` is the short form that returns the articles.

A source never writes state; the pipeline stores what it returns and hands back what was stored
(:class:`SourceState`) on the next run. A source that cannot be read at all raises
:class:`~digest.errors.SourceError` naming the source, the file or URL, and the reason, on one
line; an individual unreadable item is skipped and reported in ``problems``, so one bad item does
not hide the others.

``now`` is the moment of reading (a controllable clock in tests); ``tz`` is the newsletter's time
zone, used for dates that carry none. Network access goes through the shared
:class:`~digest.sources.http.Fetcher`, which keeps every source polite to every host.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from digest.config import SourceSettings
from digest.errors import SourceError
from digest.models import Article
from digest.sources.http import Fetcher, FetchResult, default_fetcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceState:
    """What the store remembers about a source between runs."""

    etag: str | None = None
    last_modified: str | None = None
    # The URL a permanent redirect moved the source to; fetched instead of the configured one.
    moved_to: str | None = None
    # Recognition keys (see digest.sources.identity.article_key) of the ids this source has already stored; a
    # fetch_full feed fetches pages only for items not in here.
    known_keys: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SourceResult:
    articles: tuple[Article, ...] = ()
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    moved_to: str | None = None
    problems: tuple[str, ...] = field(default=())

    @classmethod
    def unchanged(cls, res: FetchResult, state: SourceState) -> SourceResult:
        """The result of a 304: nothing to parse, the validators kept."""
        return cls(
            not_modified=True,
            etag=res.etag or state.etag,
            last_modified=res.last_modified or state.last_modified,
            moved_to=res.moved_to or state.moved_to,
        )


class Source(ABC):
    #: The ``[[sources]] kind`` value that selects this source (see digest.sources.registry).
    kind = "source"

    def __init__(self, settings: SourceSettings, *, tz: ZoneInfo, fetcher: Fetcher | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self.tz = tz
        self.fetcher = fetcher or default_fetcher()

    @property
    def location(self) -> str:
        return self.settings.url or str(self.settings.path)

    @abstractmethod
    def collect(self, now: datetime, state: SourceState | None = None) -> SourceResult:
        """Read the source once (see the module docstring)."""

    def fetch(self, state: SourceState, *, accept: str) -> FetchResult:
        """GET the source's URL — where a permanent redirect moved it, if one did — conditionally
        on the validators stored last time."""
        assert self.settings.url is not None
        return self.fetcher.get(
            state.moved_to or self.settings.url,
            source=self.name,
            etag=state.etag,
            last_modified=state.last_modified,
            user_agent=self.settings.user_agent,
            accept=accept,
        )

    def read_file(self) -> bytes:
        """The bytes of the source's local file."""
        assert self.settings.path is not None
        cap = int(self.settings.max_file_mb * 1024 * 1024)
        try:
            with self.settings.path.open("rb") as fh:
                data = fh.read(cap + 1)
        except OSError as exc:
            raise SourceError(
                f"source {self.name!r}: cannot read {self.settings.path}: {exc.strerror or exc}"
            ) from None
        if len(data) > cap:
            raise SourceError(
                f"source {self.name!r}: {self.settings.path} is larger than the {self.settings.max_file_mb:g} MB "
                "limit; raise max_file_mb for this source if it is really a feed or page"
            )
        return data

    def read(self, now: datetime) -> list[Article]:
        """Every article this source offers now, ignoring any remembered state; problems with
        single items are logged as warnings."""
        result = self.collect(now)
        for problem in result.problems:
            log.warning("source %r: %s", self.name, problem)
        return list(result.articles)
