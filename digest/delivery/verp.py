"""VERP: a Return-Path per recipient, so a bounce names whom it is about even when the report
does not (a forwarded address, a mangled DSN): ``digest+ana=example.org@news.example.org`` is the
return path of the copy sent to ana@example.org."""

from __future__ import annotations


def verp_address(sender: str, recipient: str) -> str:
    local, _, domain = sender.rpartition("@")
    r_local, _, r_domain = recipient.rpartition("@")
    return f"{local}+{r_local}={r_domain}@{domain}"


def recipient_from_verp(address: str) -> str | None:
    """The recipient a VERP return path was made for, or None when ``address`` is not one."""
    local, at, _ = address.rpartition("@")
    _, plus, payload = local.partition("+")
    r_local, eq, r_domain = payload.rpartition("=")
    if not (at and plus and eq and r_local and r_domain and "." in r_domain):
        return None
    return f"{r_local}@{r_domain}"
