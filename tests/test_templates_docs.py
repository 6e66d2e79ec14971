"""docs/templates.md against what rendering really passes; errors in a user's partial; copying a
default template to start from."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
import pytest
from conftest import ROOT
from renderdata import golden_issue, make_article, make_issue, make_settings

import digest.render.issue as render_module
from digest.errors import RenderError
from digest.render.environment import make_environment
from digest.render.issue import render_issue


def documented_names() -> set[str]:
    text = (ROOT / "docs" / "templates.md").read_text()
    part = text.split("## What a template can use", 1)[1]
    return {m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", part, flags=re.MULTILINE)}


def passed_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> set[str]:
    contexts: list[dict[str, Any]] = []
    real = render_module._render

    def recording(env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
        contexts.append(dict(context))
        return real(env, name, context)

    monkeypatch.setattr(render_module, "_render", recording)
    settings = make_settings(
        tmp_path,
        {"newsletter": {"logo_url": "https://img.example.org/logo.png"}},
    )
    render_issue(golden_issue(), settings)
    names: set[str] = set()
    for ctx in contexts:
        for key, value in ctx.items():
            names.add(key)
            if key in ("issue", "logo") and isinstance(value, dict):
                names |= {f"{key}.{k}" for k in value}
            if key == "entries":
                names |= {f"entry.{k}" for e in value for k in e}
            if key == "sections":
                names |= {f"section.{k}" for s in value for k in s}
    own_filters = set(make_environment().filters) - set(jinja2.defaults.DEFAULT_FILTERS)
    return names | own_filters


def test_templates_md_lists_exactly_what_render_passes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    passed = passed_names(monkeypatch, tmp_path)
    documented = documented_names()
    assert passed - documented == set(), "passed to templates but not in docs/templates.md"
    assert documented - passed == set(), "in docs/templates.md but not passed to templates"
    # What the issue asked for by name.
    assert {"entry.source", "entry.tags", "entry.position", "entry.image", "newsletter"} <= passed


def test_each_entry_carries_its_source_name_and_tags(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    (mine / "partials").mkdir(parents=True)
    (mine / "digest.txt.j2").write_text(
        "{% for entry in entries %}{{ entry.position }} {{ entry.source }} [{{ entry.tags|join(', ') }}]\n{% endfor %}"
        "{{ unsubscribe_url }} {{ newsletter.postal_address }}\n"
    )
    issue = make_issue(
        [make_article(1, source="harbour-feed", tags=("events", "music")), make_article(2, source="archive")]
    )
    text = render_issue(issue, make_settings(tmp_path, {"templates": {"path": str(mine)}})).text
    assert "1 harbour-feed [events, music]\n2 archive []\n" in text


def test_an_error_in_an_overridden_partial_names_the_partial_and_its_line(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    (mine / "partials").mkdir(parents=True)
    partial = mine / "partials" / "article.mjml.j2"
    partial.write_text(
        "<mj-section>\n<mj-column>\n<mj-text>{{ entry.nope.deeper }}</mj-text>\n</mj-column>\n</mj-section>\n"
    )
    with pytest.raises(RenderError) as err:
        render_issue(golden_issue(), make_settings(tmp_path, {"templates": {"path": str(mine)}}))
    assert str(err.value) == f"template {partial}, line 3: 'dict object' has no attribute 'nope'"
