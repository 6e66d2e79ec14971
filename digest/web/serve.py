"""The subscribers' endpoints: sign-up, one-click unsubscribe, the archive (the view-in-browser
link) and the e-mail services' webhooks.

A small WSGI app, meant to sit behind the publication's web server (``digest serve`` runs it on
127.0.0.1 by default; any WSGI server can run :func:`make_serve_app`).

- ``GET /unsubscribe?token=…`` shows a confirmation page and changes nothing: link scanners and
  mail-security proxies fetch links in mail, and must not unsubscribe anyone.
- ``POST /unsubscribe`` with ``List-Unsubscribe=One-Click`` in the body (RFC 8058, sent by the mail
  provider's unsubscribe button) or with the confirmation form unsubscribes at once. The token is
  signed; a tampered one gets 400 and changes nothing; a repeat is answered the same way.
- ``/subscribe`` and ``/confirm``: sign-up with double opt-in (digest.web.signup).
- ``POST /webhooks/mailgun|sendgrid|postmark``: bounces and complaints (digest.web.webhooks).
- ``/archive`` lists the issues that went out (subject, date, article count) with a subscribe link;
  ``/archive/feed.xml`` is an Atom feed of the sent issues, advertised by both pages;
  ``/archive/<key>`` shows one issue as anyone may read it: the personal footer text, the
  unsubscribe link and the tracking pixel are taken out, so no token or address of anyone is in it.
"""

from __future__ import annotations

import html as htmllib
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from digest.config import NewsletterSettings, Settings
from digest.models import EMAIL_MARK, NAME_MARK, TOKEN_MARK, RenderedIssue
from digest.store import Store
from digest.store.records import ArchivedIssue
from digest.text import plural
from digest.tokens import ConfirmSigner, TokenSigner, secret_for
from digest.web.signup import Signup
from digest.web.webhooks import Webhooks
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


FEED_PATH = "/archive/feed.xml"
ATOM = "http://www.w3.org/2005/Atom"

_EMAIL_FORMS = (EMAIL_MARK, htmllib.escape(EMAIL_MARK), quote(EMAIL_MARK, safe=""), quote(EMAIL_MARK))
_PERSONAL_MARK = "|".join(re.escape(f) for f in (*_EMAIL_FORMS, TOKEN_MARK))
# The paragraph that speaks to one recipient ("…you subscribed … as <address>.").
_PERSONAL_P = re.compile(rf"<p\b[^>]*>(?:(?!</p>).)*?(?:{_PERSONAL_MARK})(?:(?!</p>).)*?</p>", re.S)
# A link or image that carries the recipient's token (unsubscribe, tracking pixel), with the
# " · " that joined the link to its neighbour.
_LINK = rf"<a\b[^>]*{re.escape(TOKEN_MARK)}[^>]*>.*?</a>"
_TOKEN_LINK = re.compile(rf"{_LINK}\s*·\s*|\s*·\s*{_LINK}|{_LINK}", re.S)
_TOKEN_IMG = re.compile(rf"<img\b[^>]*{re.escape(TOKEN_MARK)}[^>]*>", re.S)


def _public_html(body: str, name: str) -> str:
    body = _TOKEN_IMG.sub("", body)
    body = _TOKEN_LINK.sub("", body)
    body = _PERSONAL_P.sub("", body)
    return _leftover_markers(body, htmllib.escape(name))


def _public_text(body: str, name: str) -> str:
    # Paragraphs (blank-line separated) that name the recipient go whole; lines with a token go.
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", body) if not any(f in p for f in _EMAIL_FORMS)]
    kept = "\n\n".join(paragraphs)
    return _leftover_markers("\n".join(line for line in kept.split("\n") if TOKEN_MARK not in line), name)


def _leftover_markers(body: str, name: str) -> str:
    # Markers a user's template put somewhere else: no token, the address becomes "you" and the
    # subscriber's name the newsletter's fallback name.
    body = body.replace(TOKEN_MARK, "").replace(NAME_MARK, name)
    for form in _EMAIL_FORMS:
        body = body.replace(form, "you")
    return body


def public_copy(rendered: RenderedIssue, nl: NewsletterSettings) -> tuple[str, str]:
    """The issue's HTML and text for anyone to read: the footer text that speaks to one recipient,
    the unsubscribe link (it would have no token) and the tracking pixel are taken out. Markers a
    custom template put anywhere else are removed (the address becomes "you", the subscriber's name
    the newsletter's ``name_fallback``)."""
    return _public_html(rendered.html, nl.name_fallback), _public_text(rendered.text, nl.name_fallback)


def _atom_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def atom_feed(nl: NewsletterSettings, sent: Sequence[ArchivedIssue], *, now: datetime) -> bytes:
    """An Atom feed (RFC 4287) of the sent issues, newest first, each linking to its archived copy."""
    ET.register_namespace("", ATOM)

    def add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        el.text = text
        return el

    feed = ET.Element(f"{{{ATOM}}}feed", {"xml:lang": nl.language})
    add(feed, "id", f"{nl.archive_base}/feed.xml")
    add(feed, "title", nl.title)
    if nl.description:
        add(feed, "subtitle", nl.description)
    updated = [i.finished_at or i.slot for i in sent]
    add(feed, "updated", _atom_time(max(updated) if updated else now))
    add(feed, "link", rel="self", type="application/atom+xml", href=f"{nl.archive_base}/feed.xml")
    add(feed, "link", rel="alternate", type="text/html", href=nl.archive_base)
    author = add(feed, "author")
    add(author, "name", nl.title)
    for issue in sent:
        url = f"{nl.archive_base}/{issue.key}"
        entry = add(feed, "entry")
        add(entry, "id", url)
        add(entry, "title", issue.subject or issue.key)
        add(entry, "link", rel="alternate", type="text/html", href=url)
        add(entry, "published", _atom_time(issue.slot))
        add(entry, "updated", _atom_time(issue.finished_at or issue.slot))
        summary = plural(issue.articles, "article")
        add(entry, "summary", f"{issue.preheader} ({summary})" if issue.preheader else summary)
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


class SubscriberApp:
    def __init__(
        self, settings: Settings, store: Store, signer: TokenSigner, *, clock: Callable[[], Any] | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.signer = signer
        self.clock = clock
        now: Callable[[], datetime] = clock or (lambda: datetime.now(timezone.utc))
        secret = secret_for(settings.security.secret_env, store.meta.secret)
        self.signup = Signup(settings, store, ConfirmSigner(secret), now)
        self.webhooks = Webhooks(settings, store, now)

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
        if path in ("/subscribe", "/confirm") and self.settings.signup.enabled:
            if request.method in ("GET", "HEAD"):
                return self.signup.form(request) if path == "/subscribe" else self.signup.confirm_page(request)
            if request.method == "POST":
                return self.signup.subscribe(request) if path == "/subscribe" else self.signup.confirm(request)
            return self._not_allowed("GET, POST")
        if path.startswith("/webhooks/"):
            return self.webhooks.handle(path.removeprefix("/webhooks/"), request)
        if request.method not in ("GET", "HEAD"):
            return self._not_allowed("GET")
        if path == "/":
            return redirect(f"{request.base}/archive")
        if path == "/archive":
            return self.archive_list(request)
        if path == FEED_PATH:
            return self.archive_feed()
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
        now = self.clock() if self.clock else datetime.now(timezone.utc)
        outcome = self.store.subscribers.unsubscribe(email, now=now)
        if outcome == "unsubscribed":
            # Counted against the issue it came from, for `digest status ISSUE`.
            issue = self.store.feedback.latest_issue_for(email)
            origin = "one-click" if one_click else "form"
            self.store.feedback.record(email=email, kind="unsubscribe", origin=origin, issue_key=issue, now=now)
        log.info("unsubscribe (%s): %s", "one-click" if one_click else "form", outcome)
        title = self.settings.newsletter.title
        if outcome == "unknown":
            return self._message(200, "Not subscribed", f"{email} is not on the list of {title}; nothing to do.")
        return self._message(200, "Unsubscribed", f"{email} is unsubscribed from {title} and will get no more issues.")

    # -- archive -------------------------------------------------------------------------------

    def archive_list(self, request: Request) -> Response:
        tz = self.settings.newsletter.tz
        issues = [
            {
                "key": r.key,
                "subject": r.subject or r.key,
                "date": r.slot.astimezone(tz).strftime("%-d %B %Y"),
                "iso_date": r.slot.astimezone(tz).date().isoformat(),
                "articles": r.articles,
            }
            for r in self.store.issues.archived()
        ]
        return page(
            "archive.html",
            200,
            newsletter=self.settings.newsletter,
            issues=issues,
            base=request.base,
            feed_url=f"{request.base}{FEED_PATH}",
        )

    def archive_feed(self) -> Response:
        now = self.clock() if self.clock else datetime.now(timezone.utc)
        body = atom_feed(self.settings.newsletter, self.store.issues.archived(sent_only=True), now=now)
        return Response(200, body, "application/atom+xml; charset=utf-8")

    def archive_issue(self, name: str) -> Response:
        key, as_text = (name.removesuffix(".txt"), True) if name.endswith(".txt") else (name, False)
        row = self.store.issues.get(key) if _KEY.match(key) else None
        rendered = self.store.issues.rendered(key) if row is not None and row.status in ("sending", "sent") else None
        if rendered is None:
            return self._message(404, "Not found", "There is no such issue in the archive.", headers=[])
        html, plain = public_copy(rendered, self.settings.newsletter)
        if as_text:
            return text(plain)
        feed = f'<link rel="alternate" type="application/atom+xml" title="{htmllib.escape(self.settings.newsletter.title)}" href="{FEED_PATH}">'
        html = html.replace("</head>", f"{feed}\n</head>", 1)
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
    log.info("serving sign-up, unsubscribe, webhooks and the archive on %s", url)
    if ready:
        ready(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
