"""Delivery throughput against Postfix's own load tools, and the memory of a streamed dry run.

1. 20,000 recipients of a ~40 KB issue sent by `digest send` over SMTP to Postfix's smtp-sink
   on 127.0.0.1; then smtp-source sends the same number of messages of the same size over the
   same number of connections to the same sink. That is one round; three rounds run one after
   another (BENCH_ROUNDS), each digest send from the same state (a fresh issue), so a machine
   whose speed drifts is measured in pairs close in time. Printed: each round's ratio, both
   rates of the round with the median ratio, and the peak memory of our sending process.
   Then `digest send --workers 2` sends the same number to the same sink (a fresh issue), and
   its rate is printed against the one process's. Where the time goes is printed too: each
   command's CPU time against its wall time, the sink's CPU, the commits `digest -v send`
   reports and the seconds in them, and what one fdatasync costs on the disk the state is on.
2. A `digest send --dry-run` over 1,000,000 subscribers (every message rendered, none kept),
   whose peak memory is printed next to that of merely loading all subscriber rows into a list;
   on SQLite, and on PostgreSQL too when run under scripts/postgres.sh
   (`bash scripts/postgres.sh .venv/bin/python bench/send.py`).

smtp-sink and smtp-source come from Debian's postfix package, fetched by
scripts/postfix-tools.sh into bench/.postfix (apt-get download + dpkg -x; no daemon started).
Set BENCH_RECIPIENTS / BENCH_DRY_RUN to other counts for a quicker look, and BENCH_PARTS=send or
BENCH_PARTS=dry-run to run only one of the two parts (default: both).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config import load_config  # noqa: E402
from digest.delivery.mime import MessageTemplate  # noqa: E402
from digest.pipeline import build_issue, due_slot, ingest  # noqa: E402
from digest.store import Store  # noqa: E402

RECIPIENTS = int(os.environ.get("BENCH_RECIPIENTS", "20000"))
DRY_RUN = int(os.environ.get("BENCH_DRY_RUN", "1000000"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "4"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
if ROUNDS < 1:
    raise SystemExit(f"BENCH_ROUNDS={ROUNDS}: give at least 1 (rounds of digest send and smtp-source)")
PARTS = os.environ.get("BENCH_PARTS", "send,dry-run").split(",")
AS_OF = "2025-08-11T09:00"
NOW = datetime(2025, 8, 11, 9, 0, tzinfo=timezone.utc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Starts the measured command and reports its own rusage. Linux carries the peak RSS of the
# memory a process had before exec() into its ru_maxrss, and a child started by a process
# (fork or vfork) begins with that process's memory: measured straight from this bench, which
# holds a million rows after filling the database, `python -c pass` reports this bench's peak.
# Started from this small launcher, the command's ru_maxrss is its own.
LAUNCHER = """
import os, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{time.perf_counter() - t0} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""


def run_measured(args: list[str], env: dict[str, str]) -> tuple[float, float, str, str, float]:
    """(seconds, peak RSS in MB, stdout, stderr, CPU seconds) of one child process (its own
    rusage, from wait4 in LAUNCHER)."""
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.NamedTemporaryFile("r") as measured,
    ):
        code = subprocess.call(
            [sys.executable, "-c", LAUNCHER, measured.name, *args], stdout=out, stderr=err, env=env, text=True
        )
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        if code != 0:
            raise SystemExit(f"{' '.join(args[:6])}… failed ({code}): {stderr.strip()[-500:]}")
        elapsed, maxrss_kb, cpu = (float(v) for v in measured.read().split())
    return elapsed, maxrss_kb / 1024, stdout, stderr, cpu


@dataclass
class Round:
    """One digest send and the smtp-source run right after it."""

    ours_s: float
    ours_mb: float
    ours_err: str
    ours_cpu: float
    src_s: float
    src_cpu: float

    @property
    def ratio(self) -> float:
        return self.src_s / self.ours_s  # (the same count of messages: rates in inverse)


def fdatasync_latency(folder: Path, n: int = 300) -> float:
    """Seconds one small overwrite + fdatasync takes on the disk under ``folder`` (the median)."""
    path = folder / "fdatasync.probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    times = []
    try:
        for i in range(n):
            t0 = time.perf_counter()
            os.pwrite(fd, b"x" * 512, (i % 64) * 4096)
            os.fdatasync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return sorted(times)[n // 2]


def stop_sink(sink: subprocess.Popen[bytes]) -> float:
    """Stop smtp-sink; returns the CPU seconds it used."""
    sink.terminate()
    _, status, usage = os.wait4(sink.pid, 0)
    sink.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


COMMITS = re.compile(r"(\d+) outcomes and marks made durable in (\d+) commits, ([\d.]+) s in them")


def commit_figures(stderr: str) -> str:
    m = COMMITS.search(stderr)
    if m is None:
        return "commits not reported"
    items, commits, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
    return f"{commits} commits ({items / commits:.1f} outcomes and marks each), {secs:.1f} s in them"


def write_newsletter(folder: Path, port: int, articles: int) -> Path:
    content = folder / "content"
    content.mkdir(parents=True)
    para = (
        "The harbour commission met on Tuesday to weigh the cost of dredging the inner basin against the "
        "loss of winter berths, and the debate ran well past its allotted hour. "
    )
    for i in range(articles):
        (content / f"a{i:02d}.md").write_text(
            f'---\ntitle: "Article {i}: what the week held for the quayside, the market and the town"\n'
            f"date: 2025-08-{(i % 9) + 2:02d}T10:00:00+01:00\nurl: https://news.example.org/a{i}\n"
            f'author: "Reporter {i}"\nsection: "{["News", "Culture", "Sport"][i % 3]}"\n---\n\n'
            + (para * 3 + "\n\n")
            * 4
        )
    cfg = folder / "digest.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            [newsletter]
            title = "Bench Weekly"
            sender = "Bench Weekly <digest@news.example.org>"
            site_url = "https://news.example.org"
            postal_address = "1 Bench Street"

            [[sources]]
            name = "articles"
            kind = "folder"
            path = "content"

            [selection]
            window_days = 7
            max_articles = {articles}

            [teaser]
            max_chars = 600

            [delivery]
            backend = "smtp"

            [delivery.smtp]
            host = "127.0.0.1"
            port = {port}
            security = "none"
            connections = {CONNECTIONS}

            [delivery.pace]
            messages_per_connection = 1000
            """
        )
    )
    return cfg


def add_subscribers(store: Store, n: int) -> None:
    store.subscribers.add_new(((f"reader{i:07d}@example.org", None) for i in range(n)), now=NOW)


def main() -> None:
    tools = Path(subprocess.check_output(["bash", str(ROOT / "scripts" / "postfix-tools.sh")], text=True).strip())
    env = dict(os.environ, LD_LIBRARY_PATH=str(tools / "usr" / "lib" / "postfix"))
    env.pop("DIGEST_CONFIG", None)
    sink_bin, source_bin = tools / "usr/sbin/smtp-sink", tools / "usr/sbin/smtp-source"
    digest = [sys.executable, "-m", "digest"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        cfg = write_newsletter(work / "send", port, articles=10)
        if "send" in PARTS:
            send_part(work, cfg, port, sink_bin, source_bin, env, digest)

        # --- dry run over a million subscribers, streamed, on each database ---------------------
        databases = [("SQLite", f"sqlite:///{work / 'million.sqlite3'}")]
        if os.environ.get("DIGEST_TEST_DATABASE_URL"):  # scripts/postgres.sh sets it
            databases.append(("PostgreSQL", os.environ["DIGEST_TEST_DATABASE_URL"]))
        if "dry-run" in PARTS:
            for label, url in databases:
                dry_run_on(work, cfg, label, url, env, digest)


def send_part(
    work: Path, cfg: Path, port: int, sink_bin: Path, source_bin: Path, env: dict[str, str], digest: list[str]
) -> None:
    """Part 1: digest send against smtp-source, one process and --workers, to smtp-sink."""
    settings = load_config(cfg)
    store = Store(settings.state_url)
    ingest(settings, store, now=NOW)
    add_subscribers(store, RECIPIENTS)
    built = build_issue(settings, store, due_slot(settings, NOW))
    template = MessageTemplate(built.rendered, settings.newsletter)
    size = len(
        template.render(to="reader0000001@example.org", token="x" * 60, date=NOW, message_id=template.new_message_id())
    )
    store.close()

    sync = fdatasync_latency(work)
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    # Each round sends the issue afresh: from the state as it was before the first send.
    state = Path(settings.state_url.removeprefix("sqlite:///"))
    pristine = work / "pristine.sqlite3"
    shutil.copyfile(state, pristine)
    source = [
        str(source_bin),
        "-d",
        "-s",
        str(CONNECTIONS),
        "-l",
        str(size),
        "-m",
        str(RECIPIENTS),
        "-f",
        "digest@news.example.org",
        "-t",
        "reader@example.org",
        f"127.0.0.1:{port}",
    ]
    rounds: list[Round] = []
    sink = subprocess.Popen([str(sink_bin), *user, f"127.0.0.1:{port}", "256"], env=env)
    try:
        time.sleep(0.3)
        for _ in range(ROUNDS):
            for leftover in (state.with_name(state.name + "-wal"), state.with_name(state.name + "-shm")):
                leftover.unlink(missing_ok=True)
            shutil.copyfile(pristine, state)
            ours = run_measured([*digest, "--config", str(cfg), "-v", "send", "--as-of", AS_OF], env)
            if f"sent: {RECIPIENTS} delivered" not in ours[2]:
                raise SystemExit(f"digest send did not deliver everything: {ours[2].strip()}")
            src = run_measured(source, env)
            rounds.append(Round(ours[0], ours[1], ours[3], ours[4], src[0], src[4]))
    finally:
        sink_cpu = stop_sink(sink)
    # The round with the median ratio stands for the run; every round is printed.
    ranked = sorted(rounds, key=lambda r: r.ratio)
    middle = ranked[len(ranked) // 2]
    ours_s, ours_mb, ours_err, ours_cpu, src_s, src_cpu = (
        middle.ours_s,
        max(r.ours_mb for r in rounds),
        middle.ours_err,
        middle.ours_cpu,
        middle.src_s,
        middle.src_cpu,
    )
    ours_rate, src_rate = RECIPIENTS / ours_s, RECIPIENTS / src_s
    workers_rate, workers_cpu, workers_sink_cpu = send_with_workers(work, cfg, port, sink_bin, user, env)
    print(
        f"send: {RECIPIENTS} recipients, {size / 1000:.1f} KB messages, {CONNECTIONS} connections to smtp-sink on 127.0.0.1"
    )
    print(f"  digest send (whole command: start, ledger, fast path, SMTP): {ours_s:.1f} s, {ours_rate:.0f} messages/s")
    print(f"  smtp-source (same size, count, connections):                {src_s:.1f} s, {src_rate:.0f} messages/s")
    print(
        f"  ratio digest / smtp-source: {ours_rate / src_rate:.2f} (the median of {len(rounds)} rounds, each digest "
        f"send followed by smtp-source: {', '.join(f'{r.ratio:.2f}' for r in rounds)})"
    )
    print(
        f"  CPU time: digest send {ours_cpu:.1f} s ({ours_cpu / RECIPIENTS * 1e6:.0f} us per message), smtp-source {src_cpu:.1f} s"
    )
    print(f"  digest send peak memory: {ours_mb:.0f} MB (the highest of the rounds)")
    print(
        f"  digest send --workers {WORKERS} (same recipients, a fresh issue): {RECIPIENTS / workers_rate:.1f} s, "
        f"{workers_rate:.0f} messages/s, {workers_rate / ours_rate:.2f}x one process"
    )
    workers_s = RECIPIENTS / workers_rate
    if os.environ.get("DIGEST_TEST_DATABASE_URL"):  # scripts/postgres.sh sets it
        one_pg, _, _ = send_with_workers(work, cfg, port, sink_bin, user, env, state_url=pg_schema("one"), workers=1)
        many_pg, many_cpu, _ = send_with_workers(work, cfg, port, sink_bin, user, env, state_url=pg_schema("many"))
        print(
            f"  on PostgreSQL: one process {one_pg:.0f} messages/s, --workers {WORKERS} {many_pg:.0f} messages/s, "
            f"{many_pg / one_pg:.2f}x ({many_cpu:.1f} s CPU in all)"
        )
    print(f"  where the time goes ({os.cpu_count()} cores; smtp-sink shares them):")
    print(
        f"    digest send: {ours_s:.1f} s wall, {ours_cpu:.1f} s CPU ({ours_cpu / ours_s:.0%} of one core); "
        f"{commit_figures(ours_err)}; one fdatasync on this disk: {sync * 1e6:.0f} us"
    )
    print(
        f"    digest send --workers {WORKERS}: {workers_s:.1f} s wall, {workers_cpu:.1f} s CPU in all "
        f"({workers_cpu / workers_s:.0%} of one core); smtp-sink meanwhile {workers_sink_cpu:.1f} s CPU "
        f"(with one process: {sink_cpu / len(rounds):.1f} s a round, with smtp-source included)"
    )


def send_with_workers(
    work: Path,
    cfg: Path,
    port: int,
    sink_bin: Path,
    user: list[str],
    env: dict[str, str],
    *,
    state_url: str | None = None,
    workers: int = WORKERS,
) -> tuple[float, float, float]:
    """Messages per second of `digest send --workers N` to the same sink, on its own state (a
    SQLite file unless ``state_url``); the CPU seconds of all its processes; the sink's CPU
    seconds meanwhile."""
    wcfg = work / "send" / f"workers-{workers}.toml"
    url = state_url or f"sqlite:///{work / f'workers-{workers}.sqlite3'}"
    wcfg.write_text(cfg.read_text() + f'\n[state]\nurl = "{url}"\n')
    wsettings = load_config(wcfg)
    with Store(wsettings.state_url) as wstore:
        ingest(wsettings, wstore, now=NOW)
        add_subscribers(wstore, RECIPIENTS)
    sink = subprocess.Popen([str(sink_bin), *user, f"127.0.0.1:{port}", "256"], env=env)
    try:
        time.sleep(0.3)
        secs, _, out, err, cpu = run_measured(
            [
                sys.executable,
                "-m",
                "digest",
                "--config",
                str(wcfg),
                "send",
                "--as-of",
                AS_OF,
                "--workers",
                str(workers),
            ],
            env,
        )
    finally:
        sink_cpu = stop_sink(sink)
    if f"{RECIPIENTS} delivered" not in out:
        raise SystemExit(f"digest send --workers did not deliver everything: {out.strip()} {err.strip()}")
    return RECIPIENTS / secs, cpu, sink_cpu


def pg_schema(name: str) -> str:
    """A fresh schema of the PostgreSQL database scripts/postgres.sh started, as a state URL."""
    import sqlalchemy as sa

    server = os.environ["DIGEST_TEST_DATABASE_URL"]
    schema = f"bench_{name}"
    engine = sa.create_engine(server)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in server else "?"
    return f"{server}{sep}options=-csearch_path%3D{schema}"


def dry_run_on(work: Path, cfg: Path, label: str, url: str, env: dict[str, str], digest: list[str]) -> None:
    mcfg = work / "send" / "million.toml"
    mcfg.write_text(cfg.read_text() + f'\n[state]\nurl = "{url}"\n')
    msettings = load_config(mcfg)
    mstore = Store(msettings.state_url)
    ingest(msettings, mstore, now=NOW)
    t0 = time.perf_counter()
    add_subscribers(mstore, DRY_RUN)
    filled = time.perf_counter() - t0
    mstore.close()
    dry_s, dry_mb, out, _, _ = run_measured(
        [*digest, "--config", str(mcfg), "send", "--dry-run", "--as-of", AS_OF], env
    )
    if f"would go to {DRY_RUN} subscribers" not in out:
        raise SystemExit(f"dry run did not count everyone: {out.strip()}")
    load = (
        "import sys; from digest.store import Store; rows = Store(sys.argv[1]).subscribers.active_recipients(); "
        "print(len(rows))"
    )
    load_s, load_mb, out, _, _ = run_measured([sys.executable, "-c", load, msettings.state_url], env)
    print(f"dry run on {label}: {DRY_RUN} subscribers (database filled in {filled:.0f} s)")
    print(
        f"  digest send --dry-run (renders every message, keeps none): {dry_s:.0f} s, {DRY_RUN / dry_s:.0f} messages/s, peak memory {dry_mb:.0f} MB"
    )
    print(f"  for comparison, loading every subscriber row into a list: peak memory {load_mb:.0f} MB ({load_s:.0f} s)")


if __name__ == "__main__":
    main()
