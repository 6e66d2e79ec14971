"""The editors' live preview: the issue the next scheduled run would send, as it would be sent.

``digest preview`` builds that issue with the real stages (ingest, select, teasers, render) as of
its slot, and shows the HTML at desktop and phone widths and in dark mode, the text part, the
subject and preheader, which articles were chosen and why the others were left out, and warnings.
A watcher notices a change to a template, the config or a content file within a fraction of a
second, rebuilds, and the open page reloads itself. A form sends one test copy to an address
(the same code as ``digest send --to``).

The server is for the editor's own machine: it binds 127.0.0.1, answers only to local host names
(so a web page cannot reach it through DNS rebinding) and wants a per-run token with the test-send
form (so another site cannot make the editor's browser send mail).
"""

from __future__ import annotations

import hmac
import html as htmllib
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from digest import editorial
from digest.build_files import SAMPLE_RECIPIENT
from digest.config import Settings, load_config
from digest.errors import ConfigError, DigestError
from digest.pipeline import (
    BuiltIssue,
    Slot,
    build_issue,
    due_slot,
    ingest,
    send_test_copy,
    token_signer,
    upcoming_slot,
)
from digest.render.environment import DEFAULT_TEMPLATES
from digest.store import Store
from digest.web.issue_view import ArticleLine, article_lines, dark_variant, issue_warnings
from digest.web.wsgi import (
    BadRequest,
    Request,
    Response,
    StartResponse,
    as_json,
    make_wsgi_server,
    page,
    redirect,
    text,
)

log = logging.getLogger(__name__)

# How often the watcher looks at the files (the page reloads within about twice this plus a build).
WATCH_SECONDS = 0.1
# Long-poll requests from the open page come back after this long even when nothing changed.
WAIT_SECONDS = 20.0


@dataclass(frozen=True)
class Snapshot:
    """One build of the preview; replaced whole on every rebuild, so readers need no lock."""

    version: int
    built_at: datetime
    settings: Settings | None = None
    slot: Slot | None = None
    built: BuiltIssue | None = None
    html: str = ""
    dark_html: str = ""
    dark_declared: bool = False
    text: str = ""
    chosen: tuple[ArticleLine, ...] = ()
    left_out: tuple[ArticleLine, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str | None = None


def _tree(path: Path) -> Iterable[tuple[str, int, int]]:
    try:
        st = path.stat()
    except OSError:
        return
    if not path.is_dir():
        yield str(path), st.st_mtime_ns, st.st_size
        return
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(folder, name)
            try:
                s = os.stat(p)
            except OSError:
                continue
            yield p, s.st_mtime_ns, s.st_size


class Preview:
    """Builds the preview and rebuilds it when a watched file changes."""

    def __init__(
        self, config_path: Path, *, as_of: datetime | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.config_path = config_path
        self.as_of = as_of
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.store: Store | None = None
        self._settings: Settings | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._read_all_sources = True
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self.snapshot = Snapshot(version=0, built_at=self.clock(), error="not built yet")

    def watched(self) -> tuple[list[Path], list[Path]]:
        """(config and templates, content folders): what a rebuild depends on."""
        look = [self.config_path, DEFAULT_TEMPLATES]
        content: list[Path] = []
        s = self._settings
        if s is not None:
            if s.templates.path is not None:
                look.append(s.templates.path)
            content = [src.path for src in s.sources if src.kind == "folder" and src.path is not None]
        return look, content

    def fingerprint(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        look, content = self.watched()
        return tuple(e for p in look for e in _tree(p)), tuple(e for p in content for e in _tree(p))

    def refresh(self) -> bool:
        """Rebuild when a watched file changed since the last build; True when it rebuilt."""
        with self._lock:
            before = self.fingerprint()
            if before == self._fingerprint:
                return False
            # Content is read again only when it changed: a template edit needs no ingest.
            self._rebuild(read_content=self._fingerprint is None or before[1] != self._fingerprint[1])
            # The config may have pointed the watch at other folders: start from what is there now.
            self._fingerprint = self.fingerprint()
        with self._changed:
            self._changed.notify_all()
        return True

    def wait_for_change(self, version: int, timeout: float) -> int:
        with self._changed:
            self._changed.wait_for(lambda: self.snapshot.version != version, timeout)
        return self.snapshot.version

    def watch(self, stop: threading.Event) -> None:
        while not stop.wait(WATCH_SECONDS):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one bad build
                log.exception("preview rebuild failed")

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def rebuild_now(self) -> None:
        """Rebuild at once, without re-reading content (after the editor changed the issue)."""
        with self._lock:
            self._rebuild(read_content=False)
        with self._changed:
            self._changed.notify_all()

    def _rebuild(self, *, read_content: bool = True) -> None:
        version = self.snapshot.version + 1
        now = self.clock()
        try:
            settings = load_config(self.config_path)
        except ConfigError as exc:
            self.snapshot = Snapshot(version, now, error="\n".join(exc.problems))
            return
        self._settings = settings
        try:
            if self.store is None or self.store.url != settings.state_url:
                if self.store is not None:
                    self.store.close()
                self.store = Store(settings.state_url)
            store = self.store
            # The first build reads every source, as the scheduled run would; later ones re-read
            # the local folders when they changed, which is where an editor's changes come from.
            if self._read_all_sources:
                ingest(settings, store, now=now)
                self._read_all_sources = False
            elif read_content:
                ingest(
                    settings.model_copy(update={"sources": [s for s in settings.sources if s.kind == "folder"]}),
                    store,
                    now=now,
                )
            slot = due_slot(settings, self.as_of) if self.as_of else upcoming_slot(settings, now)
            built = build_issue(settings, store, slot)
            html, plain = built.rendered.personalise(
                email=SAMPLE_RECIPIENT,
                token=token_signer(settings, store).token(SAMPLE_RECIPIENT),
                name=settings.newsletter.recipient_name(None),
            )
        except DigestError as exc:
            self.snapshot = Snapshot(version, now, settings=settings, error=str(exc))
            return
        dark, declared = dark_variant(html)
        chosen, left_out = article_lines(settings, built)
        self.snapshot = Snapshot(
            version,
            now,
            settings,
            slot,
            built,
            html,
            dark,
            declared,
            plain,
            chosen,
            left_out,
            tuple(issue_warnings(settings, store, slot, built, html)),
        )
        log.info("preview %d: issue %s, %d articles", version, slot.key, len(built.issue.entries))


# --- the app ---------------------------------------------------------------------------------------

# The issue as e-mail HTML: inline styles and remote images, never scripts; framed only by the preview page.
EMAIL_CSP = [
    (
        "Content-Security-Policy",
        "script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
    ),
    ("Cache-Control", "no-store"),
]


def page_csp(nonce: str) -> str:
    """The preview page's policy: its own script (by nonce) and nothing injected into it, frames and
    fetches from itself only. A link in an article's front matter cannot run script here."""
    return (
        f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "frame-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
        "frame-ancestors 'none'"
    )


@dataclass
class PreviewApp:
    preview: Preview
    allowed_hosts: set[str] = field(default_factory=set)  # empty: any (bound to a public address on purpose)
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.route(request)
        except BadRequest as exc:
            response = text(str(exc), exc.status)
        return response(start_response)

    def route(self, request: Request) -> Response:
        host = (request.header("Host") or "").lower()
        if self.allowed_hosts and host not in self.allowed_hosts:
            raise BadRequest(421, f"this preview answers only to {', '.join(sorted(self.allowed_hosts))}")
        snap = self.preview.snapshot
        path, method = request.path, request.method
        if method == "POST" and path == "/send-test":
            return self.send_test(request)
        if method == "POST" and path == "/issue":
            return self.edit_issue(request)
        if method not in ("GET", "HEAD"):
            raise BadRequest(405, "method not allowed")
        if path == "/":
            nonce = secrets.token_urlsafe(16)
            return page(
                "preview.html",
                200,
                [("Cache-Control", "no-store"), ("Content-Security-Policy", page_csp(nonce))],
                nonce=nonce,
                snap=snap,
                csrf=self.csrf,
                notice=request.query.get("notice"),
                newsletter=_newsletter(snap),
            )
        if path == "/email":
            if snap.built is None:
                return Response(
                    200, f"<!doctype html><p>{htmllib.escape(snap.error or '')}</p>".encode(), headers=list(EMAIL_CSP)
                )
            body = snap.dark_html if request.query.get("dark") == "1" else snap.html
            return Response(200, body.encode("utf-8"), headers=list(EMAIL_CSP))
        if path == "/text":
            return text(snap.text)
        if path == "/api/wait":
            try:
                seen = int(request.query.get("version", "-1"))
            except ValueError:
                raise BadRequest(400, "version: expected a number") from None
            return as_json({"version": self.preview.wait_for_change(seen, WAIT_SECONDS)})
        raise BadRequest(404, "not found")

    def _checked_form(self, request: Request) -> dict[str, str]:
        form = request.form()
        if not hmac.compare_digest(form.get("csrf", ""), self.csrf):
            raise BadRequest(403, "this form is stale or came from another site; reload the preview and try again")
        return form

    def edit_issue(self, request: Request) -> Response:
        """The editor's forms: pin, leave out, move, subject, note (digest issue … on the page)."""
        form = self._checked_form(request)
        snap = self.preview.snapshot
        store = self.preview.store
        if snap.settings is None or snap.slot is None or snap.built is None or store is None:
            return redirect("/?notice=" + quote("nothing changed: the preview did not build"))
        settings, slot, now = snap.settings, snap.slot, self.preview.clock()
        action, article = form.get("action", ""), form.get("article", "")
        ids = [e.article.id for e in snap.built.issue.entries]
        try:
            if action == "pin":
                editorial.pin(settings, store, slot, article, now=now)
            elif action == "unpin":
                editorial.pin(settings, store, slot, None, now=now)
            elif action in ("drop", "undrop"):
                editorial.drop(settings, store, slot, [article], undo=action == "undrop", now=now)
            elif action in ("up", "down") and article in ids:
                i = ids.index(article)
                j = i - 1 if action == "up" else i + 1
                if 0 <= j < len(ids):
                    ids[i], ids[j] = ids[j], ids[i]
                editorial.order(settings, store, slot, ids, now=now)
            elif action == "subject":
                editorial.set_subject(store, slot, form.get("text"), now=now)
            elif action == "note":
                editorial.set_note(store, slot, form.get("text"), now=now)
            elif action == "reset":
                editorial.clear(store, slot, now=now)
            else:
                raise BadRequest(400, f"unknown action {action!r}")
            notice = f"issue {slot.key}: {action} saved"
        except DigestError as exc:
            notice = f"nothing changed: {exc}"
        self.preview.rebuild_now()
        return redirect("/?notice=" + quote(notice))

    def send_test(self, request: Request) -> Response:
        form = self._checked_form(request)
        snap = self.preview.snapshot
        to = form.get("to", "").strip()
        if snap.settings is None or snap.slot is None or self.preview.store is None:
            notice = "nothing to send: the preview did not build"
        else:
            try:
                address = send_test_copy(snap.settings, self.preview.store, snap.slot, to, now=self.preview.clock())
                notice = f"test copy of issue {snap.slot.key} sent to {address}"
            except ValueError as exc:
                notice = f"not sent: {to!r} is not a valid address ({exc})"
            except DigestError as exc:
                notice = f"not sent: {exc}"
        return redirect("/?notice=" + quote(notice))


def _newsletter(snap: Snapshot) -> dict[str, str]:
    if snap.settings is None:
        return {"title": "digest preview", "language": "en", "site_url": ""}
    nl = snap.settings.newsletter
    return {"title": nl.title, "language": nl.language, "site_url": nl.site_url}


def local_hosts(host: str, port: int) -> set[str]:
    """The Host headers a local preview answers to; empty (any) when bound to all addresses."""
    if host in ("0.0.0.0", "::", ""):
        return set()
    names = {host.lower(), "127.0.0.1", "localhost", "[::1]"}
    return {f"{n}:{port}" for n in names} | names


def run_preview(
    config_path: Path,
    host: str,
    port: int,
    *,
    as_of: datetime | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Build, serve and watch until Ctrl-C."""
    preview = Preview(config_path, as_of=as_of)
    preview.refresh()
    server = make_wsgi_server(PreviewApp(preview), host, port)
    app = server.get_app()
    assert isinstance(app, PreviewApp)
    app.allowed_hosts = local_hosts(host, server.server_port)
    stop = threading.Event()
    watcher = threading.Thread(target=preview.watch, args=(stop,), name="preview-watch", daemon=True)
    watcher.start()
    if ready:
        ready(f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{server.server_port}/")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
        watcher.join(timeout=5)
        preview.close()
