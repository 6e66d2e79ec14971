"""MJML → HTML with mjml-python (a Rust port of MJML)."""

from __future__ import annotations

from mjml import mjml2html

from digest.errors import RenderError


def compile_mjml(source: str, *, template: str) -> str:
    """Compile MJML markup; an error names the template it came from."""
    try:
        return mjml2html(source, disable_comments=True)
    except ValueError as exc:
        raise RenderError(f"template {template}: MJML did not compile: {exc}") from None
