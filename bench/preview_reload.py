"""How soon an editor sees a template change: the live preview against re-running `digest build`.

Opens `digest preview`'s page in headless Chromium (Debian's /usr/bin/chromium through
playwright), edits the subject template on disk N times and measures, for each edit, the time until
the open page shows the new subject. The peer, measured in the same run, is the way without the
preview: run `digest build` and reload the written file in the browser. The issue's budget is one
second from the change to the updated page.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.web.preview import Preview, PreviewApp, local_hosts  # noqa: E402
from digest.web.wsgi import make_wsgi_server  # noqa: E402

EDITS = 10
BUDGET = 1.0
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def sample_config(folder: Path) -> Path:
    text = (ROOT / "config" / "digest.toml").read_text()
    text = text.replace('path = "../examples/content"', f'path = "{ROOT / "examples" / "content"}"').replace(
        'path = "../out/outbox"', 'path = "outbox"'
    )
    text = text.replace('csv = "subscribers.csv"', f'csv = "{ROOT / "config" / "subscribers.csv"}"')
    cfg = folder / "digest.toml"
    cfg.write_text(text + '\n[templates]\npath = "theme"\n')
    (folder / "theme").mkdir()
    (folder / "theme" / "subject.j2").write_text("Edit 0: {{ entries|length }} articles")
    return cfg


def main() -> None:
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    try:
        cfg = sample_config(folder)
        preview = Preview(cfg, as_of=datetime.fromisoformat("2025-08-11T09:00:00+01:00"))
        preview.refresh()
        app = PreviewApp(preview)
        server = make_wsgi_server(app, "127.0.0.1", 0)
        app.allowed_hosts = local_hosts("127.0.0.1", server.server_port)
        stop = threading.Event()
        for target, args in ((server.serve_forever, ()), (preview.watch, (stop,))):
            threading.Thread(target=target, args=args, daemon=True).start()
        live: list[float] = []
        rebuild: list[float] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{server.server_port}/")
            for i in range(1, EDITS + 1):
                time.sleep(0.3)  # let the page settle into its long poll, as an editor's would be
                want = f"Edit {i}:"
                start = time.perf_counter()
                (folder / "theme" / "subject.j2").write_text(f"Edit {i}: {{{{ entries|length }}}} articles")
                page.wait_for_function(
                    "want => (document.getElementById('subject')?.textContent || '').startsWith(want)",
                    arg=want,
                    timeout=30_000,
                    polling=10,
                )
                live.append(time.perf_counter() - start)

            # The peer: re-run `digest build` and reload the written HTML.
            out = folder / "out"
            other = browser.new_page(viewport={"width": 1280, "height": 900})
            for i in range(1, 4):
                start = time.perf_counter()
                (folder / "theme" / "subject.j2").write_text(f"Build {i}: {{{{ entries|length }}}} articles")
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "digest",
                        "--config",
                        str(cfg),
                        "build",
                        "--no-ingest",
                        "--as-of",
                        "2025-08-11T09:00",
                        "--out",
                        str(out),
                    ],
                    check=True,
                    capture_output=True,
                    cwd=ROOT,
                )
                other.goto((out / "issue.html").as_uri())
                rebuild.append(time.perf_counter() - start)
            browser.close()
        stop.set()
        server.shutdown()
        server.server_close()
        preview.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    med, worst = statistics.median(live), max(live)
    peer = statistics.median(rebuild)
    print(f"template edit → open preview page updated ({EDITS} edits, sample newsletter, 5 articles)")
    print(
        f"  live preview:          median {med * 1000:6.0f} ms   max {worst * 1000:6.0f} ms   budget {BUDGET * 1000:.0f} ms"
    )
    print(f"  peer: digest build + reload: median {peer * 1000:6.0f} ms ({len(rebuild)} runs)")
    print(f"  ratios: worst/budget {worst / BUDGET:.2f}   peer/live median {peer / med:.1f}x")


if __name__ == "__main__":
    main()
