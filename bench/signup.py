"""The subscriber endpoints under load: `digest serve` (waitress) answering 200 concurrent POSTs
while 300 idle connections are held open.

Printed: how many POSTs were answered and with what, their latency (median, 95th percentile,
slowest), the server process's thread count (from /proc, sampled while the load runs) against its
--threads, and how many of the idle sockets the server closed once its --idle-timeout passed.

The POSTs are sign-ups (POST /subscribe) of distinct new addresses, each from its own client as
the publication's web server in front would forward it (X-Forwarded-For from 127.0.0.1, so the
per-client limit counts each apart): every one signs a token and writes its confirmation e-mail to
the outbox. Set BENCH_POSTS, BENCH_IDLE, BENCH_IDLE_TIMEOUT for other figures.
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
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


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


def post(port: int, n: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(
            "POST",
            "/subscribe",
            body=urlencode({"email": f"new{n:04d}@example.org", "name": f"Reader {n}", "website": ""}).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                # A documentation-range address per client (RFC 5737), as a proxy in front writes it.
                "X-Forwarded-For": f"198.51.{100 + n // 200}.{n % 200 + 1}",
            },
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

            def one(n: int) -> None:
                outcome = post(port, n)
                with lock:
                    results.append(outcome)

            sampler = threading.Thread(target=sample)
            sampler.start()
            t0 = time.perf_counter()
            clients = [threading.Thread(target=one, args=(n,)) for n in range(POSTS)]
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
        confirmations = len(list((folder / "outbox").rglob("*.eml")))

    statuses: dict[int, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = sorted(t for _, t in results)
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    print(f"digest serve (waitress, --threads {THREADS}, --idle-timeout {IDLE_TIMEOUT}s)")
    print(f"  {POSTS} concurrent sign-ups (POST /subscribe) while {IDLE} idle connections were held open")
    answered = sum(n for s, n in statuses.items() if s)
    print(f"  answered: {answered}/{POSTS}  by status: {dict(sorted(statuses.items()))}  in {wall:.2f} s")
    print(
        f"  latency: median {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"slowest {latencies[-1] * 1000:.0f} ms"
    )
    print(f"  server threads: {threads_at_start} at start, {peak[0]} at peak (wsgiref: one per connection)")
    print(f"  idle connections closed by the server: {closed}/{IDLE} within {closed_after:.1f} s of opening")
    print(f"  confirmation e-mails written: {confirmations}/{POSTS}")
    if answered != POSTS or confirmations != POSTS or closed != IDLE or peak[0] > threads_at_start + THREADS:
        sys.exit(1)


if __name__ == "__main__":
    main()
