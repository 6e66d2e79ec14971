"""One filter at the output boundary that keeps secrets out of everything digest prints or
stores: error lines, log records (also with --debug), ``digest status`` and the failure texts
recorded for a delivery.

Loading the config registers each secret it reads (an API key, the SMTP password, the DKIM key,
the token secret); :func:`mask` then replaces every occurrence of a registered secret, and of
its stripped form, with ``[secret]``. Masking is by value, so it holds wherever a library puts
the value (an HTTP header error, an encoding error, a server's echo)."""

from __future__ import annotations

import logging
import threading

MASK = "[secret]"
_MIN = 4  # shorter values would mask ordinary words; no real secret is that short

_lock = threading.Lock()
_secrets: set[str] = set()


def register(value: str | None) -> None:
    """Remember a secret so that :func:`mask` hides it from now on."""
    if not value:
        return
    with _lock:
        for v in (value, value.strip()):
            if len(v) >= _MIN:
                _secrets.add(v)
                # Long secrets (a PEM key) are masked line by line too: errors quote single lines.
                _secrets.update(line for line in v.splitlines() if len(line.strip()) >= 16)


def mask(text: str) -> str:
    """``text`` with every registered secret replaced by ``[secret]``."""
    if not _secrets or not text:
        return text
    with _lock:
        found = [s for s in _secrets if s in text]
    for s in sorted(found, key=len, reverse=True):
        text = text.replace(s, MASK)
    return text


class MaskingFilter(logging.Filter):
    """A logging filter that masks the formatted message (and any traceback) of each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = mask(formatted)
        return True
