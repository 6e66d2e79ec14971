"""Sign-up with double opt-in.

``POST /subscribe`` (fields ``email``, optional ``name``) sends a confirmation e-mail whose link
carries a signed token that expires after ``[signup] confirm_hours``. ``GET /confirm`` only shows
a button — link scanners fetch every link in mail — and ``POST /confirm`` puts the address on the
list (someone who left comes back this way, never without confirming). The answer to a sign-up is
the same whether the address is new, active or gone, so the form does not tell who is subscribed.
A hidden honeypot field, and limits per client address and per e-mail address, keep bots and
mail-bombing out. The limits are counted in this process's memory: they guard one server.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import quote

from digest.config import Settings
from digest.errors import DigestError
from digest.models import RenderedIssue
from digest.store import Store
from digest.subscribers import normalise_address
from digest.tokens import ConfirmSigner
from digest.web.wsgi import BadRequest, Request, Response, page, pages

log = logging.getLogger(__name__)

HONEYPOT = "website"
PRIVATE = [("Cache-Control", "no-store"), ("Referrer-Policy", "no-referrer"), ("X-Robots-Tag", "noindex")]


def client_address(request: Request) -> str:
    """Who is asking: the peer, or — when the peer is a proxy on this machine (``digest serve``
    behind the publication's web server) — the address that proxy put last in X-Forwarded-For."""
    peer = str(request.environ.get("REMOTE_ADDR", ""))
    forwarded = request.header("X-Forwarded-For")
    if forwarded and ipaddress.ip_address(peer or "0.0.0.0").is_loopback:
        return forwarded.split(",")[-1].strip()
    return peer


class RateLimit:
    """At most ``limit`` events per key in any hour, on the given clock."""

    def __init__(self, limit: int, clock: Callable[[], datetime]) -> None:
        self.limit = limit
        self.clock = clock
        self._seen: dict[str, deque[datetime]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            seen = self._seen[key]
            while seen and now - seen[0] >= timedelta(hours=1):
                seen.popleft()
            if len(seen) >= self.limit:
                return False
            seen.append(now)
            return True


class Signup:
    def __init__(self, settings: Settings, store: Store, signer: ConfirmSigner, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.store = store
        self.signer = signer
        self.clock = clock
        self.per_ip = RateLimit(settings.signup.per_ip_per_hour, clock)
        self.per_address = RateLimit(settings.signup.per_address_per_hour, clock)

    @property
    def confirm_base(self) -> str:
        return self.settings.signup.confirm_url or f"{self.settings.newsletter.site_url}/confirm"

    def _page(self, template: str, status: int = 200, **context: object) -> Response:
        return page(template, status, PRIVATE, newsletter=self.settings.newsletter, **context)

    def _message(self, status: int, title: str, message: str) -> Response:
        return self._page("message.html", status, title=title, message=message)

    def form(self, request: Request) -> Response:
        return self._page("subscribe.html", base=request.base)

    def subscribe(self, request: Request) -> Response:
        fields = request.form()
        raw = fields.get("email", "").strip()
        name = " ".join(fields.get("name", "").split())[:200] or None
        try:
            email = normalise_address(raw)
        except ValueError as exc:
            raise BadRequest(400, f"{raw or 'The address'} is not an e-mail address we can use: {exc}") from None
        answer = self._message(
            200,
            "Check your inbox",
            f"If {email} can be added to {self.settings.newsletter.title}, an e-mail with a confirmation link "
            "is on its way. Open it and press the button to finish.",
        )
        if fields.get(HONEYPOT):
            log.info("sign-up ignored: the honeypot field was filled in")
            return answer
        client = client_address(request)
        if not self.per_ip.allow(client):
            raise BadRequest(429, "Too many sign-ups from your network; try again in an hour.")
        if self.store.subscribers.status_of(email) == "active":
            return answer  # already on the list: the same answer, and no e-mail
        if not self.per_address.allow(email.lower()):
            return answer  # a confirmation went out a moment ago: do not mail-bomb the address
        now = self.clock()
        link = f"{self.confirm_base}?token={quote(self.signer.token(email, name, now=now))}"
        self._send(email, "confirm", f"Confirm your subscription to {self.settings.newsletter.title}", link, now)
        return answer

    def _send(self, email: str, kind: str, subject: str, link: str, now: datetime) -> None:
        from digest.pipeline import send_notice

        context = {"newsletter": self.settings.newsletter, "email": email, "link": link}
        context["hours"] = self.settings.signup.confirm_hours
        text = pages.get_template(f"{kind}_email.txt").render(**context)
        html = pages.get_template(f"{kind}_email.html").render(**context)
        notice = RenderedIssue(f"signup-{kind}", subject, subject, html, text)
        try:
            result = send_notice(self.settings, self.store, notice, email, now=now)
        except (DigestError, OSError) as exc:
            # The visitor gets the same answer (it must not tell whether mail went out); the
            # operator gets the reason in the log.
            log.warning("%s e-mail to %s not sent: %s", kind, email, exc)
            return
        if result.status != "sent":
            log.warning("%s e-mail to %s not delivered: %s", kind, email, result.detail)

    def confirm_page(self, request: Request) -> Response:
        token = request.query.get("token", "")
        found = self._signup(token)
        return self._page("confirm.html", email=found[0], token=token, base=request.base)

    def _signup(self, token: str) -> tuple[str, str | None]:
        max_age = timedelta(hours=self.settings.signup.confirm_hours)
        found = self.signer.signup_for(token, now=self.clock(), max_age=max_age) if token else None
        if found is None:
            raise BadRequest(400, "This confirmation link is not valid or has expired. Sign up again to get a new one.")
        return found

    def confirm(self, request: Request) -> Response:
        email, name = self._signup(request.form().get("token", ""))
        now = self.clock()
        outcome = self.store.subscribers.activate(email, name, now=now)
        log.info("sign-up confirmed: %s", outcome)
        if outcome != "already" and self.settings.signup.welcome:
            self._send(
                email,
                "welcome",
                f"Welcome to {self.settings.newsletter.title}",
                self.settings.newsletter.archive_base,
                now,
            )
        return self._message(200, "Subscribed", f"{email} is subscribed to {self.settings.newsletter.title}. Welcome!")
