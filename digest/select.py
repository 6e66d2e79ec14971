"""Which articles make an issue, and why the others did not."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from digest.models import Article, IssueEdits, Skipped

LEFT_OUT = "left out by the editor (digest issue drop)"


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
    edits: IssueEdits | None = None,
) -> Selection:
    """Articles published in (window_start, as_of], not carried by an earlier issue, newest first,
    at most ``max_articles``. Every candidate left out is returned with the reason.

    The editor's ``edits`` come first: an article left out is skipped, the pinned one leads, the
    ordered ones follow in their order, then the rest newest first; the cap applies after that."""
    edits = edits or IssueEdits("")
    eligible: list[Article] = []
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
        elif a.id in edits.dropped:
            skipped.append(Skipped(a, LEFT_OUT))
        else:
            eligible.append(a)
    first = ([edits.pinned] if edits.pinned else []) + [i for i in edits.order if i != edits.pinned]
    rank = {article_id: n for n, article_id in enumerate(first)}
    # A stable sort: articles the editor did not place keep their newest-first order after the placed ones.
    eligible.sort(key=lambda a: rank.get(a.id, len(rank)))
    for a in eligible[max_articles:]:
        skipped.append(Skipped(a, f"over the cap of {max_articles} articles"))
    return Selection(tuple(eligible[:max_articles]), tuple(skipped))


def too_few_articles(count: int, min_articles: int) -> str | None:
    """Why an issue of ``count`` articles is too thin to send (``selection.min_articles``): such
    an issue is skipped at its slot. None when there are enough."""
    if count >= min_articles:
        return None
    return f"only {count} new article{'s' if count != 1 else ''}, fewer than selection.min_articles = {min_articles}"
