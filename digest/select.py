"""Which articles make an issue, and why the others did not."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from digest.models import Article, Skipped


@dataclass(frozen=True)
class Selection:
    chosen: tuple[Article, ...]
    skipped: tuple[Skipped, ...]


def select_articles(
    candidates: Iterable[Article],
    *,
    as_of: datetime,
    window_start: datetime,
    already_sent: set[str],
    max_articles: int,
) -> Selection:
    """Articles published in (window_start, as_of], not carried by an earlier issue, newest first,
    at most ``max_articles``. Every candidate left out is returned with the reason."""
    chosen: list[Article] = []
    skipped: list[Skipped] = []
    ordered = sorted(candidates, key=lambda a: (a.published, a.id), reverse=True)
    seen: set[str] = set()
    for a in ordered:
        if a.id in seen:
            continue
        seen.add(a.id)
        if a.published > as_of:
            skipped.append(
                Skipped(
                    a,
                    f"dated after this issue's moment ({as_of.isoformat(timespec='minutes')}): held until its date",
                )
            )
        elif a.published <= window_start:
            skipped.append(Skipped(a, f"published before the window ({window_start.isoformat(timespec='minutes')})"))
        elif a.id in already_sent:
            skipped.append(Skipped(a, "already sent in an earlier issue"))
        elif len(chosen) >= max_articles:
            skipped.append(Skipped(a, f"over the cap of {max_articles} articles"))
        else:
            chosen.append(a)
    return Selection(tuple(chosen), tuple(skipped))


def too_few_articles(count: int, min_articles: int) -> str | None:
    """Why an issue of ``count`` articles is too thin to send (``selection.min_articles``): such
    an issue is skipped at its slot. None when there are enough."""
    if count >= min_articles:
        return None
    return f"only {count} new article{'s' if count != 1 else ''}, fewer than selection.min_articles = {min_articles}"
