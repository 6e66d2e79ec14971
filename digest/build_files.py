"""What ``digest build`` writes: the issue as files an editor can open, sending nothing.

Beside the pipeline rather than in render/: a sample message needs the rendering and the MIME
message both, and one stage does not reach into another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from digest.config import Settings
from digest.delivery.mime import build_message
from digest.errors import FileError
from digest.models import RenderedIssue
from digest.tokens import TokenSigner

# The reader a built or previewed issue is personalised for: an address no one receives mail at.
SAMPLE_RECIPIENT = "reader@example.org"


@dataclass(frozen=True)
class BuildOutput:
    html: Path
    text: Path
    eml: Path


def write_build(
    rendered: RenderedIssue, settings: Settings, signer: TokenSigner, out: Path, *, now: datetime
) -> BuildOutput:
    """Write issue.html, issue.txt and a sample issue.eml (addressed to a sample reader).
    Raises :class:`FileError` naming the file when the folder cannot be made or written."""
    token = signer.token(SAMPLE_RECIPIENT)
    html, text = rendered.personalise(
        email=SAMPLE_RECIPIENT, token=token, name=settings.newsletter.recipient_name(None)
    )
    paths = BuildOutput(out / "issue.html", out / "issue.txt", out / "issue.eml")
    msg = build_message(rendered, settings.newsletter, to=SAMPLE_RECIPIENT, token=token, now=now)
    target = out
    try:
        out.mkdir(parents=True, exist_ok=True)
        for target, data in ((paths.html, html.encode()), (paths.text, text.encode()), (paths.eml, msg.as_bytes())):
            target.write_bytes(data)
    except OSError as exc:
        raise FileError.from_os(exc, f"cannot write {target}", "choose a folder you can write to") from None
    return paths
