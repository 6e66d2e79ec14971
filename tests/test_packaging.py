"""The package as a user gets it: the wheel, installed by the pip that ``python -m venv`` ships.

One slow test (it makes a virtual environment and installs the wheel's dependencies): built from a
fresh copy of the sources, so no earlier build/ folder can stand in for a file the wheel lacks, and
run from a folder outside the repository, so nothing can be read from the source tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from conftest import ROOT, write_sample_config
from httpserver import Reply, TestServer

AS_OF = "2025-08-11T09:00"

# What setuptools reads to build the wheel; nothing else of the repository goes into it.
BUILD_INPUTS = ("pyproject.toml", "README.md", "digest", "templates")

# A review on a web page, dated inside the week before AS_OF, long enough for trafilatura to
# recognise as the article among the page's navigation and footer.
REVIEW_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>The tide tables of Kessingford harbour | The Quayside Gazette</title>
<meta property="og:title" content="The tide tables of Kessingford harbour">
<meta property="article:published_time" content="2025-08-09T10:00:00+00:00">
</head><body>
<nav><a href="/">Home</a> <a href="/news">News</a> <a href="/about">About us</a></nav>
<article>
<h1>The tide tables of Kessingford harbour</h1>
<p>The harbour master has printed the tide tables by hand every winter since 1952, and this year
the whole print run sold out at the chandlery within a single afternoon.</p>
<p>Each booklet lists the high and low waters for every day of the coming year, with the heights
in feet and in metres, and a drawing of the quay on the cover by a pupil of the village school.</p>
<p>Fishermen still trust the booklet over the apps on their telephones, the harbour master says,
because the apps do not know about the sandbank that moves a little further east every spring.</p>
<p>A second printing is planned for March, when the new drawing competition closes and the
lifeboat crew has checked the figures against their own logbooks from the past twelve months.</p>
</article>
<footer>Copyright The Quayside Gazette. All rights reserved.</footer>
</body></html>
"""


def _run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _build_wheel(into: Path) -> Path:
    sources = into / "sources"
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, sources / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            sources.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, sources / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-q", "-w", into, sources, cwd=into)
    (wheel,) = into.glob("digest-*.whl")
    return wheel


def _files_the_wheel_should_hold() -> set[str]:
    def under(folder: Path, prefix: str) -> set[str]:
        return {
            f"{prefix}/{path.relative_to(folder).as_posix()}"
            for path in folder.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }

    return under(ROOT / "digest", "digest") | under(ROOT / "templates", "digest/templates")


def test_the_installed_wheel_renders_the_sample_issue_and_extracts_a_web_page(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    wheel = _build_wheel(tmp_path / "wheel")
    with zipfile.ZipFile(wheel) as archive:
        missing = _files_the_wheel_should_hold() - set(archive.namelist())
    assert not missing, f"the wheel lacks {sorted(missing)}: list their packages and data in pyproject.toml"

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    # The venv's own pip, not upgraded: the one a user following the README has.
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    installed = venv / "bin" / "digest"

    # The sample issue, as the installed package renders it, is the one the source tree renders
    # (the same state, so the same unsubscribe tokens).
    sample = tmp_path / "sample"
    sample.mkdir()
    config = write_sample_config(sample)
    said = _run(installed, "--config", config, "build", "--as-of", AS_OF, "--out", "installed", cwd=sample)
    assert "issue 2025-W33: 5 articles" in said, said
    _run(sys.executable, "-m", "digest", "--config", config, "build", "--as-of", AS_OF, "--out", "source", cwd=sample)
    for name in ("issue.html", "issue.txt"):
        assert (sample / "installed" / name).read_text() == (sample / "source" / name).read_text(), name

    # A web page: fetched over HTTP and extracted by trafilatura (and jusText, which needs lxml_html_clean).
    with TestServer({"/tide-tables": lambda request: Reply(body=REVIEW_PAGE.encode())}) as server:
        config = write_config(f'\n[[sources]]\nname = "gazette"\nkind = "page"\nurl = "{server.url("/tide-tables")}"\n')
        said = _run(installed, "--config", config, "ingest", cwd=tmp_path)
    assert "gazette: 1 article (1 new" in said, said
    _run(installed, "--config", config, "build", "--no-ingest", "--as-of", AS_OF, "--out", "page", cwd=tmp_path)
    text = (tmp_path / "page" / "issue.txt").read_text()
    assert "The tide tables of Kessingford harbour" in text
    assert "the whole print run sold out at the chandlery" in " ".join(text.split())
