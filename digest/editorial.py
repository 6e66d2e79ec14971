"""The editor's control over one upcoming issue: pin a lead story, leave articles out, set their
order, the subject and the editor's note. Stored per issue (digest.store.edits) and read by every
build of that issue: ``digest build``, the preview, and the scheduled send."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from digest.config import Settings
from digest.errors import UsageError
from digest.models import Article, IssueEdits
from digest.pipeline import BuiltIssue, build_issue
from digest.slots import Slot
from digest.store import Store
from digest.text import one_line, plural

_DONE = {"sent": "was already sent", "sending": "is being sent", "skipped": "was skipped"}
MAX_EDIT_SUBJECT = 150
MAX_EDIT_NOTE = 4000


@dataclass(frozen=True)
class IssueView:
    """An upcoming issue as it stands: the edits, the issue built with them, and the articles
    the editor left out (which ``digest issue drop --undo`` brings back)."""

    edits: IssueEdits
    built: BuiltIssue
    dropped: tuple[Article, ...]


def _check_open(store: Store, slot: Slot) -> None:
    row = store.issues.get(slot.key)
    if row is not None:
        raise UsageError(f"issue {slot.key} {_DONE.get(row.status, row.status)}; its articles and subject are fixed")


def _window_articles(settings: Settings, store: Store, slot: Slot) -> list[Article]:
    window = timedelta(days=settings.selection.window_days)
    return store.articles.published_between(slot.at - window, slot.at)


def view(settings: Settings, store: Store, slot: Slot) -> IssueView:
    edits = store.edits.get(slot.key)
    built = build_issue(settings, store, slot)
    by_id = {a.id: a for a in _window_articles(settings, store, slot)}
    return IssueView(edits, built, tuple(by_id[i] for i in edits.dropped if i in by_id))


def resolve(settings: Settings, store: Store, slot: Slot, ref: str) -> str:
    """The id of the article ``ref`` names in this issue's window: its id, its URL, or its
    position in the issue as built now (as ``digest issue show`` numbers them)."""
    ref = ref.strip()
    if ref.isdigit():
        entries = build_issue(settings, store, slot).issue.entries
        n = int(ref)
        if not 1 <= n <= len(entries):
            raise UsageError(
                f"issue {slot.key} has {plural(len(entries), 'article')}; there is no article {n} (see digest issue show)"
            )
        return entries[n - 1].article.id
    for a in _window_articles(settings, store, slot):
        if ref in (a.id, a.url):
            return a.id
    raise UsageError(
        f"no article {ref!r} among those issue {slot.key} can carry; give an id, URL or number from digest issue show"
    )


def _save(store: Store, slot: Slot, edits: IssueEdits, now: datetime) -> IssueEdits:
    _check_open(store, slot)
    store.edits.save(edits, now=now)
    return edits


def pin(settings: Settings, store: Store, slot: Slot, ref: str | None, *, now: datetime) -> IssueEdits:
    """Make ``ref`` the lead story (None: unpin). A pinned article is never also left out."""
    edits = store.edits.get(slot.key)
    article_id = resolve(settings, store, slot, ref) if ref is not None else None
    dropped = tuple(i for i in edits.dropped if i != article_id)
    return _save(store, slot, dataclasses.replace(edits, pinned=article_id, dropped=dropped), now)


def drop(
    settings: Settings, store: Store, slot: Slot, refs: Sequence[str], *, undo: bool = False, now: datetime
) -> IssueEdits:
    """Leave the articles ``refs`` out of the issue (``undo``: take them back in)."""
    edits = store.edits.get(slot.key)
    ids = [resolve(settings, store, slot, r) for r in refs]
    if undo:
        dropped = tuple(i for i in edits.dropped if i not in ids)
        return _save(store, slot, dataclasses.replace(edits, dropped=dropped), now)
    dropped = edits.dropped + tuple(i for i in dict.fromkeys(ids) if i not in edits.dropped)
    pinned = None if edits.pinned in ids else edits.pinned
    order = tuple(i for i in edits.order if i not in ids)
    return _save(store, slot, dataclasses.replace(edits, dropped=dropped, pinned=pinned, order=order), now)


def order(settings: Settings, store: Store, slot: Slot, refs: Sequence[str], *, now: datetime) -> IssueEdits:
    """Put the articles ``refs`` first, in this order (after a pinned lead); none: newest first again."""
    edits = store.edits.get(slot.key)
    ids = tuple(dict.fromkeys(resolve(settings, store, slot, r) for r in refs))
    return _save(store, slot, dataclasses.replace(edits, order=ids), now)


def set_subject(store: Store, slot: Slot, text: str | None, *, now: datetime) -> IssueEdits:
    """This issue's subject (None or blank: the default one)."""
    subject = one_line(text) or None
    if subject is not None and len(subject) > MAX_EDIT_SUBJECT:
        raise UsageError(f"the subject is {len(subject)} characters; keep it to {MAX_EDIT_SUBJECT} (78 reads best)")
    return _save(store, slot, dataclasses.replace(store.edits.get(slot.key), subject=subject), now)


def set_note(store: Store, slot: Slot, text: str | None, *, now: datetime) -> IssueEdits:
    """This issue's editor's note (None or blank: the configured one); blank lines part paragraphs."""
    note = (text or "").strip() or None
    if note is not None and len(note) > MAX_EDIT_NOTE:
        raise UsageError(f"the note is {len(note)} characters; keep it to {MAX_EDIT_NOTE}")
    return _save(store, slot, dataclasses.replace(store.edits.get(slot.key), note=note), now)


def clear(store: Store, slot: Slot, *, now: datetime) -> None:
    """Forget every choice made for the issue."""
    _save(store, slot, IssueEdits(slot.key), now)
