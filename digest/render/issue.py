"""Render an issue once: subject, preheader, HTML (through MJML) and the plain-text twin.

Per-recipient values (the unsubscribe token, the address) are left as markers that
:func:`digest.render.message.personalise` fills in for each recipient, so the MJML is compiled once
per issue, not once per recipient.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from markupsafe import Markup

from digest.config import Settings
from digest.errors import RenderError
from digest.models import Issue, RenderedIssue
from digest.render.environment import make_environment
from digest.render.mjml import compile_mjml

TOKEN_MARK = "DIGEST-RECIPIENT-TOKEN"
EMAIL_MARK = "digest-recipient-address@digest.invalid"


def issue_context(issue: Issue, settings: Settings) -> dict[str, Any]:
    nl = settings.newsletter
    tz = nl.tz
    entries = []
    for e in issue.entries:
        a = e.article
        entries.append(
            {
                "title": a.title,
                "url": a.url,
                "teaser": e.teaser.text,
                "teaser_html": Markup(e.teaser.html),
                "author": a.author,
                "published": a.published.astimezone(tz),
                "image": a.image,
                "image_alt": a.image_alt or a.title,
                "section": a.section,
            }
        )
    sections: list[dict[str, Any]] = []
    for entry in entries:
        name = entry["section"]
        if not sections or sections[-1]["name"] != name:
            existing = next((s for s in sections if s["name"] == name), None)
            if existing:
                existing["entries"].append(entry)
                continue
            sections.append({"name": name, "entries": []})
        sections[-1]["entries"].append(entry)
    return {
        "newsletter": nl,
        "issue": {"key": issue.key, "date": issue.slot.astimezone(tz), "count": len(entries)},
        "entries": entries,
        "sections": sections,
        "unsubscribe_url": f"{nl.unsubscribe_base}?token={TOKEN_MARK}",
        "archive_url": f"{nl.archive_base}/{issue.key}",
        "recipient_email": EMAIL_MARK,
    }


def _render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"template {exc.filename or name}, line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template {exc.name} not found in the templates folders") from None
    except jinja2.UndefinedError as exc:
        raise RenderError(f"template {name}: {exc.message}") from None


def render_issue(issue: Issue, settings: Settings, env: jinja2.Environment | None = None) -> RenderedIssue:
    env = env or make_environment(settings.templates.path)
    ctx = issue_context(issue, settings)
    subject = " ".join(_render(env, "subject.j2", ctx).split())
    ctx["subject"] = subject
    preheader = " ".join(_render(env, "preheader.j2", ctx).split())
    ctx["preheader"] = preheader
    html = compile_mjml(_render(env, "digest.mjml.j2", ctx), template="digest.mjml.j2")
    text = _render(env, "digest.txt.j2", ctx).strip() + "\n"
    return RenderedIssue(key=issue.key, subject=subject, preheader=preheader, html=html, text=text)
