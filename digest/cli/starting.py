"""Starting a newsletter and finding one's way in its settings: ``init``, ``config check`` and
``templates copy``."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import click

from digest.cli.app import Context, cli, echo, pass_ctx
from digest.errors import UsageError

CONFIG_NAME = "digest.toml"

STARTER_CONFIG = """\
# A newsletter made by `digest init`. Every key, its type, default and meaning: docs/config.md in
# digest's repository (or `digest config check` for the values in force).
# Relative paths resolve against this file's folder. Secrets never go here: name an environment
# variable instead (see delivery.smtp.password_env).

[newsletter]
title = "My Newsletter"
sender = "My Newsletter <newsletter@example.org>"
site_url = "https://example.org"
timezone = "UTC"                  # an IANA name such as "Europe/London"
language = "en"
# The postal address shown in every footer (anti-spam laws ask for one).
postal_address = "My Newsletter, 1 Example Street, Exampletown"
# reply_to = "editor@example.org"
# logo_url = "https://example.org/logo.png"   # shown instead of the title text
# editor_note = "A note above the articles."

# Where articles come from: this folder (Markdown, HTML or text files with a front matter), and
# any feeds or pages, each in its own [[sources]] table.
[[sources]]
name = "content"
kind = "folder"
path = "content"

# [[sources]]
# name = "blog"
# kind = "feed"
# url = "https://example.org/feed.xml"

[selection]
window_days = 7                   # articles published in the week before the issue's slot
max_articles = 10
min_articles = 1                  # fewer than this: the issue is skipped (a thin week)

[schedule]
cron = "0 8 * * mon"              # Mondays at 08:00 in newsletter.timezone

[delivery]
# "outbox" writes one .eml per subscriber into the folder below; switch to "smtp", "sendgrid",
# "mailgun" or "postmark" to send for real.
backend = "outbox"

[delivery.outbox]
path = "outbox"

[subscribers]
# Re-imported on every send: new addresses are added; people who unsubscribed stay unsubscribed.
csv = "subscribers.csv"

[templates]
# Your templates override the default theme one file at a time:
# `digest templates copy digest.mjml.j2` puts a copy here to start from.
path = "templates"

# [state]
# Default: a SQLite file at var/digest.sqlite3 next to this config.
# url = "postgresql+psycopg://digest@localhost/digest"
"""

STARTER_SUBSCRIBERS = "email,name\nreader@example.org,A Reader\n"


def starter_article(now: datetime) -> str:
    """A first article dated ``now``, so the first build has something to show."""
    return f"""\
---
title: "Welcome to the first issue"
date: {now.astimezone(timezone.utc).isoformat(timespec="seconds")}
author: "The Editor"
url: https://example.org/welcome
section: News
tags: [welcome]
---

This is the first article of your newsletter. Replace it with your own: each file in the content
folder is an article, and its first paragraph becomes the teaser in the e-mail.

Articles published in the week before an issue's slot go into that issue. Run `digest build` to
see the issue in out/issue.html, and `digest preview` to edit it with a live preview.
"""


def write_starter(folder: Path, now: datetime) -> list[Path]:
    """Write a new newsletter into ``folder``; refuses to overwrite anything."""
    config = folder / CONFIG_NAME
    article = folder / "content" / f"{now:%Y-%m-%d}-welcome.md"
    files = {config: STARTER_CONFIG, folder / "subscribers.csv": STARTER_SUBSCRIBERS, article: starter_article(now)}
    existing = [p for p in files if p.exists()]
    if existing:
        raise UsageError(f"{existing[0]} already exists; digest init only starts a new newsletter (choose another DIR)")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (folder / "templates").mkdir(exist_ok=True)
    return [*files, folder / "templates"]


@cli.command(epilog="Example:\n\n  digest init my-newsletter\n\n  digest --config my-newsletter/digest.toml build")
@click.argument("folder", metavar="[DIR]", default=".", type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def init(c: Context, folder: Path) -> None:
    """Start a newsletter in DIR (default: here): a commented digest.toml, a content folder with a
    first article dated today, a subscribers.csv and an empty templates folder."""
    written = write_starter(folder, c.now())
    for p in written:
        echo(f"wrote {p}{'/' if p.is_dir() else ''}")
    echo(f"next: digest --config {folder / CONFIG_NAME} build   (then open out/issue.html)")


@cli.group(epilog="Example:\n\n  digest config check")
def config() -> None:
    """Check the config file and see the settings in force."""


@config.command("check", epilog="Example:\n\n  digest config check")
@pass_ctx
def config_check(c: Context) -> None:
    """Validate the config file and print the resolved settings (defaults filled in, paths made
    absolute, secrets masked). Every problem is reported at once; exit status 2 if any.
    Every key is described in docs/config.md."""
    from digest.config.reference import resolved_settings

    click.echo(resolved_settings(c.settings), nl=False)


def default_template_names() -> list[str]:
    """The default theme's templates, as names relative to its folder (partials/ included)."""
    from digest.render.environment import DEFAULT_TEMPLATES

    return sorted(
        p.relative_to(DEFAULT_TEMPLATES).as_posix()
        for p in DEFAULT_TEMPLATES.rglob("*.j2")
        if "__pycache__" not in p.parts
    )


@cli.group(epilog="Examples:\n\n  digest templates list\n\n  digest templates copy partials/article.mjml.j2")
def templates() -> None:
    """The default theme's templates, and copies of them to start your own from."""


@templates.command("list", epilog="Example:\n\n  digest templates list")
@pass_ctx
def templates_list(c: Context) -> None:
    """List the default templates; those overridden by your [templates] path are marked."""
    folder = c.settings.templates.path
    for name in default_template_names():
        mine = folder / name if folder is not None else None
        echo(f"{name}  (yours: {mine})" if mine is not None and mine.exists() else name)


@templates.command("copy", epilog="Example:\n\n  digest templates copy partials/article.mjml.j2")
@click.argument("name")
@click.option("--force", is_flag=True, help="Replace your copy if there is one.")
@pass_ctx
def templates_copy(c: Context, name: str, force: bool) -> None:
    """Copy the default template NAME into your templates folder ([templates] path) to edit it.
    Your copy overrides the default from the next build; docs/templates.md lists what a template
    can use."""
    from digest.render.environment import DEFAULT_TEMPLATES

    names = default_template_names()
    if name not in names:
        matches = [n for n in names if n.rsplit("/", 1)[-1] == name]
        if len(matches) != 1:
            raise UsageError(f"no default template {name!r}; choose one of: {', '.join(names)}")
        name = matches[0]
    folder = c.settings.templates.path
    if folder is None:
        raise UsageError(
            f'{c.settings.config_path}: templates.path is not set; add [templates] path = "templates" to the config first'
        )
    target = folder / name
    if target.exists() and not force:
        raise UsageError(f"{target} already exists; edit it, or add --force to start again from the default")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEFAULT_TEMPLATES / name, target)
    echo(f"copied {name} to {target}; it overrides the default from the next build")
