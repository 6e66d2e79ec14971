"""Sign-up with double opt-in over real HTTP on 127.0.0.1, on a controllable clock."""

from __future__ import annotations

import email
import http.client
import logging
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import policy
from pathlib import Path
from urllib.parse import unquote, urlencode, urlsplit

import pytest
from conftest import CHROMIUM_ARGS, chromium_executable, free_port, write_article

from digest.config import load_config
from digest.pipeline import run_once, token_signer
from digest.store import Store
from digest.web.serve import SubscriberApp
from digest.web.wsgi import make_wsgi_server

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Site:
    def __init__(self, settings, store: Store, port: int, outbox: Path, clock: Clock) -> None:
        self.settings, self.store, self.port, self.outbox, self.clock = settings, store, port, outbox, clock

    def request(
        self, method: str, path: str, fields: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            body = urlencode(fields).encode() if fields is not None else None
            conn.request(method, path, body=body, headers={**(FORM if body is not None else {}), **(headers or {})})
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8")
        finally:
            conn.close()

    def confirmation(self, address: str) -> Path:
        return self.outbox / "notice-signup-confirm" / f"{address.lower()}.eml"

    def confirm_path(self, address: str) -> str:
        """The /confirm link in the text part of the confirmation e-mail sent to ``address``."""
        msg = email.message_from_bytes(self.confirmation(address).read_bytes(), policy=policy.default)
        text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        url = re.search(r"(http://\S+/confirm\?token=\S+)", text).group(1)  # type: ignore[union-attr]
        parts = urlsplit(url)
        return f"{parts.path}?{parts.query}"

    def status(self, address: str) -> str | None:
        return self.store.subscribers.status_of(address)


@pytest.fixture
def signup_extra() -> str:
    """More [signup] keys for a test (parametrize over this name to set them)."""
    return ""


@pytest.fixture
def site(write_config, tmp_path: Path, fixed_now, signup_extra: str) -> Iterator[Site]:
    write_article(
        tmp_path / "content", "one.md", title="One", date="2025-08-08T10:00:00+01:00", body="The lead of one. More."
    )
    port = free_port()
    settings = load_config(
        write_config(
            f"""
            [signup]
            confirm_url = "http://127.0.0.1:{port}/confirm"
            per_address_per_hour = 2
            per_ip_per_hour = 6
            """
            + signup_extra,
            subscribers=["ana@example.org"],
        )
    )
    store = Store(settings.state_url)
    clock = Clock(fixed_now)
    _, report = run_once(settings, store, as_of=fixed_now, now=fixed_now)
    assert report.outcome == "sent"
    app = SubscriberApp(settings, store, token_signer(settings, store), clock=clock)
    server = make_wsgi_server(app, "127.0.0.1", port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(settings, store, port, tmp_path / "outbox", clock)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        store.close()


def test_sign_up_sends_a_confirmation_and_only_the_confirm_post_subscribes(site: Site) -> None:
    status, page = site.request("GET", "/subscribe")
    assert status == 200 and 'name="email"' in page and 'name="website"' in page
    status, page = site.request("POST", "/subscribe", {"email": "New@Example.org", "name": "Nia"})
    assert status == 200 and "Check your inbox" in page
    assert site.status("new@example.org") is None  # nothing yet: only an e-mail went out
    path = site.confirm_path("New@example.org")
    status, page = site.request("GET", path)  # what a link scanner does
    assert status == 200 and "Confirm subscription" in page
    assert site.status("new@example.org") is None
    token = path.split("token=", 1)[1]
    status, page = site.request("POST", "/confirm", {"token": unquote(token)})
    assert status == 200 and "is subscribed" in page
    assert site.status("new@example.org") == "active"
    assert ("New@example.org", "Nia") in site.store.subscribers.active_recipients()


def test_the_answer_is_the_same_for_known_and_unknown_addresses(site: Site) -> None:
    _, known = site.request("POST", "/subscribe", {"email": "ana@example.org"})
    _, unknown = site.request("POST", "/subscribe", {"email": "zed@example.org"})
    assert known.replace("ana@example.org", "X") == unknown.replace("zed@example.org", "X")
    assert not site.confirmation("ana@example.org").exists()  # already active: no e-mail
    assert site.confirmation("zed@example.org").exists()


def test_a_tampered_or_expired_token_is_refused(site: Site) -> None:
    site.request("POST", "/subscribe", {"email": "late@example.org"})
    token = site.confirm_path("late@example.org").split("token=", 1)[1]
    token = unquote(token)
    # A character inside the signature, not its last two: base64 ignores the last character's
    # spare bits, so "xx" at the end decoded to the genuine signature about once in 1,000 tokens.
    tampered = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    status, page = site.request("POST", "/confirm", {"token": tampered})
    assert status == 400 and "not valid" in page
    site.clock.now += timedelta(hours=49)
    status, _ = site.request("POST", "/confirm", {"token": token})
    assert status == 400
    assert site.status("late@example.org") is None


def test_the_honeypot_and_the_rate_limits_send_nothing(site: Site) -> None:
    status, page = site.request("POST", "/subscribe", {"email": "bot@example.org", "website": "http://spam"})
    assert status == 200 and "Check your inbox" in page
    assert not site.confirmation("bot@example.org").exists()
    # Per address: two confirmations an hour, then the same answer and no third e-mail.
    for _ in range(2):
        site.request("POST", "/subscribe", {"email": "many@example.org"})
        site.confirmation("many@example.org").unlink()
    status, _ = site.request("POST", "/subscribe", {"email": "many@example.org"})
    assert status == 200 and not site.confirmation("many@example.org").exists()
    # Per client: six requests an hour (the three above count; the honeypot's did not), then 429.
    for n in range(1, 4):
        assert site.request("POST", "/subscribe", {"email": f"x{n}@example.org"})[0] == 200
    status, page = site.request("POST", "/subscribe", {"email": "x4@example.org"})
    assert status == 429 and "Too many" in page
    assert not site.confirmation("x4@example.org").exists()
    site.clock.now += timedelta(hours=1)
    status, _ = site.request("POST", "/subscribe", {"email": "x4@example.org"})
    assert status == 200 and site.confirmation("x4@example.org").exists()


def test_coming_back_after_leaving_goes_through_confirmation(site: Site) -> None:
    site.store.subscribers.unsubscribe("ana@example.org")
    site.request("POST", "/subscribe", {"email": "ana@example.org"})
    assert site.status("ana@example.org") == "unsubscribed"
    token = unquote(site.confirm_path("ana@example.org").split("token=", 1)[1])
    status, _ = site.request("POST", "/confirm", {"token": token})
    assert status == 200 and site.status("ana@example.org") == "active"


def test_a_bad_address_gets_one_clear_line(site: Site) -> None:
    status, page = site.request("POST", "/subscribe", {"email": "not-an-address"})
    assert status == 400 and "not-an-address is not an e-mail address" in page


def test_in_a_browser_sign_up_confirm_get_the_issue_leave_and_come_back(site: Site, tmp_path: Path) -> None:
    """Debian's Chromium through playwright: the whole round, with the links taken from the mail."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing; run `make setup`")
    executable = chromium_executable()
    base = f"http://127.0.0.1:{site.port}"

    def link_in_confirmation(address: str) -> str:
        path = site.confirm_path(address)
        site.confirmation(address).unlink()  # the next sign-up must bring a new one
        return base + path

    def sign_up(page, address: str) -> None:
        page.goto(f"{base}/subscribe")
        page.fill("#email", address)
        page.fill("#name", "Nia")
        page.click("button[type=submit]")
        assert "Check your inbox" in page.inner_text("body")

    def confirm(page, link: str) -> None:
        page.goto(link)
        page.click("text=Confirm subscription")
        assert "is subscribed" in page.inner_text("body")

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            sign_up(page, "nia@example.org")
            assert site.status("nia@example.org") is None
            confirm(page, link_in_confirmation("nia@example.org"))
            assert site.status("nia@example.org") == "active"

            # The next issue goes to her.
            write_article(
                tmp_path / "content", "two.md", title="Two", date="2025-08-15T10:00:00+01:00", body="Lead two. More."
            )
            later = site.clock.now.replace(day=18)
            _, report = run_once(site.settings, site.store, as_of=later, now=later)
            assert report.outcome == "sent"
            issue_mail = site.outbox / "2025-W34" / "nia@example.org.eml"
            msg = email.message_from_bytes(issue_mail.read_bytes(), policy=policy.default)
            unsubscribe = urlsplit(re.search(r"<(https://[^>]+)>", str(msg["List-Unsubscribe"])).group(1))  # type: ignore[union-attr]

            # She leaves through the link in that issue...
            page.goto(f"{base}{unsubscribe.path}?{unsubscribe.query}")
            page.click("button[type=submit]")
            assert "is unsubscribed" in page.inner_text("body")
            assert site.status("nia@example.org") == "unsubscribed"

            # ...and comes back: only through confirmation again.
            sign_up(page, "nia@example.org")
            assert site.status("nia@example.org") == "unsubscribed"
            confirm(page, link_in_confirmation("nia@example.org"))
            assert site.status("nia@example.org") == "active"
        finally:
            browser.close()


@pytest.mark.parametrize("signup_extra", ["welcome = true"])
def test_a_welcome_mail_follows_the_confirmation_when_asked_for(site: Site) -> None:
    site.request("POST", "/subscribe", {"email": "wen@example.org"})
    assert not (site.outbox / "notice-signup-welcome").exists()  # not before confirming
    token = unquote(site.confirm_path("wen@example.org").split("token=", 1)[1])
    assert site.request("POST", "/confirm", {"token": token})[0] == 200
    welcome = site.outbox / "notice-signup-welcome" / "wen@example.org.eml"
    msg = email.message_from_bytes(welcome.read_bytes(), policy=policy.default)
    assert msg["Subject"] == "Welcome to Test Weekly"
    assert "https://news.example.org/archive" in msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]


def test_behind_a_local_proxy_each_forwarded_client_has_its_own_budget(site: Site) -> None:
    """digest serve sits behind the publication's web server: every request comes from
    127.0.0.1, and the client is the address the proxy appended to X-Forwarded-For."""
    for n in range(6):
        via = {"X-Forwarded-For": f"203.0.113.9, 198.51.100.{n % 2}"}
        assert site.request("POST", "/subscribe", {"email": f"p{n}@example.org"}, via)[0] == 200
    other = {"X-Forwarded-For": "198.51.100.7"}
    assert site.request("POST", "/subscribe", {"email": "q@example.org"}, other)[0] == 200
    for n in range(3):
        site.request("POST", "/subscribe", {"email": f"r{n}@example.org"}, {"X-Forwarded-For": "198.51.100.0"})
    status, _ = site.request("POST", "/subscribe", {"email": "s@example.org"}, {"X-Forwarded-For": "198.51.100.0"})
    assert status == 429


def test_a_confirmation_that_cannot_be_sent_gets_the_same_answer_and_a_log_line(site: Site, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="digest")
    site.outbox.mkdir(exist_ok=True)
    (site.outbox / "notice-signup-confirm").write_text("a file where the folder should be")
    status, page = site.request("POST", "/subscribe", {"email": "nomail@example.org"})
    assert status == 200 and "Check your inbox" in page
    assert "confirm e-mail to nomail@example.org not sent" in caplog.text
