from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from digest.config import load_config
from digest.errors import ConfigError


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "digest", *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120
    )


def assert_one_clear_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_sample_config_loads_and_resolves_paths() -> None:
    root = Path(__file__).resolve().parent.parent
    s = load_config(root / "config" / "digest.toml")
    assert s.sources[0].path == (root / "examples" / "content").resolve()
    assert s.delivery.outbox.path == (root / "out" / "outbox").resolve()
    assert s.state_url.endswith("config/var/digest.sqlite3")
    assert s.newsletter.sender_domain == "review.example.org"


def test_wrong_type_names_file_key_and_value(write_config) -> None:
    path = write_config('[delivery.smtp]\nport = "25x"\n')
    proc = run_cli("--config", str(path), "build")
    assert_one_clear_line(proc, str(path), "delivery.smtp.port", 'expected an integer, got "25x"')


def test_unknown_key_is_an_error(write_config) -> None:
    path = write_config("[teaser]\nmax_char = 200\n")
    proc = run_cli("--config", str(path), "ingest")
    assert_one_clear_line(proc, str(path), "teaser.max_char", "unknown key")


def test_missing_file(tmp_path: Path) -> None:
    proc = run_cli("--config", str(tmp_path / "nope.toml"), "ingest")
    assert_one_clear_line(proc, "nope.toml", "not found")


def test_config_from_environment_variable(tmp_path: Path) -> None:
    proc = run_cli("ingest", env={"DIGEST_CONFIG": str(tmp_path / "env.toml")})
    assert_one_clear_line(proc, "env.toml", "not found")


def test_missing_secret_variable(write_config) -> None:
    path = write_config(
        '[delivery.smtp]\nhost = "127.0.0.1"\nusername = "u"\npassword_env = "DIGEST_TEST_SMTP_PASSWORD"\n'
    )
    path.write_text(path.read_text().replace('backend = "outbox"', 'backend = "smtp"'))
    proc = run_cli("--config", str(path), "send", "--dry-run")
    assert_one_clear_line(proc, "delivery.smtp.password_env", "DIGEST_TEST_SMTP_PASSWORD is not set")
    ok = load_config_with_env(path, {"DIGEST_TEST_SMTP_PASSWORD": "s3cret"})
    assert ok.delivery.smtp.password is not None
    assert ok.delivery.smtp.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(ok)


def load_config_with_env(path: Path, env: dict[str, str]):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return load_config(path)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_secret_in_file_is_refused(write_config) -> None:
    path = write_config('[delivery.smtp]\npassword = "hunter2"\n')
    path.write_text(path.read_text().replace('backend = "outbox"', 'backend = "smtp"'))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "delivery.smtp.password" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_every_problem_reported_at_once(write_config) -> None:
    path = write_config('[teaser]\nmax_chars = "a lot"\n[delivery.smtp]\nport = 0\n[newsletter.extra]\nx = 1\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert 'teaser.max_chars: expected an integer, got "a lot"' in text
    assert "delivery.smtp.port" in text
    assert "newsletter.extra: unknown key" in text
    assert len(err.value.problems) == 3


def test_bad_timezone_and_cron(write_config) -> None:
    path = write_config()
    path.write_text(path.read_text().replace('"Europe/London"', '"Mars/Olympus"').replace('"0 8 * * mon"', '"0 8 * *"'))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "newsletter.timezone: unknown time zone 'Mars/Olympus'" in text
    assert "schedule.cron: invalid cron expression" in text


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("[newsletter\ntitle = 1\n")
    proc = run_cli("--config", str(p), "ingest")
    assert_one_clear_line(proc, "bad.toml", "not valid TOML")


def test_backend_and_source_kind_come_from_the_registries(write_config) -> None:
    path = write_config()
    path.write_text(
        path.read_text().replace('backend = "outbox"', 'backend = "smpt"').replace('kind = "folder"', 'kind = "rss"')
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert (
        "delivery.backend: expected 'outbox', 'smtp', 'sendgrid', 'mailgun', 'postmark' or 'console', got 'smpt'"
        in text
    )
    assert "sources[0].kind: expected 'feed', 'page' or 'folder', got 'rss'" in text


def test_each_service_backend_reads_its_own_secret(write_config, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config('[delivery.mailgun]\ndomain = "mg.example.org"\n')
    path.write_text(path.read_text().replace('backend = "outbox"', 'backend = "mailgun"'))
    monkeypatch.setenv("MAILGUN_API_KEY", "key-from-env")
    settings = load_config(path)
    assert settings.delivery.mailgun.api_key is not None
    assert settings.delivery.mailgun.api_key.get_secret_value() == "key-from-env"
    assert settings.delivery.sendgrid.api_key is None  # only the selected backend's secret is read
    path.write_text(path.read_text().replace('domain = "mg.example.org"', 'domain = "mg.example.org"\ntoken = "x"'))
    with pytest.raises(
        ConfigError,
        match='delivery.mailgun.token: secrets do not belong in the config file; .*api_key_env = "MAILGUN_API_KEY"',
    ):
        load_config(path)


def test_signup_and_webhook_settings_are_checked(write_config) -> None:
    path = write_config('[signup]\nconfirm_url = "ftp://x"\n\n[webhooks]\nsoft_bounce_limt = 2\n')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    message = str(e.value)
    assert "signup.confirm_url: expected a URL starting with https:// or http://, got 'ftp://x'" in message
    assert "webhooks.soft_bounce_limt: unknown key (check the spelling)" in message
