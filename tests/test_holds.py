"""Which issues `digest hold` accepts: upcoming ones of the schedule that have not gone out."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from digest.config import load_config
from digest.errors import UsageError
from digest.holds import HOLD_AHEAD_SLOTS, hold_issue, holdable_keys
from digest.store import Store

NOW = datetime(2025, 8, 13, 12, 0, tzinfo=timezone.utc)  # a Wednesday: W33 is due, W34 next


def test_the_due_issue_and_the_next_ones_may_be_held_once(write_config, tmp_path: Path) -> None:
    settings = load_config(write_config())
    store = Store(settings.state_url)
    keys = holdable_keys(settings, NOW)
    assert keys[:3] == ["2025-W33", "2025-W34", "2025-W35"] and len(keys) == HOLD_AHEAD_SLOTS + 1
    assert hold_issue(settings, store, "2025-W34", now=NOW)
    assert not hold_issue(settings, store, "2025-W34", now=NOW)  # already held
    assert store.issues.is_held("2025-W34")


def test_a_key_off_the_schedule_or_an_issue_already_out_is_refused(write_config, tmp_path: Path) -> None:
    settings = load_config(write_config())
    store = Store(settings.state_url)
    with pytest.raises(
        UsageError,
        match="'2025-W3' is not an upcoming issue of this schedule; the next ones are 2025-W34, 2025-W35, 2025-W36",
    ):
        hold_issue(settings, store, "2025-W3", now=NOW)
    store.issues.record_skipped("2025-W33", slot=NOW, note="thin", now=NOW)
    with pytest.raises(UsageError, match="issue 2025-W33 was skipped; a hold cannot change that"):
        hold_issue(settings, store, "2025-W33", now=NOW)
    assert not store.issues.is_held("2025-W33")
