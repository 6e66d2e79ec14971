"""The Jinja2 environment: the user's templates folder first, the default theme second."""

from __future__ import annotations

import importlib.resources
from datetime import datetime
from pathlib import Path

import jinja2

from digest.errors import RenderError
from digest.text import one_line


def _default_theme_folder() -> Path:
    """The default theme: the top-level templates/ folder, installed as the package digest.templates."""
    folder = importlib.resources.files("digest.templates")
    # Jinja2's FileSystemLoader and the preview's change watcher read files on disk; pip installs
    # packages as files, and only an import from a zip archive would give something else.
    if not isinstance(folder, Path):
        raise RenderError(f"the default theme must be installed as files on disk, not {folder!r}")
    return folder


DEFAULT_TEMPLATES = _default_theme_folder()


def _autoescape(name: str | None) -> bool:
    # HTML and MJML are escaped; the plain-text twin and the subject are not markup.
    return name is not None and name.endswith((".mjml.j2", ".html.j2", ".mjml", ".html"))


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
    env.filters["clip"] = one_line
    return env
