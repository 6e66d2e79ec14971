from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from digest.slots import issue_key, next_slot, slot_at_or_before, trigger_for

LONDON = ZoneInfo("Europe/London")


def test_weekly_slot_and_key() -> None:
    t = trigger_for("0 8 * * mon", LONDON)
    slot = slot_at_or_before(t, datetime(2025, 8, 13, 12, 0, tzinfo=LONDON))
    assert slot == datetime(2025, 8, 11, 8, 0, tzinfo=LONDON)
    assert issue_key(t, slot) == "2025-W33"
    # Exactly at the slot counts as that slot.
    assert slot_at_or_before(t, slot) == slot
    assert next_slot(t, slot) == datetime(2025, 8, 18, 8, 0, tzinfo=LONDON)


def test_daily_and_hourly_keys() -> None:
    daily = trigger_for("30 6 * * *", LONDON)
    s = slot_at_or_before(daily, datetime(2025, 8, 13, 7, 0, tzinfo=LONDON))
    assert issue_key(daily, s) == "2025-08-13"
    twice = trigger_for("0 8,18 * * *", LONDON)
    s = slot_at_or_before(twice, datetime(2025, 8, 13, 19, 0, tzinfo=LONDON))
    assert issue_key(twice, s) == "2025-08-13T1800"


def test_monthly_slot_far_back() -> None:
    monthly = trigger_for("0 9 1 * *", LONDON)
    s = slot_at_or_before(monthly, datetime(2025, 8, 31, 0, 0, tzinfo=LONDON))
    assert s == datetime(2025, 8, 1, 9, 0, tzinfo=LONDON)
