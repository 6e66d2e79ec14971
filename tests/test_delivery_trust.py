"""The send path under hostile but ordinary input: each test is one way a send used to break the
promise "each subscriber gets exactly one copy, and secrets are never printed"."""

from __future__ import annotations

import email
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email import policy
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from deliverykit import FakeClock, addresses, newsletter, smtp_toml
from smtpserver import RawServer, RecordingHandler, SMTPServer

from digest.cli import main
from digest.config import NewsletterSettings
from digest.delivery.mime import MessageTemplate, build_message
from digest.delivery.registry import backend_from_settings
from digest.delivery.sender import Sender
from digest.models import RenderedIssue
from digest.pipeline import send_issue


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``digest ARGS`` in this process; (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as ended:
        main(list(args))
    out, err = capsys.readouterr()
    code = ended.value.code
    return (code if isinstance(code, int) else 1), out, err


# --- 1: a test send can never become a real send --------------------------------------------------


@pytest.mark.parametrize("to", ["", "  ", "not an address"])
def test_empty_or_invalid_to_is_a_usage_error_and_sends_nothing(
    write_config, tmp_path: Path, fixed_now, capsys: pytest.CaptureFixture[str], to: str
) -> None:
    handler = RecordingHandler()
    with SMTPServer(handler) as server:
        _, store, slot, cfg = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port), subscribers=addresses(5), now=fixed_now
        )
        code, _out, err = run_cli(capsys, "--config", str(cfg), "send", "--to", to, "--as-of", "2025-08-11T09:00")
    assert code == 2
    assert err.startswith("digest: error: --to") and err.count("\n") == 1
    assert handler.received == []
    assert store.issues.get(slot.key) is None  # the ledger was not touched


# --- 2: a non-ASCII address never crashes a batch ---------------------------------------------------

JOSE = "josé@example.org"


def _utf8_message(raw: bytes) -> Any:
    """An RFC 6532 message parsed as a mail system reads it: UTF-8 header fields."""
    return email.message_from_string(raw.decode("utf-8"), policy=policy.default)


IDN = "ana@bücher.example"


def _list_with_jose(write_config, tmp_path: Path, port: int, now):  # type: ignore[no-untyped-def]
    subs = addresses(60)
    settings, store, slot, cfg = newsletter(write_config, tmp_path, extra=smtp_toml(port), subscribers=subs, now=now)
    store.subscribers.add([(JOSE, "José Núñez"), (IDN, "Ana Díaz")], now=now)
    return subs, store, slot, cfg


def test_without_smtputf8_only_that_delivery_fails_and_nobody_gets_two(
    write_config, tmp_path: Path, fixed_now, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = RecordingHandler()
    with SMTPServer(handler) as server:
        subs, store, slot, cfg = _list_with_jose(write_config, tmp_path, server.port, fixed_now)
        args = ("--config", str(cfg), "send", "--as-of", "2025-08-11T09:00")
        first = run_cli(capsys, *args)
        again = run_cli(capsys, *args)
    # Everyone else received exactly one copy; the IDN domain went out in punycode.
    per = handler.per_recipient()
    assert set(per) == {*subs, "ana@xn--bcher-kva.example"} and set(per.values()) == {1}
    counts = store.deliveries.counts(slot.key)
    assert counts == {"sent": 61, "failed": 1}
    assert f"failed: {JOSE}: not sent: the address needs SMTPUTF8" in first[1]
    # Defect 8: a delivery we failed (not refused by the receiving side) is a non-zero exit.
    assert first[0] == 4 and again[0] == 4
    assert "Traceback" not in first[2] + again[2]
    assert "nothing to send" in again[1]


def test_with_smtputf8_the_address_goes_out_with_utf8_headers_and_the_name(
    write_config, tmp_path: Path, fixed_now, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = RecordingHandler()
    with SMTPServer(handler, smtputf8=True) as server:
        _subs, store, slot, cfg = _list_with_jose(write_config, tmp_path, server.port, fixed_now)
        code, out, err = run_cli(capsys, "--config", str(cfg), "send", "--as-of", "2025-08-11T09:00")
    assert code == 0, err
    assert store.deliveries.counts(slot.key) == {"sent": 62}
    (jose,) = [r for r in handler.received if r.rcpt_tos == [JOSE]]
    assert b'To: "Jos\xc3\xa9 N\xc3\xba\xc3\xb1ez" <jos\xc3\xa9@example.org>\r\n' in jose.raw  # RFC 6532, not 2047
    to = _utf8_message(jose.raw)["To"]
    assert to.addresses[0].addr_spec == JOSE and to.addresses[0].display_name == "José Núñez"
    (ana,) = [r for r in handler.received if r.rcpt_tos == ["ana@xn--bcher-kva.example"]]
    assert ana.message["To"].addresses[0].display_name == "Ana Díaz"
    assert ana.raw.isascii() or b"=?" not in ana.raw.split(b"\r\n\r\n")[0]


NOW = datetime(2025, 8, 11, tzinfo=timezone.utc)
RENDERED = RenderedIssue(key="2025-W33", subject="s", preheader="p", html="<p>h</p>", text="t\n")


def _newsletter(sender: str, site: str) -> NewsletterSettings:
    return NewsletterSettings(title="Weekly", sender=sender, site_url=site, postal_address="x")


def test_the_sample_eml_of_digest_build_has_parseable_to_and_list_unsubscribe() -> None:
    nl = _newsletter("Weekly <digest@news.example.org>", "https://news.example.org")
    raw = build_message(RENDERED, nl, to=JOSE, token="TOK", now=NOW, name="José").as_bytes()
    head = raw.split(b"\r\n\r\n")[0]
    assert b"=?" not in head  # no RFC 2047 encoded-words around the address
    msg = _utf8_message(raw)
    assert msg["To"].addresses[0].addr_spec == JOSE
    assert "<https://news.example.org/unsubscribe?token=TOK>" in str(msg["List-Unsubscribe"])


# --- 5: an unreadable reply, a 421 greeting and a refused connection are transient ------------------


def _greet_and_hang_up(greeting: bytes) -> Callable[[socket.socket], None]:
    """A server that greets every connection with ``greeting`` and hangs up."""

    def talk(conn: socket.socket) -> None:
        with conn:
            conn.sendall(greeting)

    return talk


@pytest.mark.parametrize("greeting", [b"421 4.3.2 Service not available, closing\r\n", b"what is this\r\n"])
def test_a_busy_or_unreadable_server_at_connect_is_exit_3_with_when_to_retry(
    write_config, tmp_path: Path, fixed_now, capsys: pytest.CaptureFixture[str], greeting: bytes
) -> None:
    with RawServer(_greet_and_hang_up(greeting)) as server:
        _, store, slot, cfg = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port), subscribers=addresses(3), now=fixed_now
        )
        code, _out, err = run_cli(capsys, "--config", str(cfg), "send", "--as-of", "2025-08-11T09:00")
    assert code == 3, err
    assert "try again after" in err and "check delivery.smtp" not in err and err.count("\n") == 1
    assert store.deliveries.counts(slot.key) == {"pending": 3}


def test_a_refused_connection_is_exit_3(write_config, tmp_path: Path, fixed_now, capsys) -> None:  # type: ignore[no-untyped-def]
    _, store, slot, cfg = newsletter(
        write_config, tmp_path, extra=smtp_toml(free_port()), subscribers=addresses(3), now=fixed_now
    )
    code, _out, err = run_cli(capsys, "--config", str(cfg), "send", "--as-of", "2025-08-11T09:00")
    assert code == 3 and "try again after" in err, err
    assert store.deliveries.counts(slot.key) == {"pending": 3}


def test_an_unreadable_reply_mid_send_is_a_retry_not_a_permanent_failure(
    write_config, tmp_path: Path, fixed_now
) -> None:
    subs = addresses(4)
    handler = RecordingHandler(refuse={subs[1]: "gibberish without a code"})
    with SMTPServer(handler) as server:
        settings, store, slot, _cfg = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port, connections=1), subscribers=subs, now=fixed_now
        )
        clock = FakeClock(fixed_now)
        backend = backend_from_settings(settings.delivery, issue_key=slot.key)
        sender = Sender(settings, store, clock=clock.now, sleep=clock.sleep, backend=backend)
        # Stop when the sender would wait for the retry: what matters is how the reply was recorded.
        report = send_issue(settings, store, slot, now=fixed_now, sender=sender, stop=lambda: len(clock.sleeps) > 0)
    assert store.deliveries.counts(slot.key) == {"sent": 3, "retry": 1}, report.message
    (row,) = store.deliveries.with_status(slot.key, ["retry"])
    assert row.email == subs[1] and "unreadable reply" in (row.detail or "")


# --- 3: secrets are checked at config load and never printed ---------------------------------------


def _mailgun_config(write_config) -> Path:  # type: ignore[no-untyped-def]
    path = write_config('[delivery.mailgun]\ndomain = "mg.example.org"\n')
    path.write_text(path.read_text().replace('backend = "outbox"', 'backend = "mailgun"'))
    return path


def test_a_secret_with_a_trailing_newline_is_stripped(write_config, monkeypatch: pytest.MonkeyPatch) -> None:
    from digest.config import load_config

    monkeypatch.setenv("MAILGUN_API_KEY", "key-3f9a8b7c6d5e\n")
    key = load_config(_mailgun_config(write_config)).delivery.mailgun.api_key
    assert key is not None and key.get_secret_value() == "key-3f9a8b7c6d5e"


@pytest.mark.parametrize("value", ["key-3f9a\n8b7c6d5e", "key-3f9a\x1b8b7c6d5e"])
def test_a_control_character_inside_a_secret_is_refused_naming_the_variable_not_the_value(
    write_config, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    monkeypatch.setenv("MAILGUN_API_KEY", value)
    path = _mailgun_config(write_config)
    code, out, err = run_cli(capsys, "--config", str(path), "send", "--dry-run")
    assert code == 2
    assert "MAILGUN_API_KEY holds a control character" in err and err.count("\n") == 1
    assert "3f9a" not in out + err and "8b7c" not in out + err


def test_a_non_ascii_smtp_password_is_refused_without_showing_any_of_it(
    write_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMTP_PASS", "pässwörd-9431")
    path = write_config(smtp_toml(free_port(), more='username = "u"\npassword_env = "SMTP_PASS"'))
    path.write_text(path.read_text().replace('backend = "outbox"', 'backend = "smtp"'))
    code, out, err = run_cli(capsys, "--config", str(path), "send", "--as-of", "2025-08-11T09:00")
    assert code == 2 and "SMTP_PASS holds characters outside ASCII" in err, err
    assert not any(ch in out + err for ch in "äö") and "9431" not in out + err and "position" not in err


def test_secrets_are_masked_in_errors_logs_and_stored_failure_texts(
    write_config,
    tmp_path: Path,
    fixed_now,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    secret = "s3cr3t-relay-pass"
    monkeypatch.setenv("SMTP_PASS", secret + "\n")
    subs = addresses(3)
    # A server that echoes what it was given: here the secret ends up in a refusal text.
    handler = RecordingHandler(refuse={subs[1]: f"550 5.1.1 no such user (auth was {secret})"})
    with SMTPServer(handler) as server:
        _, store, slot, cfg = newsletter(
            write_config,
            tmp_path,
            extra=smtp_toml(server.port, more='password_env = "SMTP_PASS"'),
            subscribers=subs,
            now=fixed_now,
        )
        code, out, err = run_cli(capsys, "--debug", "--config", str(cfg), "send", "--as-of", "2025-08-11T09:00")
        logging.getLogger("digest.test").warning("the password is %s", secret)
        status = run_cli(capsys, "--config", str(cfg), "status", slot.key)
    assert code == 0, err
    (row,) = store.deliveries.with_status(slot.key, ["failed"])
    assert secret not in (row.detail or "") and "[secret]" in (row.detail or "")
    everything = out + err + status[1] + status[2]
    assert secret not in everything and "[secret]" in status[1]
    # The CLI put the masking filter on the log handlers (here pytest's, which captures them).
    assert "the password is [secret]" in caplog.text and secret not in caplog.text


# --- 8: exit 0 only when every delivery was delivered or refused by the receiving side --------------


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("550 5.1.1 Unknown user", 0),  # the receiving side refused that recipient: the send did its job
        ("451 4.3.0 Try again later", 4),  # deferred until we gave up: a delivery we failed
    ],
)
def test_exit_status_tells_refused_by_the_receiver_from_failed_by_us(
    write_config, tmp_path: Path, fixed_now, capsys: pytest.CaptureFixture[str], reply: str, status: int
) -> None:
    subs = addresses(4)
    handler = RecordingHandler(refuse={subs[0]: reply})
    with SMTPServer(handler) as server:
        _, store, slot, cfg = newsletter(
            write_config,
            tmp_path,
            extra=smtp_toml(server.port) + "[delivery.retry]\nmax_attempts = 1\n",
            subscribers=subs,
            now=fixed_now,
        )
        code, out, err = run_cli(capsys, "--config", str(cfg), "send", "--as-of", "2025-08-11T09:00")
    assert store.deliveries.counts(slot.key) == {"sent": 3, "failed": 1}
    assert code == status, out + err


# --- 7: a send before any ingest marks nothing; a skipped slot can be sent on purpose ----------------


def test_send_before_ingest_marks_nothing_and_force_sends_a_skipped_slot(
    write_config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import write_article

    from digest.config import load_config
    from digest.store import Store

    subs = addresses(3)
    handler = RecordingHandler()
    with SMTPServer(handler) as server:
        cfg = write_config(smtp_toml(server.port), subscribers=subs)
        cfg.write_text(
            cfg.read_text()
            .replace('backend = "outbox"', 'backend = "smtp"')
            .replace("min_articles = 1", "min_articles = 2")
        )
        c = ("--config", str(cfg))
        when = ("--as-of", "2025-08-11T09:00")
        code, out, _err = run_cli(capsys, *c, "send", *when)
        assert code == 1 and "no source has been read yet" in out and "digest ingest" in out
        store = Store(load_config(cfg).state_url)
        assert store.issues.get("2025-W33") is None  # nothing was recorded: the slot is still open

        write_article(tmp_path / "content", "a.md", title="Only one", date="2025-08-06T10:00:00+01:00", body="Body.")
        assert run_cli(capsys, *c, "ingest")[0] == 0
        code, out, _err = run_cli(capsys, *c, "send", *when)
        assert code == 0 and "not sent: " in out and handler.received == []
        again = run_cli(capsys, *c, "send", *when)
        assert "was skipped" in again[1] and handler.received == []
        code, out, err = run_cli(capsys, *c, "send", "--force", *when)
        assert code == 0, out + err
        assert "sent: 3 delivered" in out
        assert sorted(handler.per_recipient()) == subs
        assert "already sent" in run_cli(capsys, *c, "send", "--force", *when)[1]
    assert store.deliveries.counts("2025-W33") == {"sent": 3}


# --- 6: a service batch answered 400 is resolved per recipient --------------------------------------


def _sendgrid_refusing(bad: set[str]):  # type: ignore[no-untyped-def]
    """SendGrid that answers 400 to any request carrying one of ``bad``, 202 otherwise."""
    import json as jsonlib

    from servicestub import Answer

    def answer(req):  # type: ignore[no-untyped-def]
        to = [p["to"][0]["email"] for p in jsonlib.loads(req.body)["personalizations"]]
        if bad & set(to):
            return Answer(
                400, b'{"errors":[{"message":"Does not contain a valid address.","field":"personalizations.0.to"}]}'
            )
        return Answer(202, b"", {"X-Message-Id": "sg"})

    return answer


def _sendgrid_send(write_config, tmp_path, now, monkeypatch, subs, answer):  # type: ignore[no-untyped-def]
    from servicestub import KEY, ServiceStub

    monkeypatch.setenv("TEST_API_KEY", KEY)
    with ServiceStub(answer) as stub:
        settings, store, slot, _cfg = newsletter(
            write_config,
            tmp_path,
            backend="sendgrid",
            extra=f'[delivery.sendgrid]\nbase_url = "{stub.base_url}"\napi_key_env = "TEST_API_KEY"\n',
            subscribers=subs,
            now=now,
        )
        clock = FakeClock(now)
        sender = Sender(settings, store, clock=clock.now, sleep=clock.sleep)
        try:
            report = send_issue(settings, store, slot, now=now, sender=sender)
        except Exception as exc:  # noqa: BLE001 - the test looks at what was stopped
            report = exc
    return store, slot, report, stub


def test_a_batch_answered_400_fails_only_the_malformed_recipient(
    write_config, tmp_path: Path, fixed_now, monkeypatch: pytest.MonkeyPatch
) -> None:
    subs = addresses(40)
    store, slot, report, _stub = _sendgrid_send(
        write_config, tmp_path, fixed_now, monkeypatch, subs, _sendgrid_refusing({subs[17]})
    )
    assert store.deliveries.counts(slot.key) == {"sent": 39, "failed": 1}
    assert store.deliveries.failed(slot.key)[0][0] == subs[17]
    assert "valid address" in store.deliveries.failed(slot.key)[0][1]
    assert report.exit_status == 0  # type: ignore[union-attr]


def test_a_batch_whose_every_message_is_refused_stops_the_send_with_nothing_failed(
    write_config, tmp_path: Path, fixed_now, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.delivery.base import SendStopped

    subs = addresses(8)
    store, slot, report, _stub = _sendgrid_send(
        write_config, tmp_path, fixed_now, monkeypatch, subs, _sendgrid_refusing(set(subs))
    )
    assert isinstance(report, SendStopped) and "request itself is at fault" in str(report)
    assert store.deliveries.counts(slot.key) == {"pending": 8}


# --- 10: a connection dropped after the final dot counts as interrupted ----------------------------


@dataclass
class _DropsAfterKeeping(RecordingHandler):
    """Keeps the first message for ``victim`` and then hangs up instead of answering."""

    victim: str = ""
    dropped: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.record(envelope)
        if envelope.rcpt_tos == [self.victim] and not self.dropped:
            self.dropped += 1
            server.transport.abort()
        return "250 Message accepted"


def test_status_counts_a_connection_dropped_after_the_final_dot_as_interrupted(
    write_config, tmp_path: Path, fixed_now, capsys: pytest.CaptureFixture[str]
) -> None:
    subs = addresses(3)
    handler = _DropsAfterKeeping(victim=subs[1])
    with SMTPServer(handler) as server:
        settings, store, slot, cfg = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port, connections=1), subscribers=subs, now=fixed_now
        )
        clock = FakeClock(fixed_now)
        sender = Sender(settings, store, clock=clock.now, sleep=clock.sleep)
        send_issue(settings, store, slot, now=fixed_now, sender=sender)
        _code, out, _err = run_cli(capsys, "--config", str(cfg), "status", slot.key)
    duplicates = handler.per_recipient()[subs[1]] - 1
    assert duplicates == 1 and store.deliveries.counts(slot.key) == {"sent": 3}
    assert store.deliveries.interrupted_total(slot.key) >= duplicates
    assert "interrupted: 1 deliveries" in out


# --- 9: concurrent first sends and imports are serialised; no SQL or personal data in errors ---------


def _digest_processes(cfg: Path, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
    """Start one `digest` process per command at once; wait for all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "digest", "--config", str(cfg), *c],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for c in commands
    ]
    done = []
    for p, c in zip(procs, commands, strict=True):
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(c, p.returncode, out, err))
    return done


def test_concurrent_first_sends_and_imports_serialise(write_config, tmp_path: Path, fixed_now) -> None:
    from conftest import write_article

    from digest.config import load_config
    from digest.store import Store

    subs = addresses(400)
    cfg = write_config(subscribers=[])
    (tmp_path / "subscribers.csv").write_text(
        "email,name\n" + "".join(f"{s},Private Name {i}\n" for i, s in enumerate(subs))
    )
    write_article(tmp_path / "content", "a.md", title="One", date="2025-08-06T10:00:00+01:00", body="Body.")
    store = Store(load_config(cfg).state_url)
    imports = _digest_processes(cfg, *[("subscribers", "import", str(tmp_path / "subscribers.csv"))] * 3)
    assert [p.returncode for p in imports] == [0, 0, 0], [p.stderr for p in imports]
    added = [int(p.stdout.split(" added")[0].split()[-1]) for p in imports]
    assert sum(added) == 400
    _digest_processes(cfg, ("ingest",))
    sends = _digest_processes(cfg, *[("send", "--as-of", "2025-08-11T09:00")] * 3)
    for p in imports + sends:
        assert p.stderr.count("digest:") <= 1 and "SQL" not in p.stderr and "Private Name" not in p.stderr, p.stderr
    assert [p.returncode for p in sends] == [0, 0, 0], [p.stdout + p.stderr for p in sends]
    assert store.deliveries.counts("2025-W33") == {"sent": 400}
    outbox = sorted((tmp_path / "outbox").rglob("*.eml"))
    assert len(outbox) == 400


def test_a_database_conflict_is_one_line_without_sql_or_personal_data(tmp_path: Path, fixed_now) -> None:
    from digest.store import Store, state_error_line

    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.subscribers.add_new([("ana@example.org", "Ana Private")], now=fixed_now)
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the store's own error type is SQLAlchemy's
        store.subscribers.add_new([("ana@example.org", "Ana Private")], now=fixed_now)
    assert "Ana Private" not in str(raised.value)  # the engine hides row values, also in --debug tracebacks
    line = state_error_line(raised.value)
    assert line is not None and "\n" not in line and "INSERT" not in line and "ana@" not in line


def test_an_unexpected_error_for_one_message_neither_aborts_the_batch_nor_resends_the_others(
    write_config, tmp_path: Path, fixed_now, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from digest.delivery.smtp_lanes import LaneLoop

    subs = addresses(10)
    real_reply = LaneLoop._reply

    def reply(self: LaneLoop, lane: Any, code: int, text: bytes) -> None:
        # Mid-transaction with the server (its reply to the envelope is being handled).
        if lane.msg is not None and lane.msg.recipient == subs[5]:
            raise RuntimeError("something no one expected")
        real_reply(self, lane, code, text)

    monkeypatch.setattr(LaneLoop, "_reply", reply)
    handler = RecordingHandler()
    with SMTPServer(handler) as server:
        _, store, slot, cfg = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port, connections=1), subscribers=subs, now=fixed_now
        )
        args = ("--config", str(cfg), "send", "--as-of", "2025-08-11T09:00")
        first = run_cli(capsys, *args)
        again = run_cli(capsys, *args)
    assert store.deliveries.counts(slot.key) == {"sent": 9, "failed": 1}
    assert f"failed: {subs[5]}: not sent: RuntimeError: something no one expected" in first[1]
    assert first[0] == 4 and again[0] == 4 and "nothing to send" in again[1]
    assert sorted(handler.per_recipient()) == [s for s in subs if s != subs[5]]
    assert set(handler.per_recipient().values()) == {1}


def test_an_idn_sender_and_site_give_ascii_header_fields_in_the_sample_eml() -> None:
    nl = _newsletter("Wöchentlich <digest@bücher.example>", "https://bücher.example")
    eml = build_message(RENDERED, nl, to="ana@example.org", token="TOK", now=NOW).as_bytes()
    template = MessageTemplate(RENDERED, nl)
    fast = template.render(to="ana@example.org", token="TOK", date=NOW, message_id=template.new_message_id())
    for raw in (eml, fast):
        head = raw.split(b"\r\n\r\n")[0]
        assert head.isascii()
        msg = _utf8_message(raw)
        assert msg["From"].addresses[0].addr_spec == "digest@xn--bcher-kva.example"
        assert str(msg["List-Unsubscribe"]) == (
            "<https://xn--bcher-kva.example/unsubscribe?token=TOK>, "
            "<mailto:digest@xn--bcher-kva.example?subject=unsubscribe>"
        )
    assert template.envelope_from == "digest@xn--bcher-kva.example"


def test_a_dry_run_reports_an_address_that_cannot_be_written_instead_of_crashing(
    write_config, tmp_path: Path, fixed_now, capsys: pytest.CaptureFixture[str]
) -> None:
    # An internationalised domain with a label longer than 63 characters has no IDNA form.
    unwritable = "ü@" + "b" * 70 + ".exämple"
    _, store, _slot, cfg = newsletter(write_config, tmp_path, backend="outbox", subscribers=addresses(3), now=fixed_now)
    store.subscribers.add([(JOSE, "José"), (unwritable, None)], now=fixed_now)
    code, out, err = run_cli(capsys, "--config", str(cfg), "send", "--dry-run", "--as-of", "2025-08-11T09:00")
    assert "would go to 5 subscribers; 4 messages rendered" in out and "1 addresses cannot be written" in out, out + err
    assert f"failed: {unwritable}: not sent: no message can be made" in out and "Traceback" not in err


# --- the state database failing mid-send: one line, nothing sent without its record ----------------


def _failing_writes(monkeypatch: pytest.MonkeyPatch, error: Exception, after: int) -> None:
    """The outcome writer's commits fail from the ``after``-th on (a full disk, a lost server)."""
    from digest.store.deliveries import OutcomeWriter

    real = OutcomeWriter.write
    calls = {"n": 0}

    def write(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] >= after:
            raise error
        return real(self, *args, **kwargs)

    monkeypatch.setattr(OutcomeWriter, "write", write)


@pytest.mark.parametrize(
    "error",
    ["state", "driver"],
    ids=["the writer's own error", "a database error with SQL in it"],
)
def test_a_state_database_failing_mid_send_is_one_line_and_stops_the_send(
    write_config,
    tmp_path: Path,
    fixed_now,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: str,
) -> None:
    import sqlalchemy as sa

    from digest.errors import StateError

    subs = addresses(20)
    failure: Exception = (
        StateError("state database error while recording delivery outcomes (OperationalError); the send stops")
        if error == "state"
        else sa.exc.OperationalError(
            "UPDATE deliveries SET status=? WHERE email=?", {"e": subs[0]}, Exception("disk I/O error")
        )
    )
    _failing_writes(monkeypatch, failure, after=3)
    handler = RecordingHandler(pipelining=True)
    with SMTPServer(handler) as server:
        _, store, slot, cfg = newsletter(
            write_config, tmp_path, extra=smtp_toml(server.port, connections=1), subscribers=subs, now=fixed_now
        )
        code, out, err = run_cli(capsys, "--config", str(cfg), "send", "--as-of", "2025-08-11T09:00")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("digest: error: a delivery outcome could not be recorded: state database"), err
    assert "unexpected" not in err and "Traceback" not in err and "UPDATE" not in err and subs[0] not in err
    # Nothing went out whose outcome or mark could not be kept: the messages sent are those the
    # two commits that worked covered (a mark, then an outcome and the next mark).
    assert len(handler.received) <= 2
