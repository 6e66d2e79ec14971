"""Property-based tests: generated config tables and article files. Whatever the input, digest gives
a result or one of its own errors (a DigestError, which the CLI prints as one line), never another
exception. The number of examples is bounded and the examples fixed (derandomised), so `make test`
stays fast and repeatable; DIGEST_HYPOTHESIS_EXAMPLES=2000 searches harder on demand."""

from __future__ import annotations

import copy
import os
import string
import tempfile
import types
import typing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from renderdata import BASE

from digest.config import Settings, load_config, settings_from_dict
from digest.config.sections import ConfigSection, SourceSettings
from digest.errors import DigestError
from digest.pipeline import due_slot, upcoming_slot
from digest.schedule import describe_planned_runs
from digest.sources.folder import FolderSource
from digest.teaser import make_teaser

EXAMPLES = int(os.environ.get("DIGEST_HYPOTHESIS_EXAMPLES", "60"))
bounded = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MOMENT = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)


# --- config tables ---------------------------------------------------------------------------------


def _leaf_keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of the config schema (``("delivery", "smtp", "port")``), from the models."""
    out: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        args = typing.get_args(field.annotation) if isinstance(field.annotation, types.UnionType) else ()
        nested = [a for a in (field.annotation, *args) if isinstance(a, type) and issubclass(a, ConfigSection)]
        out.append((*prefix, name))
        if nested and nested[0] is not SourceSettings:
            out.extend(_leaf_keys(nested[0], (*prefix, name)))
    return out


KEYS = _leaf_keys(Settings) + [("newsletter", "titel"), ("unknown",), ("delivery", "smtp", "pasword")]
SOURCE_KEYS = list(SourceSettings.model_fields) + ["nmae"]

# Text with the characters that break things: controls, quotes, brackets, non-ASCII.
nasty_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
fragments = st.sampled_from(
    [
        "https://",
        "http://",
        "https://news.example.org",
        "news.example.org",
        "ftp://x",
        ":99999",
        '"',
        "'",
        "\r\n",
        " ",
        "/",
        "?a=1&b=2",
        "Europe/London",
        "Europe",
        "../",
        "UTC",
        "0 8 * * mon",
        "0 8 31 2 *",
        "*/0",
        "1-5",
        "60",
        "*",
        "feed",
        "folder",
        "page",
        "smtp",
        "outbox",
        "mailgun",
        "a@example.org",
        "Name <a@example.org>",
        "{issue}",
        "{",
        "content",
        "no-such-folder",
        "",
    ]
)
glued = st.lists(st.one_of(fragments, nasty_text), max_size=5).map("".join)
scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 7, 25, 65536, 10**6]),
    st.floats(),
    st.booleans(),
    glued,
    st.dates(),
    st.datetimes(),
    st.times(),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(SOURCE_KEYS + ["x"]), inner, max_size=3)
    ),
    max_leaves=6,
)
sources = st.lists(st.dictionaries(st.sampled_from(SOURCE_KEYS), toml_values, max_size=6), max_size=3)


def _put(data: dict[str, Any], key: tuple[str, ...], value: Any) -> None:
    table = data
    for part in key[:-1]:
        if not isinstance(table.get(part), dict):
            table[part] = {}
        table = table[part]
    table[key[-1]] = value


# Values near the edge for the keys whose mistakes used to pass the load and fail at run time.
EDGES: dict[str, list[Any]] = {
    "timezone": ["Europe", "Europe/London", "UTC", "Etc/GMT+14", "../etc", "", "Nowhere/City", "UTC\n"],
    "cron": ["0 8 31 2 *", "0 8 29 2 *", "0 8 1 1 mon", "0 8 * * mon", "*/0 * * * *", "0 8 13 * fri", "0 25 * * *"],
    "url": ["https://", "http://", "https://x.example.org", "https://x.example.org:0", 'https://x"y', "https://a\r\nb"],
    "number": [float("inf"), float("nan"), -0.0, 1e308, 2**63 - 1, "7", 7.0, True, 0],
    "path": ["", ".", "no-such-folder", "content", "/dev/null", "\x00", "content/../content"],
}


def _edges_for(key: str) -> list[Any]:
    if key.endswith("url"):
        return EDGES["url"]
    if key in {"timezone", "cron"}:
        return EDGES[key]
    if key.endswith(("path", "csv", "file")):
        return EDGES["path"]
    return EDGES["number"]


EDGE_KEYS = [k for k in KEYS if k[-1] in {"timezone", "cron", "lease_seconds"} or k[-1].endswith(("url", "path"))]


@st.composite
def config_tables(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["sources"] = [{"name": "articles", "kind": "folder", "path": "content"}]
    keys = st.one_of(st.sampled_from(EDGE_KEYS), st.sampled_from(KEYS))
    for key in draw(st.lists(keys, min_size=1, max_size=4)):
        _put(data, key, draw(st.one_of(st.sampled_from(_edges_for(key[-1])), toml_values)))
    if draw(st.booleans()):
        data["sources"] = draw(sources)
    return data


def _use(s: Settings) -> None:
    """What commands do with settings before any network: slots, the schedule, addresses, URLs."""
    due_slot(s, MOMENT)
    upcoming_slot(s, MOMENT)
    describe_planned_runs(s, MOMENT)
    s.newsletter.unsubscribe_link("token")
    assert s.newsletter.sender_domain
    assert s.state_url


@bounded
@given(config_tables())
def test_any_config_table_gives_settings_or_a_config_error(data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "content").mkdir()
        try:
            s = settings_from_dict(data, Path(tmp) / "digest.toml")
        except DigestError:
            return
        _use(s)


@bounded
@given(st.one_of(st.binary(max_size=200), glued.map(str.encode)))
def test_any_config_file_gives_settings_or_a_config_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digest.toml"
        path.write_bytes(raw)
        try:
            load_config(path)
        except DigestError:
            pass


# --- article files ---------------------------------------------------------------------------------

FRONT_MATTER_KEYS = ["title", "date", "updated", "url", "author", "summary", "teaser", "dek", "image"]
FRONT_MATTER_KEYS += ["image_alt", "tags", "section", "lang", "language", "draft", "id", "other"]
yaml_scalars = st.one_of(
    st.sampled_from(["2025-08-08", "2025-08-08T10:30:00+01:00", "August 8, 2025", "0001-01-01", "9999-12-31"]),
    st.sampled_from(["~", "[]", "{}", "[a, b]", "&a x", "*a", "!!binary aGk=", "'quoted'", '"x\\ty"', "|", ">-"]),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.text(alphabet=string.printable, max_size=20).map(lambda t: t.replace("\n", " ")),
)
markdown_lines = st.one_of(
    st.sampled_from(["# Head", "## Sub", "- item", "1. one", "> quote", "```", "***", "![alt](img.png)", ""]),
    st.sampled_from(["[link](https://example.org)", "<b>bold</b>", "<script>x</script>", "| a | b |", "    code"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60),
)


@st.composite
def markdown_files(draw: st.DrawFn) -> bytes:
    meta = draw(st.lists(st.tuples(st.sampled_from(FRONT_MATTER_KEYS), yaml_scalars), min_size=1, max_size=6))
    # Most files carry a usable title and date, so the other keys are reached too.
    usable = draw(st.sampled_from(["title: A title\ndate: 2025-08-08\n", "title: A title\n", ""]))
    front = usable + "".join(f"{k}: {v}\n" for k, v in meta)
    body = "\n".join(draw(st.lists(markdown_lines, max_size=8)))
    head = draw(st.sampled_from(["---\n" + front + "---\n\n", "---\n" + front, "", "\ufeff---\n" + front + "---\n"]))
    return (head + body).encode("utf-8")


@st.composite
def text_pages(draw: st.DrawFn) -> bytes:
    lines = draw(
        st.lists(
            st.one_of(
                st.sampled_from(["Headline", "July 25, 2025", "By A Writer", "25/07/2025", "", "-----"]),
                st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60),
            ),
            max_size=10,
        )
    )
    return "\n".join(lines).encode("utf-8")


@st.composite
def html_pages(draw: st.DrawFn) -> bytes:
    parts = st.one_of(
        st.sampled_from(["<html>", "<head>", "<title>T</title>", "<meta charset=x>", '<meta name="date" content="'])
        | st.sampled_from(["<article>", "<h1>Head</h1>", "<p>", "</p>", "<time datetime=2025-08-08>", "<img src=a>"])
        | st.sampled_from(["<script>", "&amp;", "&#0;", "<![CDATA[", "<!--", '<meta property="og:title" content="'])
        | st.text(max_size=30),
    )
    return "".join(draw(st.lists(parts, max_size=12))).encode("utf-8", "surrogatepass")


article_files = {
    "markdown": st.tuples(st.sampled_from([".md", ".markdown"]), markdown_files()),
    "text": st.tuples(st.just(".txt"), text_pages()),
    "html": st.tuples(st.sampled_from([".html", ".htm"]), html_pages()),
    "bytes": st.tuples(st.sampled_from([".md", ".txt", ".html"]), st.binary(max_size=200)),
}


def _collect_one(suffix: str, content: bytes) -> None:
    """One file in a folder source: an article (whose teaser can be made) or a problem, or a
    DigestError for the whole source; never another exception."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / f"article{suffix}").write_bytes(content)
        source = FolderSource(SourceSettings(name="f", kind="folder", path=folder), tz=ZoneInfo("Europe/London"))
        try:
            result = source.collect(MOMENT)
        except DigestError:
            return
        assert len(result.articles) + len(result.problems) == 1, result
        for article in result.articles:
            make_teaser(article)


@pytest.mark.parametrize("kind", list(article_files))
@bounded
@given(data=st.data())
def test_any_article_file_gives_an_article_or_a_problem(kind: str, data: st.DataObject) -> None:
    _collect_one(*data.draw(article_files[kind], label="file"))


def test_the_strategies_reach_every_config_section() -> None:
    # A guard on the generator itself: a section missing here would never be tried.
    sections = {k[0] for k in KEYS}
    assert {"newsletter", "schedule", "delivery", "fetch", "selection", "links", "render", "templates"} <= sections
    assert ("delivery", "smtp", "port") in KEYS and ("delivery", "dkim", "key_path") in KEYS


def test_a_single_tag_written_as_a_date_or_a_number_is_one_tag(tmp_path: Path) -> None:
    # Found by the markdown property above: YAML reads `tags: 2025-08-08` as a date, not a list.
    (tmp_path / "a.md").write_text("---\ntitle: A\ndate: 2025-08-08\ntags: 2025-08-08\n---\n\nBody.\n")
    (tmp_path / "b.md").write_text("---\ntitle: B\ndate: 2025-08-08\ntags: 42\n---\n\nBody.\n")
    source = FolderSource(SourceSettings(name="f", kind="folder", path=tmp_path), tz=ZoneInfo("Europe/London"))
    result = source.collect(MOMENT)
    assert [a.tags for a in result.articles] == [("2025-08-08",), ("42",)], result
