"""Rendering: Jinja2 templates → MJML → HTML, a plain-text twin, a subject, and the MIME message."""

from digest.render.issue import fit_issue, render_issue

__all__ = ["fit_issue", "render_issue"]
