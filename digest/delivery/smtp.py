"""SMTP through smtplib: one connection reused for many messages."""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Sequence

from digest.config import SMTPSettings
from digest.delivery.base import Backend, OutgoingMessage
from digest.errors import DeliveryConfigError
from digest.models import DeliveryResult


def _words(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}"


class SMTPBackend(Backend):
    name = "smtp"

    def __init__(self, settings: SMTPSettings, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.conn: smtplib.SMTP | None = None

    @property
    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def open(self) -> None:
        s = self.settings
        try:
            if s.security == "tls":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self.ssl_context)
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            conn.ehlo()
            if s.security == "starttls":
                conn.starttls(context=self.ssl_context)
                conn.ehlo()
            if s.username:
                password = s.password.get_secret_value() if s.password else ""
                conn.login(s.username, password)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryConfigError(
                f"SMTP server {self._where} refused the login for {s.username!r}: {_words(exc.smtp_code, exc.smtp_error)}; "
                "check delivery.smtp.username and the password variable"
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryConfigError(f"SMTP server {self._where}: {exc}; check delivery.smtp.security") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryConfigError(
                f"cannot connect to SMTP server {self._where}: {exc}; check delivery.smtp.host, port and security"
            ) from None
        self.conn = conn

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except (OSError, smtplib.SMTPException):
                self.conn.close()
            self.conn = None

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        return [self._send_one(m) for m in messages]

    def _send_one(self, m: OutgoingMessage) -> DeliveryResult:
        if self.conn is None:
            self.open()
        assert self.conn is not None
        try:
            refused = self.conn.send_message(m.message, to_addrs=[m.recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients.get(m.recipient, (550, b"refused"))
            return DeliveryResult(m.recipient, "retry" if 400 <= code < 500 else "failed", None, _words(code, text))
        except smtplib.SMTPResponseException as exc:
            status = "retry" if 400 <= exc.smtp_code < 500 else "failed"
            if exc.smtp_code in (421,):
                self._drop()
            return DeliveryResult(m.recipient, status, None, _words(exc.smtp_code, exc.smtp_error))
        except (smtplib.SMTPServerDisconnected, socket.timeout, ConnectionError) as exc:
            self._drop()
            return DeliveryResult(m.recipient, "retry", None, f"connection lost: {exc}")
        if refused:
            code, text = refused[m.recipient]
            return DeliveryResult(m.recipient, "failed", None, _words(code, text))
        return DeliveryResult(m.recipient, "sent", m.message_id)

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None
