"""Golden files: the rendered HTML, text and subject of fixed issues, compared byte for byte.

A change to the theme or to the MJML compiler shows up here as a diff to review. Regenerate on
purpose with `make golden` (DIGEST_UPDATE_GOLDEN=1), then read the diff before committing it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
from renderdata import golden_issue, make_settings

from digest.render.issue import render_issue

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("DIGEST_UPDATE_GOLDEN") == "1"

VARIANTS = {
    "default": {},
    "full": {
        "newsletter": {
            "logo_url": "https://news.example.org/img/logo.png",
            "logo_alt": "The Test Weekly",
            "editor_note": "Welcome back after the summer break.\n\nThis week: the festival, a new café and a letter.",
        },
        "links": {"utm": True, "utm_content": "article-{position}", "skip_domains": ["archive.example.org"]},
    },
}


def _compare(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"{path} is missing; run `make golden` to create it")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True), actual.splitlines(keepends=True), f"golden/{name}", "rendered", n=2
            )
        )
        pytest.fail(
            f"{name} differs from its golden file (run `make golden` if the change is intended):\n{diff[:6000]}"
        )


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_golden_rendering(variant: str, tmp_path: Path) -> None:
    rendered = render_issue(golden_issue(), make_settings(tmp_path, VARIANTS[variant]))
    # One line per tag keeps the HTML golden file's diffs readable.
    _compare(f"{variant}.html", rendered.html.replace("><", ">\n<") + "\n")
    _compare(f"{variant}.txt", rendered.text)
    _compare(f"{variant}.subject.txt", f"{rendered.subject}\n{rendered.preheader}\n")
