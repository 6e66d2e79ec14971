"""The editors' preview: built by the real stages, rebuilt on change, and seen in headless Chromium."""

from __future__ import annotations

import http.client
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlencode

import pytest
from conftest import CHROMIUM_ARGS, ROOT, chromium_executable, free_port, write_article

from digest.web.issue_view import dark_variant
from digest.web.preview import Preview, PreviewApp, local_hosts
from digest.web.wsgi import make_wsgi_server

AS_OF = datetime.fromisoformat("2025-08-11T09:00:00+01:00")
ARTIFACTS = ROOT / "test-artifacts"


def _setup(write_config, tmp_path: Path, extra: str = "") -> Path:
    cfg = write_config('[templates]\npath = "theme"\n' + extra)
    (tmp_path / "theme").mkdir()
    write_article(
        tmp_path / "content",
        "one.md",
        title="Lanterns over the harbour",
        date="2025-08-08T10:00:00+01:00",
        body="The lead of one. More.",
    )
    write_article(
        tmp_path / "content",
        "two.md",
        title="A very old bridge",
        date="2025-08-07T10:00:00+01:00",
        body="The lead of two. More.",
        extra="image: https://news.example.org/bridge.jpg\n",
    )
    write_article(
        tmp_path / "content", "old.md", title="Last month's news", date="2025-07-31T10:00:00+01:00", body="Old. More."
    )
    return cfg


def _touch_later(path: Path, content: str) -> None:
    """Write a file so that its stamp surely differs from the last one (coarse file systems)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(content)
    if path.stat().st_mtime_ns == before:
        import os

        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def test_preview_builds_the_issue_with_reasons_and_warnings(write_config, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: a failing source
    cfg = _setup(
        write_config,
        tmp_path,
        f'\n[[sources]]\nname = "wire"\nkind = "feed"\nurl = "http://127.0.0.1:{port}/feed.xml"\n',
    )
    cfg.write_text(cfg.read_text().replace("min_articles = 1", "min_articles = 3"))
    preview = Preview(cfg, as_of=AS_OF)
    try:
        assert preview.refresh()
        snap = preview.snapshot
        assert snap.error is None and snap.slot is not None and snap.slot.key == "2025-W33"
        assert [a.title for a in snap.chosen] == ["Lanterns over the harbour", "A very old bridge"]
        assert "inside this issue's window" in snap.chosen[0].why
        assert [(a.title, a.why[:30]) for a in snap.left_out] == [
            ("Last month's news", "published before the window (2")
        ]
        warnings = "\n".join(snap.warnings)
        assert "thin week: only 2 new articles, fewer than selection.min_articles = 3" in warnings
        assert "“A very old bridge” has an image without alt text" in warnings
        assert "source 'wire' is failing (1 run in a row)" in warnings
        assert snap.built is not None and snap.built.rendered.subject in snap.html
        assert "reader@example.org" in snap.html  # the sample reader stands in for each recipient
        # Nothing changed: no rebuild.
        assert not preview.refresh()
        # A template of the user's theme wins and is picked up.
        _touch_later(tmp_path / "theme" / "subject.j2", "Changed subject for {{ issue.key }}")
        assert preview.refresh()
        assert preview.snapshot.built.rendered.subject == "Changed subject for 2025-W33"  # type: ignore[union-attr]
        # A new content file is read again.
        write_article(
            tmp_path / "content", "three.md", title="Third thing", date="2025-08-09T10:00:00+01:00", body="Three. More."
        )
        assert preview.refresh()
        assert "Third thing" in [a.title for a in preview.snapshot.chosen]
        # A broken config is shown, not fatal; fixing it recovers.
        good = cfg.read_text()
        _touch_later(cfg, good.replace("max_articles = 10", 'max_articles = "ten"'))
        assert preview.refresh()
        assert "selection.max_articles: expected an integer" in (preview.snapshot.error or "")
        _touch_later(cfg, good)
        assert preview.refresh() and preview.snapshot.error is None
        # A template error too.
        _touch_later(tmp_path / "theme" / "subject.j2", "{{ issue.key ")
        assert preview.refresh()
        assert "subject.j2, line 1: unexpected end of template" in (preview.snapshot.error or "")
    finally:
        preview.close()


def test_preview_forgets_a_failing_source_removed_from_the_config(write_config, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: a failing source
    wire = f'\n[[sources]]\nname = "wire"\nkind = "feed"\nurl = "http://127.0.0.1:{port}/feed.xml"\n'
    cfg = _setup(write_config, tmp_path, wire)
    preview = Preview(cfg, as_of=AS_OF)
    try:
        assert preview.refresh()
        assert "source 'wire' is failing (1 run in a row)" in "\n".join(preview.snapshot.warnings)
        _touch_later(cfg, cfg.read_text().replace(wire, "\n"))
        assert preview.refresh() and preview.snapshot.error is None
        assert not [w for w in preview.snapshot.warnings if "wire" in w]
    finally:
        preview.close()
    # A second config beside it shares its state database: the preview says so.
    other = tmp_path / "other.toml"
    other.write_text(cfg.read_text())
    second = Preview(other, as_of=AS_OF)
    try:
        assert second.refresh()
        assert any(w.startswith("state database ") and f"belongs to {cfg}" in w for w in second.snapshot.warnings)
    finally:
        second.close()


def test_dark_variant_switches_on_declared_styles() -> None:
    html = "<html><head><style>@media (prefers-color-scheme: dark) { body { background: #000 } }</style></head><body>x</body></html>"
    dark, declared = dark_variant(html)
    assert declared and "@media (min-width: 0px)" in dark and '<meta name="color-scheme" content="dark">' in dark
    dark, declared = dark_variant("<html><head></head><body>x</body></html>")
    assert not declared and "invert(1)" in dark


@dataclass
class Running:
    url: str
    port: int
    preview: Preview
    tmp_path: Path


@pytest.fixture
def running(write_config, tmp_path: Path) -> Iterator[Running]:
    cfg = _setup(write_config, tmp_path)
    (tmp_path / "theme" / "subject.j2").write_text("First subject: {{ entries[0].title }}")
    preview = Preview(cfg, as_of=AS_OF)
    preview.refresh()
    app = PreviewApp(preview)
    server = make_wsgi_server(app, "127.0.0.1", 0)
    app.allowed_hosts = local_hosts("127.0.0.1", server.server_port)
    stop = threading.Event()
    threads = [
        threading.Thread(target=server.serve_forever, daemon=True),
        threading.Thread(target=preview.watch, args=(stop,), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        yield Running(f"http://127.0.0.1:{server.server_port}/", server.server_port, preview, tmp_path)
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        for t in threads:
            t.join(timeout=10)
        preview.close()


def _request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode()
    finally:
        conn.close()


def test_test_send_needs_the_page_token_and_a_local_host(running: Running) -> None:
    status, _, page = _request(running.port, "GET", "/")
    assert status == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # Another site cannot post the form (no token), nor reach the preview under its own name.
    assert _request(running.port, "POST", "/send-test", b"to=x%40example.org", form)[0] == 403
    assert _request(running.port, "GET", "/", headers={"Host": "evil.example:80"})[0] == 421
    status, headers, _ = _request(running.port, "POST", "/send-test", f"csrf={csrf}&to=ed%40example.org".encode(), form)
    assert (
        status == 303 and unquote(headers["Location"]) == "/?notice=test copy of issue 2025-W33 sent to ed@example.org"
    )
    sent = (running.tmp_path / "outbox" / "test-2025-W33" / "ed@example.org.eml").read_text()
    assert "Subject: [TEST] First subject: Lanterns over the harbour" in sent
    status, headers, _ = _request(running.port, "POST", "/send-test", f"csrf={csrf}&to=not-an-address".encode(), form)
    assert "is not a valid address" in unquote(headers["Location"])


def test_the_editor_shapes_the_issue_from_the_preview_with_the_page_token(running: Running) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    _, _, page = _request(running.port, "GET", "/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    def post(action: str, article: str = "", text: str = "", token: str = csrf) -> str:
        body = urlencode({"csrf": token, "action": action, "article": article, "text": text}).encode()
        status, headers, _ = _request(running.port, "POST", "/issue", body, form)
        assert status == 303, status
        return unquote(headers["Location"])

    def chosen() -> list[str]:
        _, _, now = _request(running.port, "GET", "/")
        listing = now.split('id="chosen"')[1].split("</ol>")[0]
        return re.findall(r'aria-label="Leave out: ([^"]+)"', listing)

    def article_id(title: str) -> str:
        _, _, now = _request(running.port, "GET", "/")
        item = next(li for li in now.split("<li>") if li.startswith(f"{title} ") or f">{title}</a>" in li)
        return re.search(r'name="article" value="([^"]+)"', item).group(1)  # type: ignore[union-attr]

    # Without the page's token nothing changes.
    assert _request(running.port, "POST", "/issue", b"action=reset", form)[0] == 403
    assert chosen() == ["Lanterns over the harbour", "A very old bridge"]
    post("pin", article_id("A very old bridge"))
    assert chosen() == ["A very old bridge", "Lanterns over the harbour"]
    assert "pinned as the lead story by the editor" in _request(running.port, "GET", "/")[2]
    post("down", article_id("A very old bridge"))  # moves below the other; the pin still leads
    post("unpin")
    assert chosen() == ["Lanterns over the harbour", "A very old bridge"]
    post("up", article_id("A very old bridge"))
    assert chosen() == ["A very old bridge", "Lanterns over the harbour"]
    assert post("subject", text="Chosen by hand") == "/?notice=issue 2025-W33: subject saved"
    post("note", text="A word from the editor.")
    post("drop", article_id("Lanterns over the harbour"))
    _, _, page = _request(running.port, "GET", "/")
    assert chosen() == ["A very old bridge"]
    assert '<dd id="subject">Chosen by hand</dd>' in page and "A word from the editor." in page
    assert 'aria-label="Put back: Lanterns over the harbour"' in page
    # The choices are in the state, where the send reads them.
    store = running.preview.store
    assert store is not None
    edits = store.edits.get("2025-W33")
    assert (edits.subject, edits.note, len(edits.dropped)) == ("Chosen by hand", "A word from the editor.", 1)
    post("undrop", article_id("Lanterns over the harbour"))
    assert len(chosen()) == 2
    post("reset")
    assert store.edits.get("2025-W33").empty


def test_every_preview_page_carries_a_policy_and_cannot_be_framed_elsewhere(running: Running) -> None:
    for method, path, ancestors in [
        ("GET", "/", "'none'"),
        ("GET", "/email", "'self'"),  # framed by the preview page itself
        ("GET", "/email?dark=1", "'self'"),
        ("GET", "/text", "'none'"),
        ("GET", "/nowhere", "'none'"),
        ("PUT", "/", "'none'"),
    ]:
        _, headers, _ = _request(running.port, method, path)
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert f"frame-ancestors {ancestors}" in headers["Content-Security-Policy"], path
    status, headers, page = _request(running.port, "GET", "/")
    nonce = re.search(r"script-src 'nonce-([^']+)'", headers["Content-Security-Policy"]).group(1)  # type: ignore[union-attr]
    # The page's own script runs by its nonce; nothing else can.
    assert re.findall(r"<script[^>]*>", page) == [f'<script nonce="{nonce}">']
    assert "unsafe-inline" not in headers["Content-Security-Policy"].split("script-src")[1].split(";")[0]


def test_the_preview_links_only_web_addresses(running: Running) -> None:
    write_article(
        running.tmp_path / "content",
        "trap.md",
        title="Click me",
        date="2025-08-09T10:00:00+01:00",
        body="The lead of the trap. More.",
        extra="url: \"javascript:fetch('/send-test')\"\n",
    )
    assert running.preview.refresh()
    _, _, page = _request(running.port, "GET", "/")
    assert "Click me" in page
    assert "javascript:" not in page.lower()


@pytest.fixture
def browser() -> Iterator[object]:
    executable = chromium_executable()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_preview_in_chromium_loads_fits_a_phone_and_follows_template_edits(running: Running, browser) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.goto(running.url)
    expect(page.locator("#subject")).to_have_text("First subject: Lanterns over the harbour")
    expect(page.frame_locator("#frame-desktop").locator("body")).to_contain_text("Lanterns over the harbour")
    expect(page.frame_locator("#frame-phone").locator("body")).to_contain_text("A very old bridge")
    expect(page.frame_locator("#frame-dark").locator("body")).to_contain_text("Lanterns over the harbour")
    expect(page.locator("#text")).to_contain_text("The lead of one.")
    expect(page.locator("#left-out")).to_contain_text("published before the window")
    expect(page.locator("#warnings")).to_contain_text("image without alt text")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "preview.png"), full_page=True)

    phone = browser.new_page(viewport={"width": 375, "height": 812}, is_mobile=True, device_scale_factor=2)  # type: ignore[attr-defined]
    phone.goto(running.url)
    expect(phone.frame_locator("#frame-phone").locator("body")).to_contain_text("Lanterns over the harbour")
    assert phone.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    phone_frame = phone.locator("#frame-phone").element_handle().content_frame()
    assert phone_frame is not None and phone_frame.evaluate("window.innerWidth") == 375
    assert phone_frame.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"), (
        "the issue overflows a phone screen"
    )
    phone.screenshot(path=str(ARTIFACTS / "preview-phone.png"), full_page=True)

    # Edit a template on disk: the open page follows by itself.
    _touch_later(running.tmp_path / "theme" / "subject.j2", "Second subject: {{ entries|length }} articles")
    expect(page.locator("#subject")).to_have_text("Second subject: 2 articles", timeout=10_000)

    # The test-send button.
    page.fill("#test-to", "editor@example.org")
    page.click("#send-test")
    expect(page.locator("#notice")).to_have_text("test copy of issue 2025-W33 sent to editor@example.org")
