"""Rendering cost: one 12-article issue, the per-recipient personalisation, and mjml-python against
the reference JavaScript MJML compiling the same MJML, all measured in this one run.

    python bench/render.py [--runs 15] [--recipients 2000]

The JavaScript side (bench/js, installed by scripts/js-deps.sh) runs its loop inside one node
process, so node's start-up is reported apart and not counted in the ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config import SourceSettings, load_config  # noqa: E402
from digest.delivery.mime import build_message  # noqa: E402
from digest.models import Issue, IssueEntry  # noqa: E402
from digest.render.environment import make_environment  # noqa: E402
from digest.render.issue import html_bytes, issue_context, render_issue  # noqa: E402
from digest.render.mjml import compile_mjml  # noqa: E402
from digest.sources.folder import FolderSource  # noqa: E402
from digest.teaser import make_teaser  # noqa: E402
from digest.tokens import TokenSigner  # noqa: E402

JS = ROOT / "bench" / "js"


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up: template compilation, imports, caches
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def twelve_article_issue() -> tuple[Issue, object]:
    settings = load_config(ROOT / "config" / "digest.toml")
    tz = settings.newsletter.tz
    source = FolderSource(SourceSettings(name="examples", kind="folder", path=ROOT / "examples" / "content"), tz=tz)
    articles = sorted(source.read(datetime.now(tz)), key=lambda a: a.published, reverse=True)[:12]
    if len(articles) < 12:
        raise SystemExit(f"bench/render: examples/content has only {len(articles)} articles; 12 are needed")
    slot = articles[0].published + timedelta(days=1)
    entries = tuple(IssueEntry(a, make_teaser(a, settings.teaser.max_chars)) for a in articles)
    return Issue(key="2025-W33", slot=slot, window_start=slot - timedelta(days=30), entries=entries), settings


def mjml_source(issue: Issue, settings: object) -> str:
    env = make_environment(settings.templates.path)  # type: ignore[attr-defined]
    ctx = issue_context(issue, settings)  # type: ignore[arg-type]
    ctx["subject"] = env.get_template("subject.j2").render(ctx)
    ctx["preheader"] = env.get_template("preheader.j2").render(ctx)
    return env.get_template("digest.mjml.j2").render(ctx)


def javascript_mjml(source_file: Path, runs: int) -> tuple[dict | None, float | None, str]:
    node = shutil.which("node")
    if node is None:
        return None, None, "node is not installed"
    if not (JS / "node_modules" / "mjml" / "package.json").exists():
        return None, None, "the JavaScript mjml is not installed; run scripts/js-deps.sh"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [node, str(JS / "compile.js"), str(source_file), str(runs)], capture_output=True, text=True, timeout=600
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return None, None, f"node failed: {proc.stderr.strip()[:300]}"
    return json.loads(proc.stdout), wall, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--recipients", type=int, default=500)
    args = parser.parse_args()

    issue, settings = twelve_article_issue()
    env = make_environment(settings.templates.path)  # type: ignore[attr-defined]
    rendered = render_issue(issue, settings, env)  # type: ignore[arg-type]
    source = mjml_source(issue, settings)

    t_render = median_seconds(lambda: render_issue(issue, settings, env), args.runs)  # type: ignore[arg-type]
    t_compile = median_seconds(lambda: compile_mjml(source, template="digest.mjml.j2"), args.runs)

    signer = TokenSigner("bench-secret")
    nl = settings.newsletter  # type: ignore[attr-defined]
    now = datetime.now(nl.tz)
    addresses = [f"reader{i:05d}@example.org" for i in range(args.recipients)]

    def personalise_all() -> None:
        for a in addresses:
            rendered.personalise(email=a, token=signer.token(a))

    def messages_all() -> None:
        for a in addresses:
            build_message(rendered, nl, to=a, token=signer.token(a), now=now).as_bytes()

    runs_small = max(3, args.runs // 5)
    per_fill = median_seconds(personalise_all, runs_small) / len(addresses)
    per_message = median_seconds(messages_all, runs_small) / len(addresses)

    print(
        f"issue: 12 articles, HTML {len(rendered.html.encode()):,} bytes ({html_bytes(rendered):,} with markers at their longest; limit {settings.render.max_html_bytes:,})"
    )  # type: ignore[attr-defined]
    print(f"render one issue (Jinja2 + mjml-python + text twin): {t_render * 1e3:8.2f} ms  (median of {args.runs})")
    print(f"  of which mjml-python compile:                      {t_compile * 1e3:8.2f} ms")
    print(f"per recipient, token + marker substitution:          {per_fill * 1e6:8.1f} µs")
    print(
        f"per recipient, token + full MIME message as bytes:   {per_message * 1e6:8.1f} µs  ({args.recipients} recipients)"
    )
    print(
        f"  compiling per recipient instead of substituting would cost {t_render / per_fill:,.0f}x the substitution "
        f"({t_render * 1e3:.2f} ms vs {per_fill * 1e6:.0f} µs per recipient)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        source_file = Path(tmp) / "issue.mjml"
        source_file.write_text(source, encoding="utf-8")
        js, wall, why = javascript_mjml(source_file, args.runs)
    if js is None:
        print(f"JavaScript mjml: skipped ({why})")
        return
    js_s = js["median_ms"] / 1e3
    print(
        f"JavaScript mjml {js['version']} compile of the same MJML:    {js['median_ms']:8.2f} ms  (median of {js['runs']} in one node process; "
        f"{js['errors']} validation errors; HTML {js['html_bytes']:,} bytes)"
    )
    print(f"  node start-up + load + {js['runs'] + 1} compiles, wall: {wall * 1e3:.0f} ms")
    print(
        f"ratio mjml-python / JavaScript mjml (compile only): {t_compile / js_s:.2f}  "
        f"(mjml-python is {js_s / t_compile:.1f}x {'faster' if t_compile < js_s else 'slower'})"
    )


if __name__ == "__main__":
    main()
