"""``digest issue``: the editor's control over the upcoming issue (pin, drop, order, subject, note)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from digest.cli.app import Context, cli, echo, pass_ctx
from digest.text import plural

if TYPE_CHECKING:
    from digest.pipeline import Slot

_AS_OF = click.option(
    "--as-of",
    "as_of",
    metavar="WHEN",
    help="Work on the issue due at WHEN (ISO date/time). Default: the next scheduled issue.",
)


def _slot(c: Context, as_of: str | None) -> Slot:
    from digest.pipeline import due_slot, upcoming_slot

    when = c.moment(as_of)
    return due_slot(c.settings, when) if when else upcoming_slot(c.settings, c.now())


def _show(c: Context, slot: Slot) -> None:
    from digest import editorial

    v = editorial.view(c.settings, c.store, slot)
    issue, rendered = v.built.issue, v.built.rendered
    n = len(issue.entries)
    echo(f"issue {slot.key} ({slot.at.astimezone(c.settings.newsletter.tz):%Y-%m-%d %H:%M %Z}): {plural(n, 'article')}")
    echo(f"subject: {rendered.subject}{'  (set by the editor)' if v.edits.subject else ''}")
    if v.edits.note:
        echo(f"note: {v.edits.note.splitlines()[0]}{' …' if len(v.edits.note.splitlines()) > 1 else ''}")
    for position, e in enumerate(issue.entries, start=1):
        mark = "  (pinned)" if e.article.id == issue.pinned else ""
        echo(f"  {position}. {e.article.title}  [{e.article.id}]{mark}")
    for a in v.dropped:
        echo(f"  left out: {a.title}  [{a.id}]")


@cli.group(
    epilog="Examples:\n\n"
    "  digest issue show\n\n"
    "  digest issue pin 3\n\n"
    "  digest issue drop https://example.org/sponsor-note\n\n"
    "  digest issue order 4 2\n\n"
    '  digest issue subject "The Weekly: the Palladium reopens"\n\n'
    '  digest issue note "Back to weekly issues from September."'
)
def issue() -> None:
    """The editor's control over the upcoming issue: what leads, what is left out, in which
    order, the subject and the editor's note. Stored in the state database and used by
    digest build, the preview and the scheduled send. ARTICLE is a number from `digest issue
    show`, an article id or its URL."""


@issue.command("show", epilog="Example:\n\n  digest issue show --as-of 2025-08-11T09:00")
@_AS_OF
@pass_ctx
def show(c: Context, as_of: str | None) -> None:
    """Show the issue as it stands: subject, articles in order, those left out."""
    _show(c, _slot(c, as_of))


@issue.command("pin", epilog="Examples:\n\n  digest issue pin 3\n\n  digest issue pin --clear")
@click.argument("article", required=False)
@click.option("--clear", is_flag=True, help="Unpin: the newest article leads again.")
@_AS_OF
@pass_ctx
def pin_cmd(c: Context, article: str | None, clear: bool, as_of: str | None) -> None:
    """Make ARTICLE the lead story (first in the issue, named in the default subject)."""
    from digest import editorial
    from digest.errors import UsageError

    if not article and not clear:
        raise UsageError("give the ARTICLE to pin (a number from digest issue show, an id or a URL), or --clear")
    slot = _slot(c, as_of)
    editorial.pin(c.settings, c.store, slot, None if clear else article, now=c.now())
    _show(c, slot)


@issue.command("drop", epilog="Examples:\n\n  digest issue drop 5\n\n  digest issue drop --undo 5")
@click.argument("articles", nargs=-1, required=True, metavar="ARTICLE...")
@click.option("--undo", is_flag=True, help="Take the articles back into the issue.")
@_AS_OF
@pass_ctx
def drop_cmd(c: Context, articles: tuple[str, ...], undo: bool, as_of: str | None) -> None:
    """Leave ARTICLE out of the issue (it stays available to later issues)."""
    from digest import editorial

    slot = _slot(c, as_of)
    editorial.drop(c.settings, c.store, slot, articles, undo=undo, now=c.now())
    _show(c, slot)


@issue.command("order", epilog="Examples:\n\n  digest issue order 4 2 1\n\n  digest issue order   (newest first again)")
@click.argument("articles", nargs=-1, metavar="[ARTICLE...]")
@_AS_OF
@pass_ctx
def order_cmd(c: Context, articles: tuple[str, ...], as_of: str | None) -> None:
    """Put these articles first, in this order (after a pinned lead); the rest follow newest first."""
    from digest import editorial

    slot = _slot(c, as_of)
    editorial.order(c.settings, c.store, slot, articles, now=c.now())
    _show(c, slot)


@issue.command(
    "subject",
    epilog='Examples:\n\n  digest issue subject "The Weekly: a cinema reopens"\n\n  digest issue subject --clear',
)
@click.argument("text", required=False)
@click.option("--clear", is_flag=True, help="Back to the default subject.")
@_AS_OF
@pass_ctx
def subject_cmd(c: Context, text: str | None, clear: bool, as_of: str | None) -> None:
    """Set the issue's subject line."""
    from digest import editorial
    from digest.errors import UsageError

    if not clear and not (text or "").strip():
        raise UsageError('give the subject, e.g. digest issue subject "The Weekly: a cinema reopens", or --clear')
    slot = _slot(c, as_of)
    editorial.set_subject(c.store, slot, None if clear else text, now=c.now())
    _show(c, slot)


@issue.command(
    "note",
    epilog='Examples:\n\n  digest issue note "Back to weekly issues in September."\n\n  digest issue note --clear',
)
@click.argument("text", required=False)
@click.option("--clear", is_flag=True, help="Back to the configured note (newsletter.editor_note), if any.")
@_AS_OF
@pass_ctx
def note_cmd(c: Context, text: str | None, clear: bool, as_of: str | None) -> None:
    """Set the editor's note shown above the articles (blank lines part paragraphs)."""
    from digest import editorial
    from digest.errors import UsageError

    if not clear and not (text or "").strip():
        raise UsageError('give the note, e.g. digest issue note "Back in September.", or --clear')
    slot = _slot(c, as_of)
    editorial.set_note(c.store, slot, None if clear else text, now=c.now())
    _show(c, slot)


@issue.command("reset", epilog="Example:\n\n  digest issue reset")
@_AS_OF
@pass_ctx
def reset_cmd(c: Context, as_of: str | None) -> None:
    """Forget every choice made for the issue: the defaults again."""
    from digest import editorial

    slot = _slot(c, as_of)
    editorial.clear(c.store, slot, now=c.now())
    _show(c, slot)
