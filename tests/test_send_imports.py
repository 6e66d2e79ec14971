"""What `digest send --dry-run` loads: the store, the build (teasers, templates) and the MIME
template, and nothing that reads sources, parses bounces or talks to a mail server. Every
library imported stays resident for the whole send, so each one costs the million-subscriber
dry run its memory (bench/send.py); trafilatura, requests and dkim alone were some 16 MB."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import write_article

from digest.config import load_config
from digest.pipeline import ingest
from digest.store import Store

# Runs the command in-process and writes the names of the modules it loaded, one a line.
LOADED_BY = """
import atexit, sys
out, args = sys.argv[1], sys.argv[2:]
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
from digest.cli import main
sys.argv = ["digest", *args]
main()
"""

# Readers of sources and of the bounce mailbox, the backends and what they talk through.
NOT_FOR_A_DRY_RUN = [
    "trafilatura",
    "feedparser",
    "lxml",
    "yaml",
    "requests",
    "urllib3",
    "dkim",
    "dns",
    "smtplib",
    "mailbox",
    "digest.sources.registry",
    "digest.sources.http",
    "digest.delivery.registry",
    "digest.delivery.smtp",
    "digest.delivery.bounces",
]


def loaded_by(config: Path, *args: str, tmp_path: Path) -> tuple[set[str], str]:
    """The modules a `digest --config CONFIG ARGS...` process loaded, and its output."""
    listing = tmp_path / "modules.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    proc = subprocess.run(
        [sys.executable, "-c", LOADED_BY, str(listing), "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return set(listing.read_text().split()), proc.stdout


def loaded(modules: set[str], names: list[str]) -> list[str]:
    return [n for n in names if n in modules or any(m.startswith(n + ".") for m in modules)]


@pytest.fixture
def newsletter(write_config: Callable[..., Path], tmp_path: Path, fixed_now) -> Path:
    """An SMTP newsletter with stored articles and three subscribers."""
    path = write_config('[delivery.smtp]\nhost = "127.0.0.1"\n')
    path.write_text(path.read_text().replace('backend = "outbox"', 'backend = "smtp"'))
    for i in range(3):
        write_article(
            tmp_path / "content", f"a{i}.md", title=f"Article {i}", date="2025-08-08T10:00:00Z", body="Some text. " * 20
        )
    settings = load_config(path)
    with Store(settings.state_url) as store:
        ingest(settings, store, now=fixed_now)
        store.subscribers.add_new(((f"r{i}@example.org", None) for i in range(3)), now=fixed_now)
    return path


def test_a_dry_run_loads_no_source_reader_backend_or_bounce_parser(newsletter: Path, tmp_path: Path) -> None:
    modules, out = loaded_by(newsletter, "send", "--dry-run", "--as-of", "2025-08-11T09:00", tmp_path=tmp_path)
    assert "would go to 3 subscribers; 3 messages rendered" in out
    assert "digest.delivery.mime" in modules and "digest.teaser" in modules  # it did render
    assert loaded(modules, NOT_FOR_A_DRY_RUN) == []
    # On SQLite, nothing of PostgreSQL's dialect (with its asyncpg driver module: 25 ms a start).
    assert loaded(modules, ["sqlalchemy.dialects.postgresql", "psycopg"]) == []


def test_the_listing_sees_what_a_command_loads(newsletter: Path, tmp_path: Path) -> None:
    # Reading the sources does load their readers: the listing above is not empty by mistake.
    modules, _ = loaded_by(newsletter, "ingest", tmp_path=tmp_path)
    assert {"trafilatura", "requests", "digest.sources.registry"} <= set(loaded(modules, NOT_FOR_A_DRY_RUN))


def test_an_smtp_send_without_dkim_loads_no_dkim_library() -> None:
    # The backends, as a real send loads them; dkimpy and dnspython come with the first signature.
    code = (
        "import sys, digest.delivery.registry; print(sorted({m.split('.')[0] for m in sys.modules} & {'dkim', 'dns'}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "[]"


def test_an_smtp_send_loads_the_smtp_backend_only() -> None:
    # The registry imports a backend when it is looked up: an SMTP send does not load the HTTP
    # client of the e-mail services (nor the services' backends).
    code = (
        "import sys; from digest.delivery.registry import BACKENDS; BACKENDS['smtp']; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('requests', 'urllib3') "
        "or m in ('digest.delivery.api', 'digest.delivery.sendgrid', 'digest.delivery.smtp')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "['digest.delivery.smtp']"
