"""The subscriber endpoints under load: `digest serve` (waitress) answering 200 concurrent POSTs
while 300 idle connections are held open.

Printed: how many POSTs were answered and with what, their latency (median, 95th percentile,
slowest), the server process's thread count (from /proc, sampled while the load runs) against its
--threads, and how many of the idle sockets the server closed once its --idle-timeout passed.

The POSTs are one-click unsubscribes (RFC 8058) with valid signed tokens, each changing a row in
the SQLite state database; POST /subscribe replaces them once sign-up exists. Set BENCH_POSTS,
BENCH_IDLE, BENCH_IDLE_TIMEOUT for other figures.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config import load_config  # noqa: E402
from digest.pipeline import token_signer  # noqa: E402
from digest.store import Store  # noqa: E402

POSTS = int(os.environ.get("BENCH_POSTS", "200"))
IDLE = int(os.environ.get("BENCH_IDLE", "300"))
IDLE_TIMEOUT = int(os.environ.get("BENCH_IDLE_TIMEOUT", "4"))
THREADS = 8


def config(folder: Path) -> Path:
    (folder / "content").mkdir()
    (folder / "subscribers.csv").write_text("email\n" + "".join(f"r{i:04d}@example.org\n" for i in range(POSTS)))
    path = folder / "digest.toml"
    path.write_text(
        textwrap.dedent(
            """
            [newsletter]
            title = "Bench"
            sender = "Bench <digest@example.org>"
            site_url = "https://example.org"
            postal_address = "1 Bench Street"

            [[sources]]
            name = "a"
            kind = "folder"
            path = "content"

            [schedule]
            cron = "0 8 * * mon"

            [delivery]
            backend = "outbox"

            [delivery.outbox]
            path = "outbox"

            [subscribers]
            csv = "subscribers.csv"
            """
        )
    )
    return path


def server_threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def post(port: int, token: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            "POST",
            f"/unsubscribe?token={token}",
            body=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        r = conn.getresponse()
        r.read()
        return r.status, time.perf_counter() - t0
    except OSError:
        return 0, time.perf_counter() - t0
    finally:
        conn.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cfg = config(folder)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "digest",
                "--config",
                str(cfg),
                "subscribers",
                "import",
                str(folder / "subscribers.csv"),
            ],
            check=True,
            capture_output=True,
            env=env,
        )
        settings = load_config(cfg)
        with Store(settings.state_url) as store:
            signer = token_signer(settings, store)
            tokens = [signer.token(f"r{i:04d}@example.org") for i in range(POSTS)]
        server = subprocess.Popen(
            [sys.executable, "-m", "digest", "--config", str(cfg), "serve", "--port", "0"]
            + ["--threads", str(THREADS), "--idle-timeout", str(IDLE_TIMEOUT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            port = int(re.search(r":(\d+) ", line).group(1))  # type: ignore[union-attr]
            threads_at_start = server_threads(server.pid)
            idle = [socket.create_connection(("127.0.0.1", port), timeout=IDLE_TIMEOUT * 10) for _ in range(IDLE)]
            opened = time.monotonic()
            results: list[tuple[int, float]] = []
            lock = threading.Lock()
            peak = [server_threads(server.pid)]
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], server_threads(server.pid))
                    time.sleep(0.01)

            def one(token: str) -> None:
                outcome = post(port, token)
                with lock:
                    results.append(outcome)

            sampler = threading.Thread(target=sample)
            sampler.start()
            t0 = time.perf_counter()
            clients = [threading.Thread(target=one, args=(t,)) for t in tokens]
            for c in clients:
                c.start()
            for c in clients:
                c.join()
            wall = time.perf_counter() - t0
            done.set()
            sampler.join()

            # The idle sockets: the server should close each once the timeout (checked every
            # timeout/4) has passed.
            closed = 0
            deadline = opened + IDLE_TIMEOUT * 3
            for s in idle:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    closed += s.recv(1) == b""
                except ConnectionResetError:
                    closed += 1
                except TimeoutError:
                    pass
                s.close()
            closed_after = time.monotonic() - opened
        finally:
            server.terminate()
            server.wait(timeout=30)

    statuses: dict[int, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = sorted(t for _, t in results)
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    print(f"digest serve (waitress, --threads {THREADS}, --idle-timeout {IDLE_TIMEOUT}s)")
    print(f"  {POSTS} concurrent POST /unsubscribe while {IDLE} idle connections were held open")
    answered = sum(n for s, n in statuses.items() if s)
    print(f"  answered: {answered}/{POSTS}  by status: {dict(sorted(statuses.items()))}  in {wall:.2f} s")
    print(
        f"  latency: median {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"slowest {latencies[-1] * 1000:.0f} ms"
    )
    print(f"  server threads: {threads_at_start} at start, {peak[0]} at peak (wsgiref: one per connection)")
    print(f"  idle connections closed by the server: {closed}/{IDLE} within {closed_after:.1f} s of opening")
    if answered != POSTS or closed != IDLE or peak[0] > threads_at_start + THREADS:
        sys.exit(1)


if __name__ == "__main__":
    main()
