"""Render an issue once: subject, preheader, HTML (through MJML) and the plain-text twin.

Per-recipient values (the unsubscribe token, the address) are left as markers that
:meth:`~digest.models.RenderedIssue.personalise` fills in for each recipient, so the MJML is compiled once
per issue, not once per recipient.

Everything an article brings (title, teaser, author, URLs) is untrusted: text is cleaned to one
line and clipped, URLs that are not plain http(s) are dropped, and the templates autoescape.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from digest.config import NewsletterSettings, Settings
from digest.errors import RenderError
from digest.models import EMAIL_MARK, MAX_SUBJECT, NAME_MARK, TOKEN_MARK, Issue, RenderedIssue, Skipped
from digest.render.environment import make_environment
from digest.render.links import safe_url, tag_url
from digest.render.mjml import compile_mjml
from digest.text import one_line

log = logging.getLogger(__name__)


# Longest texts an article may put into the e-mail; anything longer is cut between words.
MAX_TITLE = 200
MAX_AUTHOR = 120
MAX_SECTION = 60
MAX_TAGS = 20
MAX_TEASER = 1200
MAX_NOTE = 4000
MAX_PREHEADER = 150
# The default subject, "<title>: <lead story>", stays this short before " and N more": inboxes
# cut longer subjects, and RFC 5322 recommends lines of at most 78 characters.
MAX_SUBJECT_HEAD = 78
# What a marker may grow to once filled in, for the size guard: a token for the longest
# possible address (254 characters), and that address HTML-escaped.
_TOKEN_ROOM = 400
_EMAIL_ROOM = 254 * 5
# A name as the HTML carries it: up to 200 characters, each escaped at worst ("&quot;").
_NAME_ROOM = 200 * 6


def _editor_note(nl: NewsletterSettings, issue: Issue) -> list[str]:
    # The note set for this issue (digest issue note) wins over the configured one.
    text = issue.note or nl.editor_note
    if text is None and nl.editor_note_file is not None:
        try:
            text = Path(nl.editor_note_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise RenderError(
                f"newsletter.editor_note_file: cannot read {nl.editor_note_file}: {why}; fix the file or remove the setting"
            ) from None
    if not text:
        return []
    paragraphs = [one_line(p, MAX_NOTE) for p in re.split(r"\r?\n[ \t]*\r?\n", text)]
    return [p for p in paragraphs if p]


#: The width an article's image may take: the 600 px body less the card's 24 px padding each side.
IMAGE_COLUMN_PX = 552


def issue_context(issue: Issue, settings: Settings) -> dict[str, Any]:
    nl = settings.newsletter
    links = settings.links
    tz = nl.tz
    # Template context: each entry a dict of what the templates show.
    entries: list[dict[str, Any]] = []
    for e in issue.entries:
        a = e.article
        title = one_line(a.display_title, MAX_TITLE) or "Untitled"
        teaser = one_line(e.teaser.text, MAX_TEASER)
        # The teaser's HTML form is trusted markup (the teaser stage escapes it); an oversized
        # one is replaced by the clipped plain text, escaped here.
        teaser_html = Markup(e.teaser.html) if len(e.teaser.text) <= MAX_TEASER else escape(teaser)
        entries.append(
            {
                "id": a.id,
                "title": title,
                "url": safe_url(a.url),
                "teaser": teaser,
                "teaser_html": teaser_html,
                "author": one_line(a.author, MAX_AUTHOR) or None,
                "published": a.published.astimezone(tz),
                "image": safe_url(a.image),
                # Natural width up to the column; unknown: the column's width.
                "image_width": min(a.image_width, IMAGE_COLUMN_PX) if a.image_width else None,
                "image_alt": one_line(a.image_alt, MAX_TITLE) or title,
                "section": one_line(a.section, MAX_SECTION) or None,
                # The [[sources]] name the article came from, and its tags (cleaned, at most MAX_TAGS).
                "source": one_line(a.source, MAX_SECTION),
                "tags": [t for t in (one_line(t, MAX_SECTION) for t in a.tags[:MAX_TAGS]) if t],
            }
        )
    # Articles of a section stay together, in the order their sections first appear; the
    # subject, preheader and link positions follow this reading order.
    sections: list[dict[str, Any]] = []
    for entry in entries:
        existing = next((s for s in sections if s["name"] == entry["section"]), None)
        if existing is None:
            existing = {"name": entry["section"], "entries": []}
            sections.append(existing)
        existing["entries"].append(entry)
    entries = [entry for s in sections for entry in s["entries"]]
    for position, entry in enumerate(entries, start=1):
        entry["position"] = position
        if entry["url"]:
            entry["url"] = tag_url(entry["url"], links, issue=issue.key, position=position)
    # The lead story the default subject names: the pinned article, else the first in reading
    # order that is a story. A note with neither a URL nor a date of its own (a sponsorship line
    # dropped into the content folder) is dated when first seen, so it sorts newest and used to
    # lead, and name the issue; it is no story to name.
    notes = {e.article.id for e in issue.entries if e.article.date_is_first_seen and not safe_url(e.article.url)}
    lead = (
        next((e for e in entries if issue.pinned and e["id"] == issue.pinned), None)
        or next((e for e in entries if e["id"] not in notes), None)
        or (entries[0] if entries else None)
    )
    if lead is not None:
        room = max(MAX_SUBJECT_HEAD - len(one_line(nl.title)) - 2, 20)
        lead = {**lead, "short_title": one_line(lead["title"], room)}
    others = [e for e in entries if lead is None or e["id"] != lead["id"]]
    logo = None
    if nl.logo_url:
        logo = {"url": nl.logo_url, "alt": one_line(nl.logo_alt, MAX_TITLE) or nl.title, "width": nl.logo_width}
    pixel = None
    if links.tracking_pixel_url:
        sep = "&" if "?" in links.tracking_pixel_url else "?"
        pixel = f"{links.tracking_pixel_url}{sep}issue={issue.key}&token={TOKEN_MARK}"
    return {
        "newsletter": nl,
        "site_url": tag_url(nl.site_url, links, issue=issue.key),
        "logo": logo,
        "editor_note": _editor_note(nl, issue),
        "issue": {"key": issue.key, "date": issue.slot.astimezone(tz), "count": len(entries)},
        "entries": entries,
        "lead": lead,
        "others": others,
        "sections": sections,
        "unsubscribe_url": nl.unsubscribe_link(TOKEN_MARK),
        "archive_url": f"{nl.archive_base}/{issue.key}",
        "recipient_email": EMAIL_MARK,
        # The subscriber's name, or [newsletter] name_fallback when they gave none.
        "recipient_name": NAME_MARK,
        "tracking_pixel_url": pixel,
    }


def _render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"template {exc.filename or name}, line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template {exc.name} not found in the templates folders") from None
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError, KeyError, ZeroDivisionError) as exc:
        message = exc.message if isinstance(exc, jinja2.TemplateError) and exc.message else str(exc)
        raise RenderError(f"template {_failing_template(exc, name)}: {message}") from None


def _failing_template(exc: BaseException, name: str) -> str:
    """Where in the templates ``exc`` was raised: Jinja2 rewrites a render's traceback so that
    its frames point into the template files; the innermost such frame is the failing file
    (an included partial, not the top template that included it) and its line."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(_TEMPLATE_SUFFIXES)]
    if not frames:
        return name
    return f"{frames[-1].filename}, line {frames[-1].lineno}"


_TEMPLATE_SUFFIXES = (".j2", ".jinja", ".jinja2", ".html", ".mjml", ".txt")


def _render_once(issue: Issue, settings: Settings, env: jinja2.Environment) -> RenderedIssue:
    ctx = issue_context(issue, settings)
    subject = one_line(issue.subject or _render(env, "subject.j2", ctx), MAX_SUBJECT)
    ctx["subject"] = subject
    preheader = one_line(_render(env, "preheader.j2", ctx), MAX_PREHEADER)
    ctx["preheader"] = preheader
    html = compile_mjml(_render(env, "digest.mjml.j2", ctx), template="digest.mjml.j2")
    text = _render(env, "digest.txt.j2", ctx).strip() + "\n"
    return RenderedIssue(key=issue.key, subject=subject, preheader=preheader, html=html, text=text)


def html_bytes(rendered: RenderedIssue) -> int:
    """The HTML's size in bytes once the per-recipient markers are filled in (at their longest)."""
    html = rendered.html
    grow = sum(
        html.count(mark) * (room - len(mark))
        for mark, room in ((TOKEN_MARK, _TOKEN_ROOM), (EMAIL_MARK, _EMAIL_ROOM), (NAME_MARK, _NAME_ROOM))
    )
    return len(html.encode("utf-8")) + grow


def render_issue(issue: Issue, settings: Settings, env: jinja2.Environment | None = None) -> RenderedIssue:
    """Render ``issue`` as it is; a RenderError when its HTML is over ``render.max_html_bytes``."""
    return _fit(issue, settings, env, drop=False)[1]


def fit_issue(issue: Issue, settings: Settings, env: jinja2.Environment | None = None) -> tuple[Issue, RenderedIssue]:
    """Render ``issue``; when its HTML is too large and ``render.drop_trailing_articles`` is on,
    drop articles from the end until it fits. Returns the issue as sent (the dropped articles move
    to its ``skipped`` list, with the reason) and its rendering."""
    return _fit(issue, settings, env, drop=settings.render.drop_trailing_articles)


def _fit(
    issue: Issue, settings: Settings, env: jinja2.Environment | None, *, drop: bool
) -> tuple[Issue, RenderedIssue]:
    env = env or make_environment(settings.templates.path)
    limits = settings.render
    rendered = _render_once(issue, settings, env)
    size = html_bytes(rendered)
    if size > limits.max_html_bytes and drop:
        kept = len(issue.entries)
        while size > limits.max_html_bytes and kept > 1:
            kept -= 1
            rendered = _render_once(dataclasses.replace(issue, entries=issue.entries[:kept]), settings, env)
            size = html_bytes(rendered)
        if size <= limits.max_html_bytes:
            reason = f"dropped from the end of the issue to keep its HTML under render.max_html_bytes = {limits.max_html_bytes:,}"
            dropped = tuple(Skipped(e.article, reason) for e in issue.entries[kept:])
            log.warning(
                "issue %s: dropped %d trailing article(s) to fit the size limit: %s",
                issue.key,
                len(dropped),
                "; ".join(one_line(s.article.display_title, 80) for s in dropped),
            )
            issue = dataclasses.replace(issue, entries=issue.entries[:kept], skipped=issue.skipped + dropped)
    if size > limits.max_html_bytes:
        raise RenderError(
            f"issue {issue.key}: the HTML is {size:,} bytes, over render.max_html_bytes = {limits.max_html_bytes:,} "
            "(Gmail clips messages over about 102 KB); lower selection.max_articles or teaser.max_chars, "
            "or set render.drop_trailing_articles = true"
        )
    if size > limits.warn_html_bytes:
        log.warning(
            "issue %s: the HTML is %s bytes, over render.warn_html_bytes = %s; Gmail clips messages over about 102 KB",
            issue.key,
            f"{size:,}",
            f"{limits.warn_html_bytes:,}",
        )
    return issue, rendered
