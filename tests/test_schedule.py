"""The scheduler, driven through simulated time: DigestSchedulers with their real APScheduler
SQLAlchemyJobStore in the state database, started, stopped and restarted around slots."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from conftest import ROOT, write_article
from simclock import RecordingBackend, Sent, SimulatedClock

from digest import leases, pipeline
from digest.config import Settings, load_config
from digest.errors import ConfigError
from digest.pipeline import run_once
from digest.schedule import DigestScheduler, describe_planned_runs
from digest.store import Store

LONDON = ZoneInfo("Europe/London")
UTC = timezone.utc


def at(*args: int) -> datetime:
    """A moment in London (the test newsletter's zone)."""
    return datetime(*args, tzinfo=LONDON)  # type: ignore[misc]


class Harness:
    """Runs DigestSchedulers over one state database in simulated time, as a process would be
    started and stopped: each :meth:`run` is one process lifetime."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sent: list[Sent] = []
        self.current: SimulatedClock | None = None
        self.scheduler: DigestScheduler | None = None

    def run(self, start: datetime, until: datetime, **backend_kw: object) -> None:
        clock = SimulatedClock(start, until)
        store = Store(self.settings.state_url)
        scheduler = DigestScheduler(
            self.settings,
            store,
            clock=clock,
            backend_factory=lambda folder: RecordingBackend(folder, clock, self.sent, **backend_kw),  # type: ignore[arg-type]
        )
        clock.on_horizon = lambda: scheduler.request_stop("end of simulated run")
        self.current, self.scheduler = clock, scheduler
        try:
            scheduler.start()  # blocks until `until` (simulated) or a stop request
        finally:
            self.current = None
            store.close()

    def issues(self) -> list[str]:
        return sorted({s.folder for s in self.sent})


@pytest.fixture
def harness(write_config, tmp_path: Path) -> Iterator[object]:
    def make(
        schedule: str = "", newsletter: str = "", subscribers: list[str] | None = None, delivery: str = ""
    ) -> Harness:
        cfg = write_config(subscribers=subscribers)
        text = cfg.read_text().replace(
            'cron = "0 8 * * mon"', 'cron = "0 8 * * mon"\nmisfire_grace_hours = 6\n' + schedule
        )
        text = text.replace('backend = "outbox"', 'backend = "outbox"\n' + delivery)
        cfg.write_text(
            text.replace(
                'postal_address = "1 Test Street, Testville"',
                'postal_address = "1 Test Street, Testville"\n' + newsletter,
            )
        )
        return Harness(load_config(cfg))

    made: list[Harness] = []

    def harness(*args: str, **kw: list[str]) -> Harness:
        made.append(make(*args, **kw))
        return made[-1]

    yield harness  # type: ignore[misc]


def article(tmp_path: Path, name: str, date: str) -> None:
    write_article(
        tmp_path / "content", f"{name}.md", title=f"Article {name}", date=date, body=f"The lead of {name}. More text."
    )


def test_a_slot_fires_once_at_its_local_time(harness, tmp_path: Path) -> None:
    article(tmp_path, "one", "2025-08-08T10:00:00+01:00")
    h = harness()
    h.run(at(2025, 8, 10, 12, 0), at(2025, 8, 12, 12, 0))
    assert [(s.recipient, s.at) for s in h.sent] == [
        (r, at(2025, 8, 11, 8, 0)) for r in ("a@example.org", "b@example.org", "c@example.org")
    ]
    assert h.issues() == ["2025-W33"]
    # A restart after the send, within the grace period, sends nothing more.
    h.run(at(2025, 8, 11, 9, 0), at(2025, 8, 12, 12, 0))
    assert len(h.sent) == 3


def test_down_across_the_slot_and_back_within_grace_sends_once(harness, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="digest")
    article(tmp_path, "one", "2025-08-08T10:00:00+01:00")
    h = harness()
    h.run(at(2025, 8, 10, 12, 0), at(2025, 8, 11, 7, 30))  # stopped before the slot
    assert h.sent == []
    h.run(at(2025, 8, 11, 10, 0), at(2025, 8, 11, 18, 0))  # back two hours after it
    assert sorted(s.recipient for s in h.sent) == ["a@example.org", "b@example.org", "c@example.org"]
    assert {s.at for s in h.sent} == {at(2025, 8, 11, 10, 0)}
    assert h.issues() == ["2025-W33"]
    assert "issue 2025-W33 sent: 3 delivered, 0 failed (slot Mon 11 Aug 2025 08:00 BST, 2 h 00 min late)" in caplog.text
    # And once more later: still one send.
    h.run(at(2025, 8, 11, 12, 0), at(2025, 8, 11, 13, 0))
    assert len(h.sent) == 3


def test_back_after_the_grace_period_sends_nothing_and_says_so(harness, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="digest")
    article(tmp_path, "one", "2025-08-08T10:00:00+01:00")
    h = harness()
    h.run(at(2025, 8, 10, 12, 0), at(2025, 8, 11, 7, 30))
    h.run(at(2025, 8, 11, 15, 0), at(2025, 8, 18, 9, 0))  # seven hours late; then on to next week
    assert h.sent == []
    assert (
        "issue 2025-W33 (slot Mon 11 Aug 2025 08:00 BST) was not sent: the scheduler was not running then and "
        "started 7 h 00 min later, past schedule.misfire_grace_hours = 6. To send it anyway: digest run --as-of 2025-08-11T08:00+01:00"
    ) in caplog.text
    # The next slot still fires; with no new articles it is skipped, and the log says why.
    assert (
        "issue 2025-W34 not sent: only 0 new articles, fewer than selection.min_articles = 1 (slot Mon 18 Aug 2025 08:00 BST)"
        in caplog.text
    )


def test_a_failing_run_is_logged_and_the_next_slot_still_fires(harness, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="digest")
    article(tmp_path, "one", "2025-08-08T10:00:00+01:00")
    article(tmp_path, "two", "2025-08-15T10:00:00+01:00")
    h = harness(subscribers=["a@example.org"])
    broken = {"2025-W33"}

    def backend_factory(folder: str) -> RecordingBackend:
        if folder in broken:
            raise OSError("the outbox disk is full")
        assert h.current is not None
        return RecordingBackend(folder, h.current, h.sent)

    clock = SimulatedClock(at(2025, 8, 10, 12, 0), at(2025, 8, 19, 12, 0))
    with Store(h.settings.state_url) as store:
        scheduler = DigestScheduler(h.settings, store, clock=clock, backend_factory=backend_factory)
        clock.on_horizon = lambda: scheduler.request_stop("end of simulated run")
        h.current = clock
        scheduler.start()
    assert "the job 'send the issue' (due Mon 11 Aug 2025 08:00 BST) failed" in caplog.text
    assert "OSError: the outbox disk is full" in caplog.text
    assert [(s.folder, s.at) for s in h.sent] == [("2025-W34", at(2025, 8, 18, 8, 0))]


@pytest.mark.parametrize(
    ("weeks", "utc_hours"),
    [
        # Spring forward on Sunday 30 March 2025: 08:00 GMT is 08:00 UTC, 08:00 BST is 07:00 UTC.
        ((at(2025, 3, 22, 12, 0), at(2025, 4, 1, 12, 0), "2025-03-21", "2025-03-28"), [8, 7]),
        # Fall back on Sunday 26 October 2025.
        ((at(2025, 10, 18, 12, 0), at(2025, 10, 28, 12, 0), "2025-10-17", "2025-10-24"), [7, 8]),
    ],
    ids=["spring", "autumn"],
)
def test_the_week_of_a_daylight_saving_change_fires_at_local_time(harness, tmp_path: Path, weeks, utc_hours) -> None:
    start, until, first, second = weeks
    article(tmp_path, "first", first + "T10:00:00Z")
    article(tmp_path, "second", second + "T10:00:00Z")
    # Sunday 08:00: the second slot falls on the very day the clocks change.
    h = harness(subscribers=["a@example.org"])
    h.settings = h.settings.model_copy(
        update={"schedule": h.settings.schedule.model_copy(update={"cron": "0 8 * * sun"})}
    )
    h.run(start, until)
    fired = [s.at for s in h.sent]
    assert [t.astimezone(LONDON).strftime("%a %H:%M") for t in fired] == ["Sun 08:00", "Sun 08:00"]
    assert [t.astimezone(UTC).hour for t in fired] == utc_hours


def test_schedule_list_shows_local_times_across_a_change(harness) -> None:
    h = harness()
    lines = describe_planned_runs(h.settings, at(2025, 3, 20, 0, 0))
    assert lines == [
        'next 5 runs of "0 8 * * mon" in Europe/London:',
        "  2025-W13         Mon 24 Mar 2025 08:00 GMT",
        "  2025-W14         Mon 31 Mar 2025 08:00 BST",
        "  2025-W15         Mon 7 Apr 2025 08:00 BST",
        "  2025-W16         Mon 14 Apr 2025 08:00 BST",
        "  2025-W17         Mon 21 Apr 2025 08:00 BST",
    ]


def test_stop_mid_send_finishes_the_batch_and_the_restart_resumes(harness, tmp_path: Path, monkeypatch, caplog) -> None:
    caplog.set_level(logging.INFO, logger="digest")
    article(tmp_path, "one", "2025-08-08T10:00:00+01:00")
    subs = [f"r{i}@example.org" for i in range(5)]
    h = harness(subscribers=subs, delivery="batch_size = 2")

    def sigterm_during_first_batch(_messages: object) -> None:
        assert h.scheduler is not None
        h.scheduler.request_stop("SIGTERM")  # what the signal handler does

    h.run(at(2025, 8, 10, 12, 0), at(2025, 8, 12, 12, 0), on_batch=sigterm_during_first_batch)
    assert [s.recipient for s in h.sent] == subs[:2]  # the batch in flight was finished, no more
    with Store(h.settings.state_url) as store:
        assert store.issues.get("2025-W33").status == "sending"
        assert store.deliveries.counts("2025-W33") == {"sent": 2, "pending": 3}
    assert "stopped on request: the rest is sent when the scheduler starts again" in caplog.text
    h.run(at(2025, 8, 11, 8, 5), at(2025, 8, 11, 9, 0))
    assert sorted(s.recipient for s in h.sent) == subs  # each exactly once
    with Store(h.settings.state_url) as store:
        assert store.issues.get("2025-W33").status == "sent"


def test_a_manual_run_while_the_scheduler_sends_sends_nothing(write_config, tmp_path: Path) -> None:
    article(tmp_path, "one", "2025-08-08T10:00:00+01:00")
    settings = load_config(write_config())
    now = at(2025, 8, 11, 8, 0)
    with Store(settings.state_url) as store:
        # The scheduler's lease on this slot's issue, as taken in another process.
        assert store.leases.acquire("issue:2025-W33", "scheduler-host:1", now=datetime.now(UTC), ttl=leases.LEASE_TTL)
        _, report = run_once(settings, store, as_of=now, now=now)
        assert report.outcome == "claimed-elsewhere"
        assert "being sent by another process (scheduler-host:1" in report.message
        assert store.issues.get("2025-W33") is None and not (tmp_path / "outbox").exists()
        # A lease left by a process that died expires, and the next run takes over.
        stale = datetime.now(UTC) + leases.LEASE_TTL + timedelta(seconds=1)
        _, report = run_once(settings, store, as_of=now, now=now, clock=lambda: stale)
        assert report.outcome == "sent"


def test_review_sends_a_preview_then_the_issue_unless_held(harness, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="digest")
    article(tmp_path, "one", "2025-08-08T10:00:00+01:00")
    h = harness("review_hours = 12\n", 'editors = ["ed@example.org"]\n', subscribers=["a@example.org"])
    h.run(at(2025, 8, 10, 12, 0), at(2025, 8, 11, 12, 0))
    assert [(s.folder, s.recipient, s.at) for s in h.sent] == [
        ("preview-2025-W33", "ed@example.org", at(2025, 8, 10, 20, 0)),
        ("2025-W33", "a@example.org", at(2025, 8, 11, 8, 0)),
    ]
    assert h.sent[0].subject.startswith("[PREVIEW] Test Weekly: Article one")
    assert h.sent[1].subject == h.sent[0].subject.removeprefix("[PREVIEW] ")
    assert (
        "issue 2025-W33: [PREVIEW] sent to ed@example.org; it goes out at Mon 11 Aug 2025 08:00 BST unless `digest hold 2025-W33`"
        in caplog.text
    )

    # Next week an editor holds the issue after its preview: nothing goes out at the slot.
    article(tmp_path, "two", "2025-08-15T10:00:00+01:00")
    h.run(at(2025, 8, 11, 12, 0), at(2025, 8, 17, 21, 0))
    assert [s.folder for s in h.sent[2:]] == ["preview-2025-W34"]
    with Store(h.settings.state_url) as store:
        assert store.issues.hold("2025-W34", now=at(2025, 8, 17, 21, 0))
    h.run(at(2025, 8, 17, 21, 0), at(2025, 8, 18, 12, 0))
    assert [s.folder for s in h.sent[2:]] == ["preview-2025-W34"]
    assert "issue 2025-W34 is held (digest hold 2025-W34); not sent" in caplog.text


def test_review_needs_editors(write_config) -> None:
    cfg = write_config()
    cfg.write_text(cfg.read_text().replace('cron = "0 8 * * mon"', 'cron = "0 8 * * mon"\nreview_hours = 12'))
    with pytest.raises(ConfigError, match="newsletter.editors is empty"):
        load_config(cfg)


# --- two processes, and real signals ---------------------------------------------------------------

PROCESS = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from simclock import RecordingBackend, SimulatedClock
    from digest.config import load_config
    from digest.schedule import SEND_JOB, DigestScheduler
    from digest.store import Store

    tests, config, start, until, meeting, me, other = sys.argv[1:8]
    settings = load_config(config)
    clock = SimulatedClock(datetime.fromisoformat(start), datetime.fromisoformat(until))
    sent = []

    def wait_for_the_other(_messages):
        # Whoever sends first waits until the other process has run its job for the slot, so the
        # two runs overlap for certain. (Without the lease both would wait here, then both send.)
        deadline = time.monotonic() + 20
        while not (Path(meeting) / other).exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    store = Store(settings.state_url)
    scheduler = DigestScheduler(settings, store, clock=clock,
        backend_factory=lambda folder: RecordingBackend(folder, clock, sent, on_batch=wait_for_the_other))
    scheduler.add_listener(lambda run: (Path(meeting) / me).touch() if run.job_id == SEND_JOB else None)
    clock.on_horizon = lambda: scheduler.request_stop("end")
    scheduler.start()
    for s in sent:
        print(me, s.folder, s.recipient, flush=True)
    """
)


def test_two_scheduler_processes_over_one_database_send_once(write_config, tmp_path: Path) -> None:
    article(tmp_path, "one", "2025-08-08T10:00:00+01:00")
    cfg = write_config()
    settings = load_config(cfg)
    Store(settings.state_url).close()  # the database exists before both start
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    script = tmp_path / "process.py"
    script.write_text(PROCESS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(ROOT / "tests"),
                str(cfg),
                "2025-08-11T07:59:00+01:00",
                "2025-08-11T09:00:00+01:00",
                str(meeting),
                me,
                other,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for me, other in (("A", "B"), ("B", "A"))
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    lines = sorted(line.split(" ", 1)[1] for out, _ in outputs for line in out.splitlines())
    assert lines == ["2025-W33 a@example.org", "2025-W33 b@example.org", "2025-W33 c@example.org"]
    assert {line.split()[0] for out, _ in outputs for line in out.splitlines()} in ({"A"}, {"B"})


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_digest_schedule_cleanly(write_config, tmp_path: Path, sig: signal.Signals) -> None:
    cfg = write_config()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    with subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(cfg), "schedule"], stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "scheduler started" in line:
                break
        assert any('cron "0 8 * * mon" in Europe/London' in line for line in seen), "".join(seen)
        proc.send_signal(sig)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 0, rest
    assert f"stopping ({sig.name})" in rest and "scheduler stopped" in rest
    assert "Traceback" not in rest
    with Store(load_config(cfg).state_url) as store:
        assert sa.inspect(store.engine).has_table("apscheduler_jobs")


def _digest(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    return subprocess.run([sys.executable, "-m", "digest", *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_schedule_list_and_hold(write_config) -> None:
    cfg = str(write_config())
    listed = _digest("--config", cfg, "schedule", "--list", "--as-of", "2025-10-20T09:00")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1:3] == [
        "  2025-W44         Mon 27 Oct 2025 08:00 GMT",
        "  2025-W45         Mon 3 Nov 2025 08:00 GMT",
    ]
    assert len(listed.stdout.splitlines()) == 6

    settings = load_config(cfg)
    upcoming = pipeline.upcoming_slot(settings, datetime.now(UTC)).key
    held = _digest("--config", cfg, "hold", upcoming)
    assert held.returncode == 0 and f"issue {upcoming} is on hold" in held.stdout
    assert upcoming in _digest("--config", cfg, "hold", "--list").stdout
    typo = _digest("--config", cfg, "hold", "2025-W3")
    assert typo.returncode == 2 and "'2025-W3' is not an upcoming issue of this schedule" in typo.stderr
    released = _digest("--config", cfg, "hold", "--release", upcoming)
    assert f"issue {upcoming} released" in released.stdout
    with Store(settings.state_url) as store:
        assert not store.issues.is_held(upcoming)
