"""The e-mail-service backends against a local HTTP server that checks each request as the
service documents it (servicestub.DOCUMENTED; the doc links are in each backend module): the
requests' content per service, and what each backend does with 429, 5xx and 401 answers.
SendGrid answers 202, Mailgun 200 with an id, Postmark one result per message.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from deliverykit import FakeClock, addresses, newsletter
from servicestub import DOCUMENTED, KEY, Answer, Request, ServiceStub

from digest.delivery.sender import Sender
from digest.errors import DeliveryConfigError
from digest.pipeline import send_issue, token_signer
from digest.render.issue import EMAIL_MARK, TOKEN_MARK

UNSUB = re.compile(
    r"^<(https://news\.example\.org/unsubscribe\?token=([^>]+))>, <mailto:digest@news\.example\.org\?subject=unsubscribe>$"
)


def answer_for(service: str, problems: list[str]):  # type: ignore[no-untyped-def]
    check = DOCUMENTED[service]

    def answer(req: Request) -> Answer:
        problem = check(req)
        if problem:
            problems.append(problem)
            return Answer(400, json.dumps({"errors": [{"message": problem}]}).encode())
        if service == "sendgrid":
            return Answer(202, b"", {"X-Message-Id": f"sg-{len(problems)}-{req.body[:0].decode()}abc"})
        if service == "mailgun":
            return Answer(
                200, json.dumps({"id": "<20250811.1@mg.example.org>", "message": "Queued. Thank you."}).encode()
            )
        results = []
        for i, m in enumerate(json.loads(req.body)):
            if m["To"] == "reader00007@example.org":
                results.append(
                    {"ErrorCode": 406, "Message": "You tried to send to a recipient that has been marked as inactive."}
                )
            else:
                results.append(
                    {
                        "To": m["To"],
                        "SubmittedAt": "2025-08-11T09:00:00Z",
                        "MessageID": f"pm-{i}",
                        "ErrorCode": 0,
                        "Message": "OK",
                    }
                )
        return Answer(200, json.dumps(results).encode())

    return answer


def service_toml(service: str, base_url: str, more: str = "") -> str:
    extra = '\ndomain = "mg.example.org"' if service == "mailgun" else ""
    return f'[delivery.{service}]\nbase_url = "{base_url}"\napi_key_env = "TEST_API_KEY"{extra}\n' + more


@pytest.fixture
def api_key(monkeypatch) -> None:
    monkeypatch.setenv("TEST_API_KEY", KEY)


def _send(service: str, stub: ServiceStub, write_config, tmp_path: Path, now, subs: list[str], more: str = ""):  # type: ignore[no-untyped-def]
    settings, store, slot, cfg = newsletter(
        write_config,
        tmp_path,
        backend=service,
        extra=service_toml(service, stub.base_url, more),
        subscribers=subs,
        now=now,
    )
    clock = FakeClock(now)
    return settings, store, slot, clock, cfg


def _deliver(settings, store, slot, clock, now):  # type: ignore[no-untyped-def]
    """Send the issue with the fake clock: its sleeps are recorded, not slept."""
    return send_issue(
        settings, store, slot, now=now, sender=Sender(settings, store, clock=clock.now, sleep=clock.sleep)
    )


def _send_checked(service: str, write_config, tmp_path: Path, now, subs: list[str]):  # type: ignore[no-untyped-def]
    """Send through the service stub that checks every request; returns (store, report, stub, signer)."""
    problems: list[str] = []
    with ServiceStub(answer_for(service, problems)) as stub:
        settings, store, slot, clock, _ = _send(service, stub, write_config, tmp_path, now, subs)
        report = send_issue(
            settings, store, slot, now=now, sender=Sender(settings, store, clock=clock.now, sleep=clock.sleep)
        )
    assert problems == []
    return store, report, stub, token_signer(settings, store)


def _check_unsubscribe(value: str, email: str, signer) -> str:  # type: ignore[no-untyped-def]
    m = UNSUB.match(value)
    assert m, value
    assert signer.email_for(m.group(2)) == email
    return m.group(1)


def test_sendgrid_request_matches_the_documented_contract(write_config, tmp_path: Path, fixed_now, api_key) -> None:
    subs = addresses(1234)
    store, report, stub, signer = _send_checked("sendgrid", write_config, tmp_path, fixed_now, subs)
    assert report.counts == {"sent": 1234}
    bodies = [json.loads(r.body) for r in stub.requests]
    assert [len(b["personalizations"]) for b in bodies] == [1000, 234]
    seen = []
    for body in bodies:
        text, html = body["content"][0]["value"], body["content"][1]["value"]
        assert TOKEN_MARK not in text + html and EMAIL_MARK not in text + html
        assert "-digest_token-" in text and "-digest_token-" in html
        assert body["from"] == {"email": "digest@news.example.org", "name": "Test Weekly"}
        assert body["reply_to"] == {"email": "editor@news.example.org"}
        assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        for p in body["personalizations"]:
            (to,) = p["to"]
            seen.append(to["email"])
            url = _check_unsubscribe(p["headers"]["List-Unsubscribe"], to["email"], signer)
            assert url.endswith(p["substitutions"]["-digest_token-"])
            assert p["substitutions"]["-digest_email-"] == to["email"]
    assert sorted(seen) == subs


def test_mailgun_request_matches_the_documented_contract(write_config, tmp_path: Path, fixed_now, api_key) -> None:
    subs = addresses(1234)
    store, report, stub, signer = _send_checked("mailgun", write_config, tmp_path, fixed_now, subs)
    assert report.counts == {"sent": 1234}
    seen = []
    sizes = []
    for req in stub.requests:
        fields = parse_qsl(req.body.decode())
        one = dict(fields)
        to = [v for k, v in fields if k == "to"]
        sizes.append(len(to))
        seen += to
        assert one["from"] == "Test Weekly <digest@news.example.org>"
        assert (
            one["h:List-Unsubscribe"]
            == "<%recipient.unsubscribe_url%>, <mailto:digest@news.example.org?subject=unsubscribe>"
        )
        assert one["h:List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "%recipient.token%" in one["text"] and "%recipient.token%" in one["html"]
        assert "%recipient.email%" in one["text"]
        variables = json.loads(one["recipient-variables"])
        for email in to:
            v = variables[email]
            _check_unsubscribe(
                f"<{v['unsubscribe_url']}>, <mailto:digest@news.example.org?subject=unsubscribe>", email, signer
            )
            assert v["unsubscribe_url"].endswith(v["token"]) and v["email"] == email
    assert sizes == [1000, 234]
    assert sorted(seen) == subs


def test_postmark_request_matches_the_documented_contract(write_config, tmp_path: Path, fixed_now, api_key) -> None:
    subs = addresses(1234)
    store, report, stub, signer = _send_checked("postmark", write_config, tmp_path, fixed_now, subs)
    assert report.counts == {"sent": 1233, "failed": 1}
    assert report.failures == [
        ("reader00007@example.org", "Postmark: 406 You tried to send to a recipient that has been marked as inactive.")
    ]
    assert {r.email: r.status for r in store.subscribers.all()}["reader00007@example.org"] == "bounced"
    batches = [json.loads(r.body) for r in stub.requests]
    assert [len(b) for b in batches] == [500, 500, 234]
    for m in (m for b in batches for m in b):
        headers = {h["Name"]: h["Value"] for h in m["Headers"]}
        url = _check_unsubscribe(headers["List-Unsubscribe"], m["To"], signer)
        assert url in m["TextBody"] and m["To"] in m["TextBody"]
        assert m["MessageStream"] == "broadcast" and m["ReplyTo"] == "editor@news.example.org"
    assert sorted(m["To"] for b in batches for m in b) == subs


SERVICES = ["sendgrid", "mailgun", "postmark"]


@pytest.mark.parametrize("service", SERVICES)
def test_429_waits_for_retry_after_then_sends(service: str, write_config, tmp_path: Path, fixed_now, api_key) -> None:
    problems: list[str] = []
    with ServiceStub(answer_for(service, problems)) as stub:
        stub.script = [Answer(429, b'{"message": "Too many requests"}', {"Retry-After": "7"})]
        settings, store, slot, clock, _ = _send(
            service,
            stub,
            write_config,
            tmp_path,
            fixed_now,
            addresses(20, "example.net"),
            "[delivery.retry]\nbase_delay = 1\n",
        )
        report = _deliver(settings, store, slot, clock, fixed_now)
    assert report.counts == {"sent": 20}
    assert len(stub.requests) == 2
    assert 7.0 in clock.sleeps, clock.sleeps
    assert sum(clock.sleeps) < 9


@pytest.mark.parametrize("service", SERVICES)
def test_5xx_is_retried_with_exponential_backoff(
    service: str, write_config, tmp_path: Path, fixed_now, api_key
) -> None:
    problems: list[str] = []
    with ServiceStub(answer_for(service, problems)) as stub:
        stub.script = [Answer(503, b"upstream unavailable"), Answer(500, b"internal error")]
        settings, store, slot, clock, _ = _send(
            service,
            stub,
            write_config,
            tmp_path,
            fixed_now,
            addresses(5, "example.net"),
            "[delivery.retry]\nbase_delay = 4\n",
        )
        report = send_issue(
            settings,
            store,
            slot,
            now=fixed_now,
            sender=Sender(settings, store, clock=clock.now, sleep=clock.sleep, rng=lambda: 0.0),
        )
    assert report.counts == {"sent": 5}
    assert len(stub.requests) == 3
    # Half of base × 2^(n-1) when the jitter draws 0: 2 s, then 4 s.
    assert clock.sleeps == [2.0, 4.0]


@pytest.mark.parametrize("service", SERVICES)
def test_retries_stop_at_the_configured_limit(service: str, write_config, tmp_path: Path, fixed_now, api_key) -> None:
    with ServiceStub(lambda req: Answer(502, b"bad gateway")) as stub:
        settings, store, slot, clock, _ = _send(
            service,
            stub,
            write_config,
            tmp_path,
            fixed_now,
            addresses(3, "example.net"),
            "[delivery.retry]\nmax_attempts = 3\n",
        )
        report = _deliver(settings, store, slot, clock, fixed_now)
    assert len(stub.requests) == 3 and len(clock.sleeps) == 2
    assert report.counts == {"failed": 3}
    assert report.failures[0][1].startswith("gave up after 3 attempts; last: ")
    assert "HTTP 502: bad gateway" in report.failures[0][1]


@pytest.mark.parametrize("service", SERVICES)
def test_401_stops_the_send_with_nothing_marked_sent(
    service: str, write_config, tmp_path: Path, fixed_now, api_key
) -> None:
    with ServiceStub(lambda req: Answer(401, b'{"message": "Invalid API key"}')) as stub:
        settings, store, slot, clock, _ = _send(service, stub, write_config, tmp_path, fixed_now, addresses(8))
        with pytest.raises(
            DeliveryConfigError,
            match=rf"refused the request: HTTP 401: .*Invalid API key.*delivery\.{service}\.api_key_env",
        ):
            send_issue(
                settings, store, slot, now=fixed_now, sender=Sender(settings, store, clock=clock.now, sleep=clock.sleep)
            )
    assert len(stub.requests) == 1
    assert store.deliveries.counts(slot.key) == {"pending": 8}
    assert clock.sleeps == []


def test_401_from_the_cli_is_one_line_without_the_key(write_config, tmp_path: Path, fixed_now, api_key) -> None:
    with ServiceStub(
        lambda req: Answer(401, b'{"ErrorCode": 10, "Message": "Bad or missing Server API token."}')
    ) as stub:
        _, store, slot, _, cfg = _send("postmark", stub, write_config, tmp_path, fixed_now, addresses(4))
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        proc = subprocess.run(
            [sys.executable, "-m", "digest", "--config", str(cfg), "send", "--as-of", "2025-08-11T09:00"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Bad or missing Server API token" in proc.stderr
    assert KEY not in proc.stderr + proc.stdout
    assert store.deliveries.counts(slot.key) == {"pending": 4}


def test_missing_api_key_variable_is_a_config_error(write_config, tmp_path: Path, monkeypatch) -> None:
    from digest.config import load_config
    from digest.errors import ConfigError

    monkeypatch.delenv("TEST_API_KEY", raising=False)
    cfg = write_config(service_toml("sendgrid", "http://127.0.0.1:9"))
    cfg.write_text(cfg.read_text().replace('backend = "outbox"', 'backend = "sendgrid"'))
    with pytest.raises(
        ConfigError, match="delivery.sendgrid.api_key_env: environment variable TEST_API_KEY is not set"
    ):
        load_config(cfg)


def test_a_service_that_cannot_be_reached_is_reported_in_words(
    write_config, tmp_path: Path, fixed_now, api_key
) -> None:
    with ServiceStub(lambda req: Answer(202, b"")) as stub:
        pass  # closed again: nothing listens on its port now
    settings, store, slot, clock, _ = _send(
        "sendgrid",
        stub,
        write_config,
        tmp_path,
        fixed_now,
        addresses(1, "example.net"),
        "[delivery.retry]\nmax_attempts = 1\n",
    )
    report = _deliver(settings, store, slot, clock, fixed_now)
    assert report.counts == {"failed": 1}
    assert report.failures[0][1].endswith(
        "SendGrid: no answer: connection refused; is the server running and the port right?"
    )
