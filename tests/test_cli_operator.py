"""The operator's view: verbosity options, logging levels, status and machine-readable lists."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import write_article, write_sample_config
from test_cli import digest


def test_debug_shows_digests_own_lines_and_not_third_party_internals(tmp_path: Path) -> None:
    cfg = write_sample_config(tmp_path)
    proc = digest("--config", str(cfg), "--debug", "build", "--as-of", "2025-08-11T09:00", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert "DEBUG digest.pipeline: source 'northwind-articles': 14 articles" in proc.stderr
    debug_names = {line.split()[1].rstrip(":") for line in proc.stderr.splitlines() if line.startswith("DEBUG ")}
    assert debug_names and all(n.startswith("digest") for n in debug_names), debug_names


def test_quiet_and_verbose_work_before_and_after_the_command(write_config, tmp_path: Path) -> None:
    cfg = write_config()
    cfg.write_text(cfg.read_text().replace("min_articles = 1", "min_articles = 2"))
    write_article(tmp_path / "content", "one.md", title="One", date="2025-08-08", body="Lead one.")
    args = ("build", "--as-of", "2025-08-11T09:00", "--out", str(tmp_path / "o"))
    loud = digest("--config", str(cfg), *args)
    assert "warning: only 1 new article" in loud.stderr
    for quiet in (digest("--config", str(cfg), "-q", *args), digest("--config", str(cfg), *args, "-q")):
        assert quiet.returncode == 0, quiet.stderr
        assert quiet.stderr == "" and "issue 2025-W33" in quiet.stdout
    for verbose in (digest("-v", "--config", str(cfg), "sources"), digest("--config", str(cfg), "sources", "-v")):
        assert verbose.returncode == 0, verbose.stderr
    listed = digest("--config", str(cfg), "subscribers", "list", "--verbose")
    assert listed.returncode == 0, listed.stderr
    both = digest("-q", "-v", "--config", str(cfg), "sources")
    assert both.returncode == 2 and both.stderr.count("\n") == 1 and "-q/--quiet" in both.stderr


def test_sources_and_subscribers_list_as_json(write_config, tmp_path: Path) -> None:
    cfg = write_config()
    write_article(tmp_path / "content", "one.md", title="One", date="2025-08-08", body="Lead one.")
    assert digest("--config", str(cfg), "run", "--as-of", "2025-08-11T09:00").returncode == 0
    sources = json.loads(digest("--config", str(cfg), "sources", "--json").stdout)
    assert [(s["name"], s["kind"], s["state"], s["failures_in_a_row"]) for s in sources] == [
        ("articles", "folder", "ok", 0)
    ]
    assert sources[0]["location"] == str(tmp_path / "content") and sources[0]["last_success"].startswith("20")
    subscribers = json.loads(digest("--config", str(cfg), "subscribers", "list", "--json").stdout)
    assert subscribers == [{"email": f"{x}@example.org", "status": "active", "name": None} for x in ("a", "b", "c")]
    assert json.loads(digest("--config", str(cfg), "subscribers", "list", "--json", "--status", "bounced").stdout) == []


def test_init_starts_a_newsletter_that_builds_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "x"
    made = digest("init", str(folder))
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["content", "digest.toml", "subscribers.csv", "templates"]
    assert list((folder / "templates").iterdir()) == []
    (article,) = (folder / "content").iterdir()
    built = digest("--config", str(folder / "digest.toml"), "build", "--out", str(tmp_path / "out"))
    assert built.returncode == 0, built.stderr
    assert built.stderr == ""  # no warnings either: a thin week, a failing source ...
    assert "1 article" in built.stdout
    assert "Welcome to the first issue" in (tmp_path / "out" / "issue.html").read_text()
    # The config explains itself, including that the subscriber CSV is read again on every send.
    config = (folder / "digest.toml").read_text()
    assert "Re-imported on every send" in config and config.count("#") > 20
    again = digest("init", str(folder))
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert "digest.toml already exists" in again.stderr and article.exists()


def test_config_reference_is_generated_from_the_schema_and_up_to_date() -> None:
    from conftest import ROOT

    from digest.config.reference import config_keys, config_reference

    written = (ROOT / "docs" / "config.md").read_text()
    assert written == config_reference(), "docs/config.md is out of date: run `make docs`"
    keys = config_keys()
    assert [f"{k.table}.{k.key}" for k in keys if not k.meaning] == []
    assert {"newsletter.title", "[sources].kind", "delivery.smtp.password_env", "subscribers.csv"} <= {
        f"{k.table}.{k.key}" for k in keys
    }
    assert "| `port` | integer | `587` |" in written and "| `title` | string | required |" in written
    assert "re-imported on every run" in written
    # Secrets are filled from the environment; they are not keys of the file.
    assert "| `password` |" not in written and "| `api_key` |" not in written


def test_config_check_prints_the_settings_in_force_with_secrets_masked(write_config, tmp_path: Path) -> None:
    cfg = write_config(
        """
        [delivery.smtp]
        username = "digest"
        password_env = "TEST_SMTP_PASSWORD"

        [state]
        url = "postgresql+psycopg://digest:db-secret-1@db.example.org/digest"
        """
    )
    cfg.write_text(cfg.read_text().replace('backend = "outbox"', 'backend = "smtp"'))
    env = {"TEST_SMTP_PASSWORD": "smtp-secret-2"}
    proc = digest("--config", str(cfg), "config", "check", env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "smtp-secret-2" not in out and "db-secret-1" not in out
    assert 'password = "********" (set from the environment)' in out
    assert "postgresql+psycopg://digest:********@db.example.org/digest" in out
    assert f'path = "{tmp_path / "content"}"' in out  # resolved against the config's folder
    assert "[selection]\nwindow_days = 7" in out and "cron = " in out  # defaults filled in
    broken = write_config('[teaser]\nmax_chars = "long"\n')
    bad = digest("--config", str(broken), "config", "check")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == f'digest: config error: {broken}: teaser.max_chars: expected an integer, got "long"'


def test_templates_copy_puts_a_default_template_in_the_users_folder(tmp_path: Path) -> None:
    from digest.render.environment import DEFAULT_TEMPLATES

    folder = tmp_path / "x"
    assert digest("init", str(folder)).returncode == 0
    cfg = str(folder / "digest.toml")
    copied = digest("--config", cfg, "templates", "copy", "article.mjml.j2")
    assert copied.returncode == 0, copied.stderr
    mine = folder / "templates" / "partials" / "article.mjml.j2"
    assert mine.read_text() == (DEFAULT_TEMPLATES / "partials" / "article.mjml.j2").read_text()
    assert f"(yours: {mine})" in digest("--config", cfg, "templates", "list").stdout
    # The copy is used: an edit shows in the next build.
    mine.write_text(mine.read_text().replace("<mj-text padding=", '<mj-text css-class="mine" padding=', 1))
    built = digest("--config", cfg, "build", "--out", str(tmp_path / "out"))
    assert built.returncode == 0, built.stderr
    assert 'class="mine' in (tmp_path / "out" / "issue.html").read_text()
    again = digest("--config", cfg, "templates", "copy", "partials/article.mjml.j2")
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    unknown = digest("--config", cfg, "templates", "copy", "nope.j2")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "subject.j2" in unknown.stderr


def test_a_state_database_shared_by_two_configs_is_reported(write_config, tmp_path: Path) -> None:
    cfg = write_config()
    other = tmp_path / "other.toml"
    other.write_text(cfg.read_text())  # same folder: the same default var/digest.sqlite3
    first = digest("--config", str(cfg), "status")
    assert first.returncode == 0 and first.stderr == ""
    second = digest("--config", str(other), "status")
    assert second.returncode == 0
    assert second.stderr.strip() == (
        f"warning: state database sqlite:///{tmp_path / 'var' / 'digest.sqlite3'} belongs to {cfg}, not {other}: "
        "two configs share one state (articles, issues, subscribers); give this one its own [state] url, "
        "or use the other config"
    )
    # The owner itself is not warned; a config renamed or moved takes the database over.
    assert digest("--config", str(cfg), "status").stderr == ""
    moved = tmp_path / "renamed.toml"
    cfg.rename(moved)
    assert digest("--config", str(moved), "status").stderr == ""
    assert "belongs to" in digest("--config", str(other), "status").stderr


def test_quiet_send_prints_no_progress_lines(write_config, tmp_path: Path) -> None:
    cfg = write_config()
    write_article(tmp_path / "content", "one.md", title="One", date="2025-08-08", body="Lead one. More.")
    write_article(tmp_path / "content", "two.md", title="Two", date="2025-08-01", body="Lead two. More.")
    assert digest("--config", str(cfg), "ingest", "-q").returncode == 0
    quiet = digest("--config", str(cfg), "send", "-q", "--as-of", "2025-08-11T09:00")
    assert quiet.returncode == 0, quiet.stderr
    assert "issue 2025-W33 sent: 3 delivered" in quiet.stdout and quiet.stderr == ""
    loud = digest("--config", str(cfg), "send", "--as-of", "2025-08-04T09:00")
    assert loud.returncode == 0 and "issue 2025-W32: 3/3 sent" in loud.stderr
