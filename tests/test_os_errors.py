"""A path digest cannot use (a missing folder, a file where a folder should be, a full disk) or a
date out of range is one line naming the path or value, never "unexpected error"; a state file
that is not digest's database is refused instead of being taken for a new one."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import write_article
from test_cli import digest

from digest.errors import FileError, StateError
from digest.store import Store
from digest.subscribers import read_subscriber_csv

AS_OF = "2025-08-11T09:00"
DISK_FULL = Path("/dev/full")  # every write fails with ENOSPC, as on a full disk


def one_line(proc: subprocess.CompletedProcess[str], *needles: str, status: int = 1) -> str:
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "unexpected error" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31", "1969-12-31T23:00"])
def test_as_of_out_of_range_is_one_line(write_config, as_of: str) -> None:
    cfg = write_config()
    proc = digest("--config", str(cfg), "build", "--no-ingest", "--as-of", as_of)
    one_line(proc, "--as-of", as_of, "out of range", "1970-01-01", status=2)


def test_export_into_a_missing_folder_names_the_path(write_config, tmp_path: Path) -> None:
    cfg = write_config()
    target = tmp_path / "no" / "such" / "dir" / "x.csv"
    one_line(digest("--config", str(cfg), "subscribers", "export", str(target)), str(target), "No such file")


@pytest.mark.skipif(not DISK_FULL.exists(), reason="needs /dev/full")
def test_export_to_a_full_disk_names_the_path(write_config) -> None:
    cfg = write_config()
    one_line(digest("--config", str(cfg), "subscribers", "export", str(DISK_FULL)), str(DISK_FULL), "No space left")


def test_subscriber_file_that_is_a_folder_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileError, match=f"cannot read {tmp_path}: Is a directory"):
        read_subscriber_csv(tmp_path)


def test_build_out_that_cannot_be_made_names_the_path(write_config, tmp_path: Path) -> None:
    cfg = write_config()
    write_article(tmp_path / "content", "one.md", title="One", date="2025-08-08", body="Lead one. More.")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    out = blocker / "out"
    proc = digest("--config", str(cfg), "build", "--as-of", AS_OF, "--out", str(out))
    one_line(proc, f"cannot write {out}", "choose a folder you can write to")


def test_unwritable_outbox_stops_the_send_with_one_line_and_sends_nothing(write_config, tmp_path: Path) -> None:
    cfg = write_config()
    write_article(tmp_path / "content", "one.md", title="One", date="2025-08-08", body="Lead one. More.")
    (tmp_path / "blocker").write_text("not a folder\n")
    cfg.write_text(cfg.read_text().replace('path = "outbox"', 'path = "blocker/outbox"'))
    proc = digest("--config", str(cfg), "run", "--as-of", AS_OF)
    one_line(proc, "delivery.outbox.path", str(tmp_path / "blocker" / "outbox"), status=2)
    # Fixed, the same issue goes out to everyone: nothing was marked sent.
    cfg.write_text(cfg.read_text().replace('path = "blocker/outbox"', 'path = "outbox"'))
    again = digest("--config", str(cfg), "run", "--as-of", AS_OF)
    assert again.returncode == 0, again.stderr
    assert "3 delivered" in again.stdout, again.stdout


@pytest.mark.parametrize(
    ("content", "why"),
    [(b"", "is empty"), (b"email,name\na@example.org,A\n", "is not a SQLite database")],
    ids=["zero-length", "text"],
)
def test_state_file_that_is_not_a_database_is_refused(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(content)
    with pytest.raises(StateError) as refused:
        Store(f"sqlite:///{path}")
    assert f"state database {path} {why}" in str(refused.value)
    assert path.read_bytes() == content  # left as it was


def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE contacts (email TEXT)")
    conn.close()
    with pytest.raises(StateError, match="holds tables but none of digest's"):
        Store(f"sqlite:///{path}")


def test_state_file_check_leaves_new_and_own_databases_alone(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    Store(f"sqlite:///{path}").close()
    Store(f"sqlite:///{path}").close()


def test_zero_length_state_file_is_one_line_from_the_cli(write_config, tmp_path: Path) -> None:
    cfg = write_config()
    state = tmp_path / "var" / "digest.sqlite3"
    state.parent.mkdir()
    state.write_bytes(b"")
    one_line(digest("--config", str(cfg), "subscribers", "list"), str(state), "is empty")


def test_article_dates_out_of_range_are_one_problem_each_and_the_folder_goes_on(write_config, tmp_path: Path) -> None:
    cfg = write_config()
    # East of UTC, midnight of 1 January of year 1 is in year 0, which datetime cannot hold.
    cfg.write_text(cfg.read_text().replace("Europe/London", "Asia/Tokyo"))
    write_article(tmp_path / "content", "old.md", title="Old", date="0001-01-01", body="Lead. More.")
    write_article(tmp_path / "content", "far.md", title="Far", date="9999-12-31T23:59:00-05:00", body="Lead. More.")
    write_article(tmp_path / "content", "one.md", title="One", date="2025-08-08", body="Lead one. More.")
    proc = digest("--config", str(cfg), "ingest")
    assert proc.returncode == 0, proc.stderr
    assert "1 article (1 new" in proc.stdout, proc.stdout
    problems = proc.stderr.strip().splitlines()
    assert len(problems) == 2, proc.stderr
    assert "far.md: skipped: date 9999-12-31T23:59:00-05:00 is out of range" in problems[0], problems
    assert "old.md: skipped: date 0001-01-01T00:00:00 is out of range" in problems[1], problems


def test_an_os_error_no_command_wrapped_is_still_one_line_with_its_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from digest.cli import app

    def refuse(_path: object) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "digest.toml"))

    monkeypatch.setattr(app, "load_config", refuse)
    with pytest.raises(SystemExit) as stopped:
        app.main(["--config", str(tmp_path / "digest.toml"), "status"])
    assert stopped.value.code == 1
    assert capsys.readouterr().err == f"digest: error: {tmp_path / 'digest.toml'}: Permission denied\n"
