"""E-mail services' event webhooks: each request is verified before anything changes.

- Mailgun signs each event: HMAC-SHA256 over ``timestamp + token`` with the webhook signing key,
  hex in ``signature`` (https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks).
  The token is one-time: a replay is refused, and so is a timestamp older than ``max_age_seconds``.
- SendGrid's Signed Event Webhook signs ``timestamp + raw body`` with ECDSA P-256 / SHA-256; the
  signature (base64 DER) and timestamp come in the ``X-Twilio-Email-Event-Webhook-Signature`` and
  ``…-Timestamp`` headers, the public key (base64 DER) from the dashboard
  (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features).
  A signature seen before is refused.
- Postmark has no signature: the webhook URL carries HTTP basic auth
  (https://postmarkapp.com/developer/webhooks/webhooks-overview). A bounce or complaint ID seen
  before is refused.

Verification failures answer 401/403 (a replay 409) and change nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from digest.config import Settings
from digest.delivery.feedback import Feedback, Kind, apply_feedback
from digest.store import Store
from digest.web.wsgi import BadRequest, Request, Response, as_json

log = logging.getLogger(__name__)

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def _secret(var: str | None, what: str) -> str:
    value = os.environ.get(var) if var else None
    if not value:
        log.warning("%s webhook called but its secret is not configured", what)
        raise BadRequest(403, f"the {what} webhook is not configured on this server")
    return value


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise BadRequest(400, "the body is not JSON") from None


def _fresh(timestamp: str, now: datetime, max_age: int) -> None:
    try:
        age = now.timestamp() - int(timestamp)
    except ValueError:
        raise BadRequest(401, "bad signature timestamp") from None
    if abs(age) > max_age:
        raise BadRequest(401, "the signature timestamp is too old")


# --- the services' event names → our kinds -----------------------------------------------------


def mailgun_feedback(data: dict[str, Any]) -> Feedback | None:
    event = data.get("event")
    email = data.get("recipient")
    if not isinstance(email, str):
        return None
    kind: Kind | None = None
    if event == "failed":
        kind = "hard-bounce" if data.get("severity") == "permanent" else "soft-bounce"
    elif event == "complained":
        kind = "complaint"
    elif event == "unsubscribed":
        kind = "unsubscribe"
    if kind is None:
        return None
    headers = (data.get("message") or {}).get("headers") or {}
    status = data.get("delivery-status") or {}
    detail = status.get("description") or status.get("message") or None
    return Feedback(email, kind, "webhook:mailgun", headers.get("message-id"), detail)


def sendgrid_feedback(data: dict[str, Any]) -> Feedback | None:
    event = data.get("event")
    email = data.get("email")
    if not isinstance(email, str):
        return None
    kind: Kind | None = None
    if event == "bounce":
        # "type": "bounce" is a permanent failure, "blocked" a temporary one.
        kind = "soft-bounce" if data.get("type") == "blocked" else "hard-bounce"
    elif event == "spamreport":
        kind = "complaint"
    elif event in ("unsubscribe", "group_unsubscribe"):
        kind = "unsubscribe"
    if kind is None:
        return None
    return Feedback(email, kind, "webhook:sendgrid", data.get("smtp-id"), data.get("reason"))


_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Blocked"}
_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError"}


def postmark_feedback(data: dict[str, Any]) -> Feedback | None:
    record, kind_name = data.get("RecordType"), data.get("Type")
    email = data.get("Email") or data.get("Recipient")
    if not isinstance(email, str):
        return None
    kind: Kind | None = None
    if record == "SpamComplaint" or kind_name == "SpamComplaint":
        kind = "complaint"
    elif record == "Bounce" and kind_name in _POSTMARK_HARD:
        kind = "hard-bounce"
    elif record == "Bounce" and kind_name in _POSTMARK_SOFT:
        kind = "soft-bounce"
    elif record == "SubscriptionChange" and data.get("SuppressSending"):
        kind = "unsubscribe"
    if kind is None:
        return None
    return Feedback(email, kind, "webhook:postmark", None, data.get("Details") or data.get("Description"))


# --- verification --------------------------------------------------------------------------------


class Webhooks:
    def __init__(self, settings: Settings, store: Store, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock

    def handle(self, service: str, request: Request) -> Response:
        if request.method != "POST":
            raise BadRequest(405, "webhooks take POST")
        body = request.body()
        now = self.clock()
        verify = {"mailgun": self.mailgun, "sendgrid": self.sendgrid, "postmark": self.postmark}.get(service)
        if verify is None:
            raise BadRequest(404, "no such webhook")
        items = verify(request, body, now)
        limit = self.settings.webhooks.soft_bounce_limit
        done = [apply_feedback(self.store, item, now=now, soft_bounce_limit=limit).outcome for item in items]
        return as_json({"events": len(done), "suppressed": done.count("suppressed")})

    def mailgun(self, request: Request, body: bytes, now: datetime) -> list[Feedback]:
        key = _secret(self.settings.webhooks.mailgun_signing_key_env, "Mailgun")
        payload = _json(body)
        sig = payload.get("signature") if isinstance(payload, dict) else None
        if not isinstance(sig, dict) or not all(
            isinstance(sig.get(k), str) for k in ("timestamp", "token", "signature")
        ):
            raise BadRequest(401, "no Mailgun signature in the request")
        expected = hmac.new(key.encode(), (sig["timestamp"] + sig["token"]).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sig["signature"]):
            raise BadRequest(401, "the Mailgun signature does not match")
        _fresh(sig["timestamp"], now, self.settings.webhooks.max_age_seconds)
        if not self.store.feedback.first_use("mailgun:" + sig["token"][:100], now=now):
            raise BadRequest(409, "this Mailgun token was used before (a replay)")
        item = mailgun_feedback(payload.get("event-data") or {})
        return [item] if item else []

    def sendgrid(self, request: Request, body: bytes, now: datetime) -> list[Feedback]:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

        key_text = _secret(self.settings.webhooks.sendgrid_public_key_env, "SendGrid")
        signature, timestamp = request.header(SENDGRID_SIGNATURE), request.header(SENDGRID_TIMESTAMP)
        if not signature or not timestamp:
            raise BadRequest(401, "no SendGrid signature in the request")
        try:
            if "BEGIN PUBLIC KEY" in key_text:
                public_key = load_pem_public_key(key_text.replace("\\n", "\n").encode())
            else:  # the dashboard shows the DER key in base64, without PEM's armour
                public_key = load_der_public_key(base64.b64decode(key_text))
            raw_signature = base64.b64decode(signature, validate=True)
        except (ValueError, binascii.Error):
            raise BadRequest(401, "the SendGrid signature or public key is not valid base64 DER") from None
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise BadRequest(403, "the SendGrid public key is not an ECDSA key")
        try:
            public_key.verify(raw_signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise BadRequest(401, "the SendGrid signature does not match") from None
        _fresh(timestamp, now, self.settings.webhooks.max_age_seconds)
        if not self.store.feedback.first_use("sendgrid:" + hashlib.sha256(raw_signature).hexdigest(), now=now):
            raise BadRequest(409, "this SendGrid request was received before (a replay)")
        events = _json(body)
        if not isinstance(events, list):
            raise BadRequest(400, "SendGrid posts a JSON array of events")
        return [f for f in (sendgrid_feedback(e) for e in events if isinstance(e, dict)) if f]

    def postmark(self, request: Request, body: bytes, now: datetime) -> list[Feedback]:
        hooks = self.settings.webhooks
        password = _secret(hooks.postmark_password_env, "Postmark")
        given = request.header("Authorization") or ""
        expected = "Basic " + base64.b64encode(f"{hooks.postmark_username or ''}:{password}".encode()).decode()
        if not hooks.postmark_username or not hmac.compare_digest(given.encode(), expected.encode()):
            raise BadRequest(401, "wrong or missing Postmark credentials")
        data = _json(body)
        if not isinstance(data, dict):
            raise BadRequest(400, "Postmark posts one JSON object per event")
        event_id = data.get("ID")
        if event_id is not None and not self.store.feedback.first_use(
            f"postmark:{data.get('RecordType')}:{event_id}"[:128], now=now
        ):
            raise BadRequest(409, "this Postmark event was received before (a replay)")
        item = postmark_feedback(data)
        return [item] if item else []
