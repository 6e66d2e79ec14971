"""Signed per-subscriber tokens for unsubscribe links and sign-up confirmations.

The secret comes from the environment variable named by ``[security] secret_env``; when it is not
set, a random secret kept in the state database is used, so every process sharing that database
agrees. Tokens are signed, so a tampered one is rejected.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from itsdangerous.encoding import base64_encode

from digest import redact

_SALT = "digest.unsubscribe"
_CONFIRM_SALT = "digest.confirm"


class TokenSigner:
    def __init__(self, secret: str) -> None:
        self._s = URLSafeSerializer(secret, salt=_SALT)
        # A send makes one token per message, and itsdangerous builds a signer and derives its key
        # for each: here the key is derived once and the MAC's state copied (the same tokens).
        signer = self._s.make_signer()
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)
        self._sep = signer.sep

    def token(self, email: str) -> str:
        payload = self._s.dump_payload(email.lower())
        mac = self._mac.copy()
        mac.update(payload)
        return (payload + self._sep + base64_encode(mac.digest())).decode("ascii")

    def email_for(self, token: str) -> str | None:
        """The address a token was made for, or None when the token is not genuine."""
        try:
            value = self._s.loads(token)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None


class ConfirmSigner:
    """Signed, expiring tokens for the sign-up confirmation link: the address, the name, and when
    the token was made (checked against the caller's clock, so tests need not wait)."""

    def __init__(self, secret: str) -> None:
        self._s = URLSafeSerializer(secret, salt=_CONFIRM_SALT)

    def token(self, email: str, name: str | None, *, now: datetime) -> str:
        return self._s.dumps({"e": email, "n": name, "t": int(now.timestamp())})

    def signup_for(self, token: str, *, now: datetime, max_age: timedelta) -> tuple[str, str | None] | None:
        """(address, name) a genuine token that is not older than ``max_age`` was made for; else None."""
        try:
            value = self._s.loads(token)
        except BadSignature:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("e"), str) or not isinstance(value.get("t"), int):
            return None
        if not 0 <= now.timestamp() - value["t"] <= max_age.total_seconds():
            return None
        name = value.get("n")
        return value["e"], name if isinstance(name, str) else None


def secret_for(secret_env: str, store_secret: Callable[[], str]) -> str:
    """The signing secret: the environment variable's (registered for masking, as every secret
    from the environment is), else the one kept in the state database."""
    secret = os.environ.get(secret_env)
    redact.register(secret)
    return secret or store_secret()


def signer_for(secret_env: str, store_secret: Callable[[], str]) -> TokenSigner:
    return TokenSigner(secret_for(secret_env, store_secret))
