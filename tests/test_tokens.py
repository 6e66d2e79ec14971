"""Unsubscribe tokens: made once per message by the send, so made without itsdangerous's
per-token signer; they must stay exactly the tokens itsdangerous makes (links already sent keep
working) and be checked by it."""

from __future__ import annotations

import random
import string

import pytest
from itsdangerous import URLSafeSerializer

from digest.tokens import TokenSigner

_SALT = "digest.unsubscribe"


def sample_addresses() -> list[str]:
    rng = random.Random(5)
    out = ["reader@example.org", "Mixed.Case@Example.ORG", "josé@exämple.org", "用户@例子.广告", '"a b"@example.org']
    out.append("a" * 60 + "@" + "a" * 60 + ".org")  # compressible: itsdangerous sends it zlib-compressed
    out.append("x@y")
    for _ in range(300):
        local = "".join(rng.choice(string.ascii_letters + string.digits + "._+-") for _ in range(rng.randint(1, 40)))
        out.append(f"{local}@{rng.choice(['example.org', 'mail.example.com', 'ünï.example'])}")
    return out


@pytest.mark.parametrize("secret", ["s3cret", "x" * 64, "ключ"])
def test_tokens_are_exactly_itsdangerous_tokens(secret: str) -> None:
    signer = TokenSigner(secret)
    reference = URLSafeSerializer(secret, salt=_SALT)
    for address in sample_addresses():
        token = signer.token(address)
        assert token == reference.dumps(address.lower())
        assert signer.email_for(token) == address.lower()


def test_a_compressed_payload_is_one_itsdangerous_reads() -> None:
    signer = TokenSigner("s3cret")
    token = signer.token("b" * 200 + "@example.org")
    assert token.startswith(".")  # the compressed form
    assert URLSafeSerializer("s3cret", salt=_SALT).loads(token) == "b" * 200 + "@example.org"


def test_a_token_from_another_secret_or_tampered_is_refused() -> None:
    token = TokenSigner("one").token("reader@example.org")
    assert TokenSigner("two").email_for(token) is None
    payload, sig = token.rsplit(".", 1)
    assert TokenSigner("one").email_for(payload + "." + ("A" if sig[0] != "A" else "B") + sig[1:]) is None
