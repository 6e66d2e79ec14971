"""The Jinja2 environment: the user's templates folder first, the default theme second."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import jinja2

DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates"


def _autoescape(name: str | None) -> bool:
    # HTML and MJML are escaped; the plain-text twin and the subject are not markup.
    return bool(name) and name.endswith((".mjml.j2", ".html.j2", ".mjml", ".html"))  # type: ignore[union-attr]


def _date(value: datetime, fmt: str = "%-d %B %Y") -> str:
    return value.strftime(fmt)


def make_environment(user_templates: Path | None = None) -> jinja2.Environment:
    paths = [p for p in (user_templates, DEFAULT_TEMPLATES) if p is not None]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in paths]),
        autoescape=_autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["date"] = _date
    return env
