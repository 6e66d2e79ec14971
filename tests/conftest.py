from __future__ import annotations

import logging
import socket
import textwrap
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from statedb import drop_schemas, server_url, state_toml


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A command run in-process sets the log levels and handlers for its run (digest.cli's
    configure_logging); put them back so the next test's log capture sees what it asks for."""
    root, ours = logging.getLogger(), logging.getLogger("digest")
    levels, handlers = (root.level, ours.level), list(root.handlers)
    yield
    root.setLevel(levels[0])
    ours.setLevel(levels[1])
    root.handlers[:] = handlers


ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
EXAMPLES = ROOT / "examples" / "content"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the test when that folder is absent (a fresh clone)."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent (../shared is only beside the project in CI and dev machines)")
    return p


# Debian's chromium, headless, kept off the network (the machine has none but the registries).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str:
    """Debian's chromium (or $DIGEST_CHROMIUM), skipping the test when it is not installed."""
    import os
    import shutil

    path = os.environ.get("DIGEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.skip("Debian's chromium is not installed (scripts/system-deps.sh installs it)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BASE_CONFIG = """
[newsletter]
title = "Test Weekly"
sender = "Test Weekly <digest@news.example.org>"
reply_to = "editor@news.example.org"
site_url = "https://news.example.org"
timezone = "Europe/London"
postal_address = "1 Test Street, Testville"

[[sources]]
name = "articles"
kind = "folder"
path = "content"

[selection]
window_days = 7
max_articles = 10
min_articles = 1

[schedule]
cron = "0 8 * * mon"

[delivery]
backend = "outbox"

[delivery.outbox]
path = "outbox"

[subscribers]
csv = "subscribers.csv"
"""


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a config (BASE_CONFIG plus extra TOML) into tmp_path; returns its path."""

    def write(extra: str = "", *, base: str = BASE_CONFIG, subscribers: list[str] | None = None) -> Path:
        (tmp_path / "content").mkdir(exist_ok=True)
        rows = subscribers if subscribers is not None else ["a@example.org", "b@example.org", "c@example.org"]
        (tmp_path / "subscribers.csv").write_text("email,name\n" + "".join(f"{r},\n" for r in rows))
        path = tmp_path / "digest.toml"
        path.write_text(textwrap.dedent(base) + "\n" + textwrap.dedent(extra) + state_toml(tmp_path))
        return path

    return write


def write_article(folder: Path, name: str, *, title: str, date: str, body: str, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(f'---\ntitle: "{title}"\ndate: {date}\n{extra}---\n\n{body}\n')
    return p


@pytest.fixture(scope="session", autouse=True)
def _drop_test_schemas() -> object:
    """With $DIGEST_TEST_DATABASE_URL: the tests' schemas go when the run ends."""
    yield
    drop_schemas()


@pytest.fixture(autouse=True)
def _close_stores(monkeypatch: pytest.MonkeyPatch) -> object:
    """With $DIGEST_TEST_DATABASE_URL: every Store a test opened is closed after it, so no
    PostgreSQL connection is left for the garbage collector (a ResourceWarning, an error here)."""
    if server_url() is None:
        yield
        return
    from digest.store import Store

    opened: list[Store] = []
    init = Store.__init__

    def tracked(self: Store, url: str) -> None:
        init(self, url)
        opened.append(self)

    monkeypatch.setattr(Store, "__init__", tracked)
    yield
    for store in opened:
        store.close()


@pytest.fixture
def fixed_now() -> datetime:
    return datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)


def write_sample_config(folder: Path) -> Path:
    """A copy of the sample newsletter's config in ``folder``, reading the project's example
    articles and subscribers but writing its state and outbox inside ``folder``."""
    cfg = folder / "digest.toml"
    cfg.write_text(
        (ROOT / "config" / "digest.toml")
        .read_text()
        .replace('path = "../examples/content"', f'path = "{ROOT / "examples" / "content"}"')
        .replace('path = "../out/outbox"', 'path = "outbox"')
        .replace('csv = "subscribers.csv"', f'csv = "{ROOT / "config" / "subscribers.csv"}"')
    )
    return cfg
