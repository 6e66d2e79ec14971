"""Signed per-subscriber tokens for unsubscribe links.

The secret comes from the environment variable named by ``[security] secret_env``; when it is not
set, a random secret kept in the state database is used, so every process sharing that database
agrees. Tokens are signed, so a tampered one is rejected.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from itsdangerous import BadSignature, URLSafeSerializer

from digest import redact

_SALT = "digest.unsubscribe"


class TokenSigner:
    def __init__(self, secret: str) -> None:
        self._s = URLSafeSerializer(secret, salt=_SALT)

    def token(self, email: str) -> str:
        return self._s.dumps(email.lower())

    def email_for(self, token: str) -> str | None:
        """The address a token was made for, or None when the token is not genuine."""
        try:
            value = self._s.loads(token)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None


def signer_for(secret_env: str, store_secret: Callable[[], str]) -> TokenSigner:
    secret = os.environ.get(secret_env)
    redact.register(secret)
    return TokenSigner(secret or store_secret())
