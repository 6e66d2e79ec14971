"""The subscribers' endpoints: one-click unsubscribe and the archive (the view-in-browser link).

A small WSGI app, meant to sit behind the publication's web server (``digest serve`` runs it on
127.0.0.1 by default; any WSGI server can run :func:`make_serve_app`).

- ``GET /unsubscribe?token=…`` shows a confirmation page and changes nothing: link scanners and
  mail-security proxies fetch links in mail, and must not unsubscribe anyone.
- ``POST /unsubscribe`` with ``List-Unsubscribe=One-Click`` in the body (RFC 8058, sent by the mail
  provider's unsubscribe button) or with the confirmation form unsubscribes at once. The token is
  signed; a tampered one gets 400 and changes nothing; a repeat is answered the same way.
- ``/archive`` lists the issues that went out; ``/archive/<key>`` shows one with the per-recipient
  markers taken out, so no token or address of anyone is in it.
"""

from __future__ import annotations

import html as htmllib
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from digest.config import NewsletterSettings, Settings
from digest.models import EMAIL_MARK, NAME_MARK, TOKEN_MARK, RenderedIssue
from digest.store import Store
from digest.tokens import TokenSigner
from digest.web.wsgi import (
    BadRequest,
    Request,
    Response,
    ServerLimits,
    StartResponse,
    make_wsgi_server,
    page,
    redirect,
    text,
)

log = logging.getLogger(__name__)

# RFC 8058 §3.1: the POST body carries exactly this key and value.
ONE_CLICK = ("List-Unsubscribe", "One-Click")

# Pages about one person's subscription are never cached, indexed, or leaked through Referer.
PRIVATE = [("Cache-Control", "no-store"), ("Referrer-Policy", "no-referrer"), ("X-Robots-Tag", "noindex")]
# The archive shows e-mail HTML: it needs inline styles, never scripts.
ARCHIVE_CSP = [
    (
        "Content-Security-Policy",
        "script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    )
]

_KEY = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def public_copy(rendered: RenderedIssue, nl: NewsletterSettings) -> tuple[str, str]:
    """The issue's HTML and text for anyone to read: the unsubscribe link loses its token, and the
    recipient's address becomes "you". Markers anywhere else are removed."""

    def strip(body: str) -> str:
        link = f"{nl.unsubscribe_base}?token={TOKEN_MARK}"
        for form in (link, htmllib.escape(link)):
            body = body.replace(form, nl.unsubscribe_base)
        body = body.replace(TOKEN_MARK, "").replace(NAME_MARK, htmllib.escape(nl.name_fallback))
        for form in (EMAIL_MARK, htmllib.escape(EMAIL_MARK), quote(EMAIL_MARK, safe=""), quote(EMAIL_MARK)):
            body = body.replace(form, "you")
        return body

    return strip(rendered.html), strip(rendered.text)


class SubscriberApp:
    def __init__(
        self, settings: Settings, store: Store, signer: TokenSigner, *, clock: Callable[[], Any] | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.signer = signer
        self.clock = clock

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.route(request)
        except BadRequest as exc:
            response = page(
                "message.html",
                exc.status,
                PRIVATE,
                newsletter=self.settings.newsletter,
                title="Bad request",
                message=str(exc),
            )
        body = response(start_response)
        return [] if request.method == "HEAD" else body

    def route(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        if path == "/unsubscribe":
            if request.method in ("GET", "HEAD"):
                return self.confirm(request)
            if request.method == "POST":
                return self.unsubscribe(request)
            return self._not_allowed("GET, POST")
        if request.method not in ("GET", "HEAD"):
            return self._not_allowed("GET")
        if path == "/":
            return redirect(f"{request.base}/archive")
        if path == "/archive":
            return self.archive_list(request)
        if path.startswith("/archive/"):
            return self.archive_issue(path.removeprefix("/archive/"))
        return self._message(404, "Not found", "There is no page here.")

    # -- unsubscribe ---------------------------------------------------------------------------

    def _message(self, status: int, title: str, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
        return page(
            "message.html",
            status,
            headers or PRIVATE,
            newsletter=self.settings.newsletter,
            title=title,
            message=message,
        )

    def _not_allowed(self, allow: str) -> Response:
        r = self._message(405, "Method not allowed", "This address does not take that kind of request.")
        r.headers.append(("Allow", allow))
        return r

    def _address(self, token: str) -> str:
        email = self.signer.email_for(token)
        if email is None:
            raise BadRequest(
                400, "This unsubscribe link is not valid. Use the link at the foot of the e-mail you received."
            )
        return email

    def confirm(self, request: Request) -> Response:
        token = request.query.get("token", "")
        if not token:
            return self._message(
                200,
                "Unsubscribe",
                f"To unsubscribe from {self.settings.newsletter.title}, use the Unsubscribe link at the foot of the e-mail you received.",
            )
        email = self._address(token)
        return page(
            "unsubscribe.html",
            200,
            PRIVATE,
            newsletter=self.settings.newsletter,
            email=email,
            token=token,
            base=request.base,
        )

    def unsubscribe(self, request: Request) -> Response:
        form = request.form()
        token = request.query.get("token") or form.get("token", "")
        if not token:
            raise BadRequest(
                400, "No unsubscribe token was given. Use the link at the foot of the e-mail you received."
            )
        email = self._address(token)
        one_click = form.get(ONE_CLICK[0]) == ONE_CLICK[1]
        if not one_click and form.get("confirm") != "yes":
            raise BadRequest(
                400,
                "Nothing was changed: an unsubscribe request needs List-Unsubscribe=One-Click or the confirmation form.",
            )
        outcome = self.store.subscribers.unsubscribe(email, now=self.clock() if self.clock else None)
        log.info("unsubscribe (%s): %s", "one-click" if one_click else "form", outcome)
        title = self.settings.newsletter.title
        if outcome == "unknown":
            return self._message(200, "Not subscribed", f"{email} is not on the list of {title}; nothing to do.")
        return self._message(200, "Unsubscribed", f"{email} is unsubscribed from {title} and will get no more issues.")

    # -- archive -------------------------------------------------------------------------------

    def archive_list(self, request: Request) -> Response:
        tz = self.settings.newsletter.tz
        issues = [
            {"key": r.key, "subject": r.subject or r.key, "date": r.slot.astimezone(tz).strftime("%-d %B %Y")}
            for r in self.store.issues.published()
        ]
        return page("archive.html", 200, newsletter=self.settings.newsletter, issues=issues, base=request.base)

    def archive_issue(self, name: str) -> Response:
        key, as_text = (name.removesuffix(".txt"), True) if name.endswith(".txt") else (name, False)
        row = self.store.issues.get(key) if _KEY.match(key) else None
        rendered = self.store.issues.rendered(key) if row is not None and row.status in ("sending", "sent") else None
        if rendered is None:
            return self._message(404, "Not found", "There is no such issue in the archive.", headers=[])
        html, plain = public_copy(rendered, self.settings.newsletter)
        if as_text:
            return text(plain)
        return Response(200, html.encode("utf-8"), headers=list(ARCHIVE_CSP))


def make_serve_app(settings: Settings, store: Store) -> SubscriberApp:
    from digest.pipeline import token_signer

    return SubscriberApp(settings, store, token_signer(settings, store))


def run_serve(
    settings: Settings,
    store: Store,
    host: str,
    port: int,
    limits: ServerLimits | None = None,
    *,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until Ctrl-C or SIGTERM."""
    server = make_wsgi_server(make_serve_app(settings, store), host, port, limits or ServerLimits())
    url = f"http://{host}:{server.server_port}"
    log.info("serving unsubscribe and archive on %s", url)
    if ready:
        ready(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
