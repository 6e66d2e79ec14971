"""DKIM: a finished message signed with dkimpy verifies against the published key (a stub DNS
lookup), covers the list headers, and breaks when one of them is changed in transit."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import dkim
import pytest
from renderdata import golden_issue, make_settings

from digest.delivery.dkim import DKIMSigner, sign_message, signer_from_settings
from digest.delivery.mime import build_message
from digest.errors import ConfigError, DeliveryConfigError
from digest.render.issue import render_issue

NOW = datetime(2025, 8, 11, 7, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A fresh 2048-bit RSA key (PEM file) and the DNS TXT record that publishes it."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test key")
    folder = tmp_path_factory.mktemp("dkim")
    key = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def _dns(records: dict[bytes, bytes]):
    asked: list[bytes] = []

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        asked.append(name)
        return records.get(name)

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


def _smtp_settings(tmp_path: Path, dkim_table: dict) -> dict:
    return {"delivery": {"backend": "smtp", "dkim": dkim_table}}


def _message(tmp_path: Path) -> bytes:
    settings = make_settings(tmp_path)
    rendered = render_issue(golden_issue(), settings)
    return build_message(rendered, settings.newsletter, to="reader@example.org", token="TOKEN", now=NOW).as_bytes()


def test_signature_verifies_and_covers_the_list_headers(tmp_path: Path, keypair) -> None:
    key, record = keypair
    settings = make_settings(tmp_path, _smtp_settings(tmp_path, {"selector": "mail2025", "key_path": str(key)}))
    signer = signer_from_settings(settings.delivery.dkim, settings.newsletter)
    assert signer is not None and signer.domain == "news.example.org"
    signed = signer.sign(_message(tmp_path))
    assert signed.startswith(b"DKIM-Signature: ")
    dns = _dns({b"mail2025._domainkey.news.example.org.": record})
    assert dkim.verify(signed, dnsfunc=dns)
    assert dns.asked == [b"mail2025._domainkey.news.example.org."]
    header = signed.split(b"\r\n\r\n", 1)[0].decode()
    sig = re.search(r"DKIM-Signature: (.*?)\r\n(?=\S)", header, re.S).group(1)  # type: ignore[union-attr]
    tags = dict(t.strip().split("=", 1) for t in re.sub(r"\s+", "", sig).split(";") if t.strip())
    assert tags["d"] == "news.example.org" and tags["s"] == "mail2025"
    assert tags["a"] == "rsa-sha256" and tags["c"] == "relaxed/relaxed"
    signed_headers = tags["h"].lower().split(":")
    for name in ("from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"):
        assert name in signed_headers


@pytest.mark.parametrize(
    "old,new",
    [
        (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: List-Unsubscribe=Nope"),
        (b"unsubscribe?token=TOKEN", b"unsubscribe?token=EVIL1"),
        (b"Subject: The Test Weekly", b"Subject: The Evil Weekly"),
        (b"weekly digest of", b"weekly digest 0f"),
    ],
    ids=["list-unsubscribe-post", "list-unsubscribe", "subject", "body"],
)
def test_tampering_breaks_the_signature(tmp_path: Path, keypair, old: bytes, new: bytes) -> None:
    key, record = keypair
    signer = DKIMSigner(selector="s1", domain="news.example.org", private_key=key.read_bytes())
    signed = signer.sign(_message(tmp_path))
    assert old in signed
    dns = _dns({b"s1._domainkey.news.example.org.": record})
    assert dkim.verify(signed, dnsfunc=dns)
    assert not dkim.verify(signed.replace(old, new, 1), dnsfunc=dns)


def test_key_from_an_environment_variable(tmp_path: Path, keypair, monkeypatch: pytest.MonkeyPatch) -> None:
    key, record = keypair
    # One line with literal "\n", as an environment variable often carries a PEM file.
    monkeypatch.setenv("TEST_DKIM_KEY", key.read_text().replace("\n", "\\n"))
    settings = make_settings(
        tmp_path, _smtp_settings(tmp_path, {"selector": "s2", "domain": "example.org", "key_env": "TEST_DKIM_KEY"})
    )
    signed = sign_message(_message(tmp_path), settings.delivery, settings.newsletter)
    assert dkim.verify(signed, dnsfunc=_dns({b"s2._domainkey.example.org.": record}))
    assert "PRIVATE KEY" not in repr(settings) and "PRIVATE KEY" not in settings.model_dump_json()


def test_unsigned_without_dkim_config(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    raw = _message(tmp_path)
    assert sign_message(raw, settings.delivery, settings.newsletter) == raw


def test_a_message_without_list_headers_is_refused(keypair) -> None:
    key, _ = keypair
    signer = DKIMSigner(selector="s1", domain="news.example.org", private_key=key.read_bytes())
    bare = b"From: a@news.example.org\r\nTo: b@example.org\r\nSubject: x\r\nDate: Mon, 11 Aug 2025 07:00:00 +0000\r\nMessage-ID: <x@news.example.org>\r\n\r\nbody\r\n"
    with pytest.raises(DeliveryConfigError, match="no List-Unsubscribe, List-Unsubscribe-Post header to sign"):
        signer.sign(bare)


@pytest.mark.parametrize(
    "table,env,needle",
    [
        ({"selector": "s1"}, {}, "delivery.dkim: give exactly one of key_path"),
        ({"selector": "s1", "key_path": "k.pem", "key_env": "K"}, {}, "give exactly one of key_path"),
        (
            {"selector": "s1", "key_env": "DIGEST_TEST_UNSET_KEY"},
            {},
            "delivery.dkim.key_env: environment variable DIGEST_TEST_UNSET_KEY is not set",
        ),
        ({"selector": "s1", "key_path": "missing.pem"}, {}, "delivery.dkim.key_path: cannot read"),
        (
            {"selector": "s1", "key_env": "DIGEST_TEST_BAD_KEY"},
            {"DIGEST_TEST_BAD_KEY": "not a key"},
            "delivery.dkim.key_env: not a PEM RSA private key",
        ),
        (
            {"selector": "s1", "key_path": "k.pem", "private_key": "-----BEGIN"},
            {},
            "delivery.dkim.private_key: secrets do not belong in the config file",
        ),
        ({"selector": "bad selector!", "key_env": "K"}, {"K": "x"}, "delivery.dkim.selector: expected a DNS name"),
    ],
)
def test_config_problems_are_reported(
    tmp_path: Path, keypair, monkeypatch: pytest.MonkeyPatch, table: dict, env: dict, needle: str
) -> None:
    key, _ = keypair
    (tmp_path / "k.pem").write_bytes(key.read_bytes())
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DIGEST_TEST_UNSET_KEY", raising=False)
    with pytest.raises(ConfigError) as err:
        make_settings(tmp_path, _smtp_settings(tmp_path, table))
    assert any(needle in p for p in err.value.problems), err.value.problems
    assert all("BEGIN" not in p for p in err.value.problems)


def test_key_is_not_read_for_other_backends(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, {"delivery": {"backend": "outbox", "dkim": {"selector": "s1", "key_env": "DIGEST_TEST_UNSET_KEY"}}}
    )
    assert (
        settings.delivery.dkim is not None and signer_from_settings(settings.delivery.dkim, settings.newsletter) is None
    )
