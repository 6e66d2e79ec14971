"""Everything the config can be checked for is checked when it is loaded, every problem at once:
a value that would only fail at run time (a cron that never fires, a URL without a host, an
infinite lease) is refused with its key path and exit status 2."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from renderdata import make_settings
from test_config import run_cli

from digest.errors import ConfigError


def problems_for(tmp_path: Path, extra: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        make_settings(tmp_path, extra)
    return caught.value.problems


def one_problem(tmp_path: Path, extra: dict[str, Any], *needles: str) -> str:
    problems = problems_for(tmp_path, extra)
    assert len(problems) == 1, problems
    for n in needles:
        assert n in problems[0], problems[0]
    return problems[0]


@pytest.mark.parametrize("cron", ["0 8 31 2 *", "0 8 30 2 *", "0 8 29 2 *", "0 8 1 1 mon"])
def test_cron_that_does_not_fire_every_year_is_refused(tmp_path: Path, cron: str) -> None:
    one_problem(tmp_path, {"schedule": {"cron": cron}}, "schedule.cron", repr(cron), "does not fire in every year")


@pytest.mark.parametrize("cron", ["0 8 * * mon", "30 6 1 * *", "0 8 13 * fri", "0 9 31 * *", "0 8 31 12 *"])
def test_cron_that_fires_every_year_is_accepted(tmp_path: Path, cron: str) -> None:
    assert make_settings(tmp_path, {"schedule": {"cron": cron}}).schedule.cron == cron


@pytest.mark.parametrize("zone", ["Europe", "Nowhere/City", "../etc/passwd", ""])
def test_unknown_time_zone_is_refused(tmp_path: Path, zone: str) -> None:
    one_problem(tmp_path, {"newsletter": {"timezone": zone}}, "newsletter.timezone", "unknown time zone")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://", "has no host"),
        ("https:///path", "has no host"),
        ("ftp://news.example.org", "expected a URL starting with https:// or http://"),
        ('https://news.example.org/"><script>', "contains '\"'"),
        ("https://news.example.org/'x", 'contains "\'"'),
        ("https://news.example.org/\r\nBcc: x@example.org", "contains '\\r'"),
        ("https://news.example.org/a b", "contains ' '"),
        ("https://news.example.org:99999", "invalid port"),
    ],
)
def test_site_url_must_be_usable_in_a_header(tmp_path: Path, url: str, why: str) -> None:
    one_problem(tmp_path, {"newsletter": {"site_url": url}}, "newsletter.site_url", why)


def test_source_url_needs_a_host(tmp_path: Path) -> None:
    source = {"name": "feed", "kind": "feed", "url": "http://"}
    one_problem(tmp_path, {"sources": [source]}, "sources[0].url", "has no host")


def test_other_urls_are_checked_the_same_way(tmp_path: Path) -> None:
    problems = problems_for(
        tmp_path,
        {
            "newsletter": {"unsubscribe_url": "https://", "archive_url": "https://x.example.org/\n"},
            "links": {"tracking_pixel_url": "https://"},
            "delivery": {"sendgrid": {"base_url": "http://"}},
        },
    )
    assert [p.split(": ")[1] for p in problems] == [
        "newsletter.unsubscribe_url",
        "newsletter.archive_url",
        "delivery.sendgrid.base_url",
        "links.tracking_pixel_url",
    ], problems


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("delivery", "lease_seconds", float("inf")),
        ("fetch", "timeout", float("nan")),
        ("schedule", "misfire_grace_hours", float("inf")),
    ],
)
def test_numbers_must_be_finite(tmp_path: Path, section: str, key: str, value: float) -> None:
    one_problem(tmp_path, {section: {key: value}}, f"{section}.{key}", "expected a finite number")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("selection", "window_days", 10**15),
        ("delivery", "lease_seconds", 1e300),
        ("schedule", "review_hours", 1e300),
    ],
)
def test_numbers_beyond_any_use_are_refused(tmp_path: Path, section: str, key: str, value: float) -> None:
    one_problem(tmp_path, {section: {key: value}}, f"{section}.{key}", "less than or equal")


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("selection", "window_days", "7", 'expected an integer, got "7"'),
        ("selection", "window_days", 7.0, "expected an integer, got 7.0"),
        ("render", "drop_trailing_articles", 1, "expected true or false, got 1"),
        ("fetch", "timeout", "30", 'expected a number, got "30"'),
    ],
)
def test_types_are_strict(tmp_path: Path, section: str, key: str, value: Any, expected: str) -> None:
    one_problem(tmp_path, {section: {key: value}}, f"{section}.{key}", expected)


def test_whole_numbers_are_accepted_where_a_number_is_expected(tmp_path: Path) -> None:
    assert make_settings(tmp_path, {"fetch": {"timeout": 12}}).fetch.timeout == 12.0


def test_missing_template_folder_is_reported(tmp_path: Path) -> None:
    one_problem(tmp_path, {"templates": {"path": "theme"}}, "templates.path", "does not exist")
    (tmp_path / "theme").mkdir()
    assert make_settings(tmp_path, {"templates": {"path": "theme"}}).templates.path == tmp_path / "theme"


@pytest.mark.parametrize(
    "pem",
    [
        "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\n\n-----END RSA PRIVATE KEY-----\n",
        "not a key at all\n",
    ],
)
def test_dkim_key_that_does_not_parse_is_refused(tmp_path: Path, pem: str) -> None:
    (tmp_path / "dkim.pem").write_text(pem)
    extra = {"delivery": {"backend": "smtp", "dkim": {"selector": "s1", "key_path": "dkim.pem"}}}
    one_problem(tmp_path, extra, "delivery.dkim.key_path", "not a PEM RSA private key")


def test_duplicate_source_name_is_reported_with_the_other_problems(tmp_path: Path) -> None:
    sources = [
        {"name": "a", "kind": "folder", "path": "content"},
        {"name": "a", "kind": "feed", "url": "http://"},
    ]
    problems = problems_for(tmp_path, {"sources": sources, "selection": {"window_days": "7"}})
    assert any("sources[1].name" in p and "'a' is already used by sources[0]" in p for p in problems), problems
    assert any("sources[1].url" in p for p in problems), problems
    assert any("selection.window_days" in p for p in problems), problems


def test_control_characters_in_header_fields_are_refused(tmp_path: Path) -> None:
    problems = problems_for(
        tmp_path,
        {
            "newsletter": {"title": "Weekly\r\nBcc: all@example.org", "reply_to": "a@example.org\nBcc: b@example.org"},
            "fetch": {"user_agent": "digest\r\nX: y"},
        },
    )
    assert [p.split(": ")[1] for p in problems] == ["newsletter.title", "newsletter.reply_to", "fetch.user_agent"]


def test_cli_reports_every_problem_at_once_with_exit_2(write_config) -> None:
    path = write_config(
        '[[sources]]\nname = "feed"\nkind = "feed"\nurl = "http://"\n\n[templates]\npath = "no-such-theme"\n'
    )
    text = path.read_text()
    text = text.replace('site_url = "https://news.example.org"', 'site_url = "https://"')
    text = text.replace("window_days = 7", 'window_days = "7"')
    text = text.replace('backend = "outbox"', 'backend = "outbox"\nlease_seconds = inf')
    path.write_text(text)
    proc: subprocess.CompletedProcess[str] = run_cli("--config", str(path), "build")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    for key in ("newsletter.site_url", ".url", "selection.window_days", "delivery.lease_seconds", "templates.path"):
        assert sum(key in line for line in lines) >= 1, (key, proc.stderr)
    assert all(line.startswith(f"digest: config error: {path}: ") for line in lines), proc.stderr


def test_path_with_a_nul_character_is_reported_not_raised(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, {"delivery": {"outbox": {"path": "out\x00box"}}, "templates": {"path": "\x00"}})
    assert [p.split(": ")[1] for p in problems] == ["delivery.outbox.path", "templates.path"], problems
    assert all("contains a NUL character" in p for p in problems), problems
