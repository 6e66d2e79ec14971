"""The issue in a real browser engine: Debian's Chromium, driven by playwright (nothing is
downloaded; images are served from memory, every other request is refused).

- no horizontal overflow at phone (375 px) and desktop-client (600 px) widths;
- axe-core reports no violations, in the light and in the dark colour scheme;
- the dark scheme really switches the palette (so the dark audit is not the light one again).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from conftest import CHROMIUM_ARGS, chromium_executable, write_sample_config
from renderdata import golden_issue, make_article, make_issue, make_settings

from digest.config import load_config
from digest.pipeline import build_issue, due_slot, ingest
from digest.render.issue import render_issue
from digest.store import Store

WIDTHS = (375, 600)
SCHEMES = ("light", "dark")


def _axe_source() -> str:
    try:
        return (resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        pytest.skip("axe-core is missing: axe.min.js comes from the axe-playwright-python package; run `make setup`")


def _png(width: int, height: int) -> bytes:
    """A plain PNG of the given size, so wide images test the layout without any download."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\x88\x99\xaa" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


IMAGE = _png(1200, 600)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing; run `make setup`")
    executable = chromium_executable()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def sample_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The HTML `digest build` writes for the sample newsletter, for one reader."""
    tmp = tmp_path_factory.mktemp("sample")
    settings = load_config(write_sample_config(tmp))
    store = Store(settings.state_url)
    as_of = datetime.fromisoformat("2025-08-11T09:00").replace(tzinfo=settings.newsletter.tz)
    ingest(settings, store, now=as_of)
    built = build_issue(settings, store, due_slot(settings, as_of))
    assert any(e.article.image for e in built.issue.entries), "the sample issue should show an image"
    return built.rendered.personalise(email="reader@example.org", token="InJlYWRlciJ9.c2lnbmF0dXJl")[0]


def _full_html(tmp_path: Path) -> str:
    extra = {
        "newsletter": {
            "logo_url": "https://news.example.org/logo.png",
            "editor_note": "A note from the editor.\n\nTwo paragraphs.",
        },
    }
    return render_issue(golden_issue(), make_settings(tmp_path, extra)).personalise(
        email="a.reader@example.org", token="tok"
    )[0]


def _hostile_html(tmp_path: Path) -> str:
    """Unbroken long words in every text slot: the layout must wrap them, not widen."""
    word = "Supercalifragilistic" * 12
    articles = [
        make_article(
            1, title=f"A {word} title", author=word, section=word[:50], image="https://news.example.org/wide.png"
        ),
        make_article(
            2, url=f"https://news.example.org/{word}", summary=f"Teaser with {word} and https://news.example.org/{word}"
        ),
    ]
    return render_issue(make_issue(articles), make_settings(tmp_path)).personalise(
        email=f"{'x' * 60}@example.org", token="t" * 120
    )[0]


def _open(browser: Any, html: str, width: int, scheme: str) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()

    def handle(route: Any) -> None:
        if route.request.resource_type == "image":
            route.fulfill(status=200, content_type="image/png", body=IMAGE)
        else:
            route.abort()

    page.route("**/*", handle)
    page.set_content(html, wait_until="load")
    return page


def _overflow(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => {
            const vw = window.innerWidth;
            const wide = [...document.body.querySelectorAll('*')]
              .filter(el => el.getBoundingClientRect().right > vw + 0.5)
              .map(el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''));
            return {vw, scroll: document.documentElement.scrollWidth, wide: wide.slice(0, 5),
                    images: [...document.images].map(i => i.naturalWidth)};
        }"""
    )


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("doc", ["sample", "full", "hostile"])
def test_no_horizontal_overflow(
    browser: Any, sample_html: str, tmp_path: Path, doc: str, scheme: str, width: int
) -> None:
    html = {
        "sample": lambda: sample_html,
        "full": lambda: _full_html(tmp_path),
        "hostile": lambda: _hostile_html(tmp_path),
    }[doc]()
    page = _open(browser, html, width, scheme)
    try:
        found = _overflow(page)
    finally:
        page.context.close()
    assert found["images"] and all(w == 1200 for w in found["images"]), "the test images did not load"
    assert found["scroll"] <= found["vw"], f"{doc} at {width}px scrolls sideways: {found}"
    assert not found["wide"], f"{doc} at {width}px: elements reach past the right edge: {found['wide']}"


def _axe(page: Any, source: str) -> list[dict[str, Any]]:
    # A message is read inside a mail client's page, within the client's main region (Gmail,
    # Outlook.com and Yahoo all wrap the open message in one); an e-mail must not bring landmarks
    # of its own (a second "main" confuses screen readers), which is why MJML marks it
    # role="article". So the message is audited as a client shows it: moved into a <main>, with
    # every axe rule on, including the page-structure ones (region, landmark-one-main).
    page.evaluate(
        """() => {
            const main = document.createElement('main');
            main.setAttribute('aria-label', 'Message');
            while (document.body.firstChild) main.appendChild(document.body.firstChild);
            document.body.appendChild(main);
        }"""
    )
    page.add_script_tag(content=source)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return result["violations"]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("doc", ["sample", "full"])
def test_axe_reports_no_violations(
    browser: Any, sample_html: str, tmp_path: Path, doc: str, scheme: str, width: int
) -> None:
    source = _axe_source()
    html = sample_html if doc == "sample" else _full_html(tmp_path)
    page = _open(browser, html, width, scheme)
    try:
        violations = _axe(page, source)
    finally:
        page.context.close()
    summary = [
        f"{v['id']} ({v['impact']}): {v['help']} — e.g. {v['nodes'][0]['target']} {v['nodes'][0].get('failureSummary', '')}"
        for v in violations
    ]
    assert not violations, f"{doc}, {scheme}, {width}px:\n" + "\n".join(summary)


def test_dark_scheme_switches_the_palette(browser: Any, sample_html: str) -> None:
    colours = {}
    for scheme in SCHEMES:
        page = _open(browser, sample_html, 600, scheme)
        try:
            colours[scheme] = page.evaluate(
                """() => ({
                    page: getComputedStyle(document.body).backgroundColor,
                    card: getComputedStyle(document.querySelector('.dg-card')).backgroundColor,
                    text: getComputedStyle(document.querySelector('.dg-text div')).color,
                })"""
            )
        finally:
            page.context.close()
    assert colours["light"] == {"page": "rgb(244, 241, 234)", "card": "rgb(255, 255, 255)", "text": "rgb(31, 35, 40)"}
    assert colours["dark"] == {"page": "rgb(18, 20, 23)", "card": "rgb(29, 33, 39)", "text": "rgb(232, 230, 227)"}


# --- the new "Read more" and the archive index, seen and audited ------------------------------------

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _violations(page: Any, source: str, *, wrap: bool) -> list[str]:
    if wrap:
        found = _axe(page, source)
    else:
        page.add_script_tag(content=source)
        found = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")["violations"]
    return [f"{v['id']}: {v['help']} — {v['nodes'][0]['target']}" for v in found]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_read_more_is_one_light_link_of_one_width_naming_its_article(
    browser: Any, sample_html: str, scheme: str, width: int
) -> None:
    source = _axe_source()
    page = _open(browser, sample_html, width, scheme)
    try:
        links = page.evaluate(
            """() => [...document.querySelectorAll('.dg-more a')].map(a => ({
                text: a.innerText.trim(), label: a.getAttribute('aria-label'), width: a.getBoundingClientRect().width,
                background: getComputedStyle(a).backgroundColor, colour: getComputedStyle(a).color,
                headline: a.closest('table').closest('div').querySelector('h2, h3').innerText.trim()}))"""
        )
        first = page.locator(".dg-more").first
        first.scroll_into_view_if_needed()
        ARTIFACTS.mkdir(exist_ok=True)
        card = first.locator("xpath=ancestor::div[contains(@class, 'dg-card')][1]")
        card.screenshot(path=str(ARTIFACTS / f"read-more-{scheme}-{width}.png"))
        violations = _violations(page, source, wrap=True)
    finally:
        page.context.close()
    assert len(links) >= 3
    # The same visible words and width under every article, no filled button, no headline repeated.
    assert {link["text"] for link in links} == {"Read more\u00a0→"}
    assert max(link["width"] for link in links) - min(link["width"] for link in links) < 0.5
    assert {link["background"] for link in links} == {"rgba(0, 0, 0, 0)"}
    # Its accessible name still names the article it opens.
    for link in links:
        assert link["label"] == f"Read more: {link['headline']}"
    if scheme == "dark":
        assert {link["colour"] for link in links} == {"rgb(242, 161, 124)"}
    assert not violations, f"{scheme}, {width}px:\n" + "\n".join(violations)


@pytest.fixture(scope="module")
def archive_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The subscriber site on 127.0.0.1 with two issues of the sample newsletter sent."""
    import threading

    from digest.pipeline import run_once
    from digest.web.serve import make_serve_app
    from digest.web.wsgi import make_wsgi_server

    tmp = tmp_path_factory.mktemp("archive")
    settings = load_config(write_sample_config(tmp))
    store = Store(settings.state_url)
    for when in ("2025-08-04T09:00", "2025-08-11T09:00"):
        moment = datetime.fromisoformat(when).replace(tzinfo=settings.newsletter.tz)
        assert run_once(settings, store, as_of=moment, now=moment)[1].outcome == "sent"
    server = make_wsgi_server(make_serve_app(settings, store), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/archive"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        store.close()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_archive_index_reads_well_and_passes_axe(browser: Any, archive_url: str, scheme: str, width: int) -> None:
    source = _axe_source()
    # The archive's Content-Security-Policy allows no script; axe is the test's own, injected past it.
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(archive_url)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"archive-{scheme}-{width}.png"), full_page=True)
        items = page.locator("ul.issues li").all_inner_texts()
        feed = page.locator('link[rel="alternate"][type="application/atom+xml"]').get_attribute("href")
        subscribe = page.get_by_role("link", name="Subscribe").get_attribute("href")
        scroll = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        violations = _violations(page, source, wrap=False)
    finally:
        context.close()
    assert len(items) == 2 and all(" article" in i and "2025" in i for i in items), items
    assert feed == "/archive/feed.xml" and subscribe
    assert scroll <= 0
    assert not violations, f"{scheme}, {width}px:\n" + "\n".join(violations)
