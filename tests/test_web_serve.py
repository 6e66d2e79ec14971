"""Subscriber endpoints over real HTTP on 127.0.0.1: one-click unsubscribe (RFC 8058) and the archive."""

from __future__ import annotations

import email
import http.client
import logging
import re
import threading
from collections.abc import Iterator
from email import policy
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import write_article

from digest.config import load_config
from digest.pipeline import run_once, token_signer
from digest.render.issue import EMAIL_MARK, TOKEN_MARK
from digest.store import Store
from digest.web.serve import make_serve_app
from digest.web.wsgi import make_wsgi_server

SUBSCRIBERS = ["ana@example.org", "bo@example.org", "cy@example.org"]


class Site:
    def __init__(self, settings, store, port: int, outbox: Path) -> None:
        self.settings, self.store, self.port, self.outbox = settings, store, port, outbox

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8")
        finally:
            conn.close()

    def unsubscribe_path(self, issue: str, address: str) -> str:
        """The List-Unsubscribe URL of the message that was delivered to ``address``, as a path."""
        msg = email.message_from_bytes((self.outbox / issue / f"{address}.eml").read_bytes(), policy=policy.default)
        url = re.search(r"<(https://[^>]+)>", str(msg["List-Unsubscribe"])).group(1)  # type: ignore[union-attr]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        parts = urlsplit(url)
        return f"{parts.path}?{parts.query}"

    def statuses(self) -> dict[str, str]:
        return {r.email: r.status for r in self.store.subscribers.all()}


@pytest.fixture
def site(write_config, tmp_path: Path, fixed_now) -> Iterator[Site]:
    write_article(
        tmp_path / "content", "one.md", title="One", date="2025-08-08T10:00:00+01:00", body="The lead of one. More."
    )
    settings = load_config(write_config(subscribers=SUBSCRIBERS))
    store = Store(settings.state_url)
    _, report = run_once(settings, store, as_of=fixed_now, now=fixed_now)
    assert report.outcome == "sent"
    server = make_wsgi_server(make_serve_app(settings, store), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(settings, store, server.server_port, tmp_path / "outbox")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        store.close()


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = "----digest-test-boundary"
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()
    )
    return (body + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


def test_one_click_post_unsubscribes_and_the_next_send_leaves_the_address_out(
    site: Site, tmp_path: Path, fixed_now, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="digest")
    path = site.unsubscribe_path("2025-W33", "bo@example.org")
    token = path.split("token=", 1)[1]
    body, ctype = multipart({"List-Unsubscribe": "One-Click"})
    status, page = site.request("POST", path, body, {"Content-Type": ctype})
    assert status == 200, page
    assert "bo@example.org is unsubscribed" in page
    assert site.statuses() == {
        "ana@example.org": "active",
        "bo@example.org": "unsubscribed",
        "cy@example.org": "active",
    }
    # Counted against the issue it came from, for `digest status ISSUE`.
    assert site.store.feedback.counts("2025-W33") == {"unsubscribe": 1}
    # A repeat (mail providers retry) is harmless.
    status, page = site.request(
        "POST", path, b"List-Unsubscribe=One-Click", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 200 and "is unsubscribed" in page
    assert site.store.feedback.counts("2025-W33") == {"unsubscribe": 1}  # and counted once
    # The next issue goes to the others only, even though the CSV still lists bo.
    write_article(
        tmp_path / "content", "two.md", title="Two", date="2025-08-15T10:00:00+01:00", body="The lead of two. More."
    )
    later = fixed_now.replace(day=18)
    _, report = run_once(site.settings, site.store, as_of=later, now=later)
    assert report.outcome == "sent" and report.counts == {"sent": 2}
    assert sorted(p.name for p in (tmp_path / "outbox" / "2025-W34").glob("*.eml")) == [
        "ana@example.org.eml",
        "cy@example.org.eml",
    ]
    # Tokens never reach the log.
    assert token not in caplog.text and "POST /unsubscribe 200" in caplog.text


def test_a_tampered_token_gets_400_and_changes_nothing(site: Site) -> None:
    path = site.unsubscribe_path("2025-W33", "ana@example.org")
    before = site.statuses()
    # Change one character inside the signature (not the last: in base64 its low bits are
    # padding, so some changes there decode to the same signature), and try passing another
    # address off with ana's signature.
    tampered = path[:-5] + ("A" if path[-5] != "A" else "B") + path[-4:]
    forged = path.replace(
        path.split("token=")[1].split(".")[0],
        site.unsubscribe_path("2025-W33", "cy@example.org").split("token=")[1].split(".")[0],
    )
    for bad in (tampered, forged, "/unsubscribe?token=not-a-token"):
        assert bad != path
        status, page = site.request(
            "POST", bad, b"List-Unsubscribe=One-Click", {"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert status == 400, (bad, page)
        assert "not valid" in page
        status, _ = site.request("GET", bad)
        assert status == 400
    assert site.statuses() == before


def test_get_alone_changes_nothing_and_the_form_confirms(site: Site) -> None:
    path = site.unsubscribe_path("2025-W33", "cy@example.org")
    for method in ("GET", "HEAD", "GET"):
        status, page = site.request(method, path)
        assert status == 200
    assert "Unsubscribe from Test Weekly?" in page and "cy@example.org" in page and 'method="post"' in page
    # A POST with neither the one-click body nor the confirmation changes nothing either.
    status, _ = site.request("POST", path, b"", {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400
    assert site.statuses()["cy@example.org"] == "active"
    # The confirmation form, as the page submits it.
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    status, page = site.request(
        "POST",
        "/unsubscribe",
        f"token={token}&confirm=yes".encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200 and "cy@example.org is unsubscribed" in page
    assert site.statuses()["cy@example.org"] == "unsubscribed"


def test_archive_lists_sent_issues_and_shows_one_without_personal_tokens(site: Site) -> None:
    status, listing = site.request("GET", "/archive")
    assert status == 200
    assert 'href="/archive/2025-W33"' in listing and "Test Weekly: One" in listing
    # The index: subject, date and article count, a subscribe link, the feed advertised.
    assert '<time datetime="2025-08-11">11 August 2025</time> · 1 article</span>' in listing
    assert '<a class="subscribe" href="https://news.example.org">Subscribe</a>' in listing
    assert '<link rel="alternate" type="application/atom+xml" title="Test Weekly" href="/archive/feed.xml">' in listing
    status, issue = site.request("GET", "/archive/2025-W33")
    assert status == 200 and "The lead of one." in issue
    status, plain = site.request("GET", "/archive/2025-W33.txt")
    assert status == 200 and "The lead of one." in plain
    signer = token_signer(site.settings, site.store)
    for body in (issue, plain):
        assert TOKEN_MARK not in body and EMAIL_MARK not in body
        # No footer text written to one person, no unsubscribe link that would carry no token.
        assert "because you subscribed" not in body and "as you." not in body
        assert "unsubscribe" not in body.lower()
        assert "token=" not in body
        for address in SUBSCRIBERS:
            assert address not in body and signer.token(address) not in body
    assert "1 Test Street, Testville" in issue and "1 Test Street, Testville" in plain
    assert 'type="application/atom+xml"' in issue.split("</head>")[0]
    assert site.request("GET", "/archive/2099-W01")[0] == 404
    assert site.request("GET", "/archive/..%2F..%2Fetc")[0] == 404
    assert site.request("DELETE", "/archive")[0] == 405


def test_the_archive_feed_is_atom_of_the_sent_issues(site: Site) -> None:
    import xml.etree.ElementTree as ET

    status, body = site.request("GET", "/archive/feed.xml")
    assert status == 200
    ns = {"a": "http://www.w3.org/2005/Atom"}
    feed = ET.fromstring(body.encode("utf-8"))
    assert feed.tag == "{http://www.w3.org/2005/Atom}feed"
    assert feed.findtext("a:title", namespaces=ns) == "Test Weekly"
    (entry,) = feed.findall("a:entry", ns)
    assert entry.findtext("a:title", namespaces=ns) == "Test Weekly: One"
    assert entry.find("a:link", ns).get("href") == "https://news.example.org/archive/2025-W33"  # type: ignore[union-attr]
    assert entry.findtext("a:updated", namespaces=ns).endswith("Z")  # type: ignore[union-attr]
    assert "1 article" in (entry.findtext("a:summary", namespaces=ns) or "")
    for address in SUBSCRIBERS:
        assert address not in body


def test_every_page_carries_the_security_headers(site: Site) -> None:
    key = site.store.issues.published()[0].key
    for method, path in [
        ("GET", "/archive"),
        ("GET", f"/archive/{key}"),
        ("GET", f"/archive/{key}.txt"),
        ("GET", "/unsubscribe"),
        ("GET", "/unsubscribe?token=forged"),
        ("GET", "/nowhere"),
        ("PUT", "/unsubscribe"),
    ]:
        conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=30)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            r.read()
            assert r.getheader("X-Content-Type-Options") == "nosniff", path
            assert "frame-ancestors 'none'" in (r.getheader("Content-Security-Policy") or ""), path
        finally:
            conn.close()
