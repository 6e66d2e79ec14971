"""DKIM signatures (RFC 6376) for messages digest sends itself over SMTP.

An e-mail service signs what it sends; a direct SMTP send (to a relay that does not sign) needs
its own signature, or Gmail and Yahoo treat bulk mail as unauthenticated. The signature covers the
list headers too, so the one-click unsubscribe (RFC 8058 §4 requires it to be signed) cannot be
swapped in transit.

Sign the finished bytes of each message, after every per-recipient change, just before handing
them to the SMTP server: ``raw = signer.sign(message_bytes)``.
"""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

from digest.config import DeliverySettings, DKIMSettings, NewsletterSettings
from digest.errors import DeliveryConfigError

# Signed when present. The first seven are the ones receivers and RFC 8058 look for; the rest
# keep the displayed content (reply address, list identity, MIME structure) from being altered.
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Reply-To",
    "List-ID",
    "MIME-Version",
    "Content-Type",
)
REQUIRED_HEADERS = SIGNED_HEADERS[:7]


class DKIMSigner:
    """Signs messages with one key; rsa-sha256, relaxed/relaxed canonicalisation."""

    def __init__(self, *, selector: str, domain: str, private_key: bytes) -> None:
        self.selector = selector
        self.domain = domain
        self._key = private_key

    def sign(self, message: bytes) -> bytes:
        """The message with a DKIM-Signature header in front. Raises DeliveryConfigError when the
        message lacks a header the signature must cover, or the key cannot sign."""
        present = {k.lower() for k in BytesHeaderParser(policy=compat32).parsebytes(message).keys()}
        missing = [h for h in REQUIRED_HEADERS if h.lower() not in present]
        if missing:
            raise DeliveryConfigError(f"DKIM: the message has no {', '.join(missing)} header to sign")
        headers = [h.encode("ascii") for h in SIGNED_HEADERS if h.lower() in present]
        # dkimpy (and the DNS library it imports) is loaded by the first signature, not by every
        # SMTP send: most relays sign for us and leave [delivery.dkim] unset.
        import dkim

        try:
            # dkimpy ships no type hints; its sign() returns the DKIM-Signature header line as bytes.
            signature: bytes = dkim.sign(
                message,
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self._key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=headers,
            )
        except dkim.DKIMException as exc:
            raise DeliveryConfigError(
                f"DKIM: cannot sign for {self.selector}._domainkey.{self.domain}: {exc}"
            ) from None
        return signature + message


def signer_from_settings(dkim_settings: DKIMSettings | None, nl: NewsletterSettings) -> DKIMSigner | None:
    """The signer for ``[delivery.dkim]``, or None when DKIM is not configured (or its key was not
    loaded because the backend is not SMTP)."""
    if dkim_settings is None or dkim_settings.private_key is None:
        return None
    return DKIMSigner(
        selector=dkim_settings.selector,
        domain=dkim_settings.domain or nl.sender_domain,
        private_key=dkim_settings.private_key.get_secret_value().encode("ascii"),
    )


def sign_message(message: bytes, delivery: DeliverySettings, nl: NewsletterSettings) -> bytes:
    """``message`` DKIM-signed when ``[delivery.dkim]`` is configured, else unchanged."""
    signer = signer_from_settings(delivery.dkim, nl)
    return signer.sign(message) if signer else message
