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
from digest.models import RenderedIssue
from digest.render.issue import personalise
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
    """Write issue.html, issue.txt and a sample issue.eml (addressed to a sample reader)."""
    out.mkdir(parents=True, exist_ok=True)
    token = signer.token(SAMPLE_RECIPIENT)
    html, text = personalise(
        rendered, email=SAMPLE_RECIPIENT, token=token, name=settings.newsletter.recipient_name(None)
    )
    paths = BuildOutput(out / "issue.html", out / "issue.txt", out / "issue.eml")
    paths.html.write_text(html, encoding="utf-8")
    paths.text.write_text(text, encoding="utf-8")
    msg = build_message(rendered, settings.newsletter, to=SAMPLE_RECIPIENT, token=token, now=now)
    paths.eml.write_bytes(msg.as_bytes())
    return paths
