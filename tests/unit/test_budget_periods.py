"""Budget periods in the configured time zone: local midnights, DST-length days, the reset time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from omniroute.shared_state.budget import budget_zone, period_bounds, spend_key

BERLIN = ZoneInfo("Europe/Berlin")


def test_periods_start_at_local_midnight_in_the_zone() -> None:
    at = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # already 1 January 00:30 in Berlin
    start, end = period_bounds("daily", at, BERLIN)
    assert (start.isoformat(), end.isoformat()) == ("2027-01-01T00:00:00+01:00", "2027-01-02T00:00:00+01:00")
    assert period_bounds("monthly", at, BERLIN)[0].isoformat() == "2027-01-01T00:00:00+01:00"
    assert period_bounds("weekly", at, BERLIN)[0].isoformat() == "2026-12-28T00:00:00+01:00"  # Monday
    assert period_bounds("daily", at)[0] == datetime(2026, 12, 31, tzinfo=UTC)  # UTC by default
    assert spend_key("e", "k", "daily", start) == "e:budget:spend:k:daily:20270101"


def test_a_day_across_a_dst_change_is_23_hours() -> None:
    start, end = period_bounds("daily", datetime(2026, 3, 29, 12, tzinfo=UTC), BERLIN)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)


def test_the_zone_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIROUTE_BUDGET_TIMEZONE", "America/New_York")
    assert str(budget_zone()) == "America/New_York"
    _, end = period_bounds("daily", datetime(2026, 12, 4, 3, tzinfo=UTC))  # 22:00 on the 3rd in New York
    assert end.isoformat() == "2026-12-04T00:00:00-05:00"
