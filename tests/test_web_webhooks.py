"""The e-mail services' webhooks over real HTTP on 127.0.0.1, built on each service's documented
payloads and signing: a valid event changes the status; a tampered, missing or replayed signature
is answered 4xx and changes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from conftest import write_article
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from digest.config import load_config
from digest.pipeline import run_once, token_signer
from digest.store import Store
from digest.web.serve import SubscriberApp
from digest.web.wsgi import make_wsgi_server

MAILGUN_KEY = "key-test-signing-0123456789"
POSTMARK_PASSWORD = "pm-secret-pass"
SUBSCRIBERS = ["ana@example.org", "bo@example.org", "cy@example.org", "di@example.org"]


class Site:
    def __init__(self, store: Store, port: int, now: datetime, sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
        self.store, self.port, self.now, self.sendgrid_key = store, port, now, sendgrid_key

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
            r = conn.getresponse()
            r.read()
            return r.status
        finally:
            conn.close()

    def statuses(self) -> dict[str, str]:
        return {r.email: r.status for r in self.store.subscribers.all()}


@pytest.fixture
def site(write_config, tmp_path: Path, fixed_now, monkeypatch) -> Iterator[Site]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    monkeypatch.setenv("TEST_MAILGUN_KEY", MAILGUN_KEY)
    monkeypatch.setenv("TEST_SENDGRID_KEY", base64.b64encode(public).decode())
    monkeypatch.setenv("TEST_POSTMARK_PASSWORD", POSTMARK_PASSWORD)
    write_article(
        tmp_path / "content", "one.md", title="One", date="2025-08-08T10:00:00+01:00", body="The lead of one. More."
    )
    settings = load_config(
        write_config(
            """
            [webhooks]
            mailgun_signing_key_env = "TEST_MAILGUN_KEY"
            sendgrid_public_key_env = "TEST_SENDGRID_KEY"
            postmark_username = "digest"
            postmark_password_env = "TEST_POSTMARK_PASSWORD"
            soft_bounce_limit = 2
            """,
            subscribers=SUBSCRIBERS,
        )
    )
    store = Store(settings.state_url)
    _, report = run_once(settings, store, as_of=fixed_now, now=fixed_now)
    assert report.outcome == "sent"
    app = SubscriberApp(settings, store, token_signer(settings, store), clock=lambda: fixed_now)
    server = make_wsgi_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(store, server.server_port, fixed_now, key)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        store.close()


# --- Mailgun: {"signature": {timestamp, token, signature}, "event-data": {...}} --------------------


def mailgun_body(site: Site, event: dict, *, token: str = "a" * 50, key: str = MAILGUN_KEY) -> dict:
    timestamp = str(int(site.now.timestamp()))
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature}, "event-data": event}


def mailgun_failed(recipient: str, severity: str = "permanent") -> dict:
    return {
        "event": "failed",
        "severity": severity,
        "recipient": recipient,
        "message": {"headers": {"message-id": "20250811090000.1@news.example.org"}},
        "delivery-status": {"code": 550, "description": "No such mailbox"},
    }


def test_mailgun_a_signed_hard_bounce_suppresses(site: Site) -> None:
    body = json.dumps(mailgun_body(site, mailgun_failed("bo@example.org"))).encode()
    assert site.post("/webhooks/mailgun", body) == 200
    assert site.statuses()["bo@example.org"] == "bounced"
    assert site.store.feedback.counts("2025-W33") == {"hard-bounce": 1}
    # The same request again is a replay: refused, nothing more recorded.
    assert site.post("/webhooks/mailgun", body) == 409
    assert site.store.feedback.counts("2025-W33") == {"hard-bounce": 1}


def test_mailgun_tampered_or_missing_signatures_change_nothing(site: Site) -> None:
    signed = mailgun_body(site, mailgun_failed("ana@example.org"), token="b" * 50)
    tampered = json.loads(json.dumps(signed))
    tampered["signature"]["token"] = "c" * 50  # the signature was made over the other token
    assert site.post("/webhooks/mailgun", json.dumps(tampered).encode()) == 401
    wrong_key = mailgun_body(site, mailgun_failed("ana@example.org"), token="d" * 50, key="another-key")
    assert site.post("/webhooks/mailgun", json.dumps(wrong_key).encode()) == 401
    missing = {"event-data": mailgun_failed("ana@example.org")}
    assert site.post("/webhooks/mailgun", json.dumps(missing).encode()) == 401
    assert set(site.statuses().values()) == {"active"}
    assert site.store.feedback.counts("2025-W33") == {}


def test_mailgun_a_complaint_suppresses_and_a_soft_bounce_only_after_the_limit(site: Site) -> None:
    complaint = {"event": "complained", "recipient": "cy@example.org", "message": {"headers": {}}}
    assert site.post("/webhooks/mailgun", json.dumps(mailgun_body(site, complaint, token="e" * 50)).encode()) == 200
    assert site.statuses()["cy@example.org"] == "complained"
    soft = mailgun_body(site, mailgun_failed("di@example.org", "temporary"), token="f" * 50)
    assert site.post("/webhooks/mailgun", json.dumps(soft).encode()) == 200
    # One issue soft-bounced; the limit is two in a row.
    assert site.statuses()["di@example.org"] == "active"
    assert site.store.feedback.counts("2025-W33") == {"complaint": 1, "soft-bounce": 1}


# --- SendGrid: a JSON array of events, ECDSA-signed over timestamp + body -------------------------


def sendgrid_headers(site: Site, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(site.now.timestamp()))
    signature = site.sendgrid_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def sendgrid_events(*events: dict) -> bytes:
    return json.dumps(list(events)).encode()


def test_sendgrid_signed_bounce_and_spamreport_suppress(site: Site) -> None:
    body = sendgrid_events(
        {
            "email": "ana@example.org",
            "event": "bounce",
            "type": "bounce",
            "reason": "550 5.1.1 unknown user",
            "timestamp": int(site.now.timestamp()),
            "sg_event_id": "ev1",
        },
        {
            "email": "bo@example.org",
            "event": "spamreport",
            "timestamp": int(site.now.timestamp()),
            "sg_event_id": "ev2",
        },
        {"email": "cy@example.org", "event": "delivered", "timestamp": int(site.now.timestamp()), "sg_event_id": "ev3"},
    )
    headers = sendgrid_headers(site, body)
    assert site.post("/webhooks/sendgrid", body, headers) == 200
    assert site.statuses() == {
        "ana@example.org": "bounced",
        "bo@example.org": "complained",
        "cy@example.org": "active",
        "di@example.org": "active",
    }
    assert site.post("/webhooks/sendgrid", body, headers) == 409  # replayed


def test_sendgrid_tampered_missing_or_stale_signatures_change_nothing(site: Site) -> None:
    body = sendgrid_events({"email": "ana@example.org", "event": "spamreport", "sg_event_id": "ev9"})
    headers = sendgrid_headers(site, body)
    tampered = body.replace(b"ana@example.org", b"bo@example.org")
    assert site.post("/webhooks/sendgrid", tampered, headers) == 401
    assert site.post("/webhooks/sendgrid", body) == 401
    stale = sendgrid_headers(site, body, timestamp=str(int(site.now.timestamp()) - 3600))
    assert site.post("/webhooks/sendgrid", body, stale) == 401
    assert set(site.statuses().values()) == {"active"}


# --- Postmark: one JSON object per event, behind HTTP basic auth ----------------------------------


def postmark_auth(password: str = POSTMARK_PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"digest:{password}".encode()).decode()}


def postmark_bounce(email: str, kind: str = "HardBounce", event_id: int = 42) -> bytes:
    return json.dumps(
        {
            "RecordType": "Bounce",
            "ID": event_id,
            "Type": kind,
            "TypeCode": 1,
            "Name": "Hard bounce",
            "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
            "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "Email": email,
            "BouncedAt": "2025-08-11T09:05:00Z",
        }
    ).encode()


def test_postmark_hard_bounce_and_complaint_with_the_right_credentials(site: Site) -> None:
    assert site.post("/webhooks/postmark", postmark_bounce("di@example.org"), postmark_auth()) == 200
    complaint = json.dumps(
        {"RecordType": "SpamComplaint", "ID": 43, "Type": "SpamComplaint", "Email": "cy@example.org"}
    ).encode()
    assert site.post("/webhooks/postmark", complaint, postmark_auth()) == 200
    assert site.statuses()["di@example.org"] == "bounced"
    assert site.statuses()["cy@example.org"] == "complained"
    assert site.store.feedback.counts("2025-W33") == {"hard-bounce": 1, "complaint": 1}
    assert site.post("/webhooks/postmark", postmark_bounce("di@example.org"), postmark_auth()) == 409


def test_postmark_wrong_or_missing_credentials_change_nothing(site: Site) -> None:
    assert site.post("/webhooks/postmark", postmark_bounce("ana@example.org"), postmark_auth("guess")) == 401
    assert site.post("/webhooks/postmark", postmark_bounce("ana@example.org")) == 401
    assert set(site.statuses().values()) == {"active"}


def test_soft_bounces_suppress_after_the_limit_of_issues_in_a_row(site: Site, tmp_path: Path) -> None:
    # A second issue goes out; di soft-bounces both.
    write_article(
        tmp_path / "content", "two.md", title="Two", date="2025-08-15T10:00:00+01:00", body="The lead of two. More."
    )
    settings = load_config(tmp_path / "digest.toml")
    later = site.now.replace(day=18)
    run_once(settings, site.store, as_of=later, now=later)
    site.store.feedback.record(
        email="di@example.org", kind="soft-bounce", origin="webhook:postmark", issue_key="2025-W33"
    )
    soft = postmark_bounce("di@example.org", "SoftBounce", event_id=77)
    assert site.post("/webhooks/postmark", soft, postmark_auth()) == 200
    assert site.statuses()["di@example.org"] == "bounced"


def test_sendgrid_key_may_also_be_given_as_pem(site: Site, monkeypatch) -> None:
    pem = site.sendgrid_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    monkeypatch.setenv("TEST_SENDGRID_KEY", pem.decode().replace("\n", "\\n"))  # as an env file carries it
    body = sendgrid_events({"email": "ana@example.org", "event": "spamreport", "sg_event_id": "ev5"})
    assert site.post("/webhooks/sendgrid", body, sendgrid_headers(site, body)) == 200
    assert site.statuses()["ana@example.org"] == "complained"
