"""Budget periods, parsing and the status the router acts on (no Redis needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from omniroute.shared_state.budget import Budget, BudgetStatus, period_bounds, spend_key


@pytest.mark.parametrize(("period", "start", "end"), [
    ("daily", datetime(2025, 3, 5, tzinfo=UTC), datetime(2025, 3, 6, tzinfo=UTC)),
    ("weekly", datetime(2025, 3, 3, tzinfo=UTC), datetime(2025, 3, 10, tzinfo=UTC)),   # Monday
    ("monthly", datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)),
])
def test_period_bounds_are_calendar_periods_in_utc(period: str, start: datetime, end: datetime) -> None:
    assert period_bounds(period, datetime(2025, 3, 5, 17, 30, tzinfo=UTC)) == (start, end)


def test_december_rolls_into_january() -> None:
    assert period_bounds("monthly", datetime(2025, 12, 31, 23, 59, tzinfo=UTC))[1] == \
        datetime(2026, 1, 1, tzinfo=UTC)


def test_parse_accepts_the_api_shape_and_rejects_nonsense() -> None:
    assert Budget.parse({"limit": 50.0, "period": "weekly", "warnAt": 0.9}) == \
        Budget(Decimal("50.0"), "weekly", 0.9)
    assert Budget.parse({"limit": 1}) == Budget(Decimal(1), "monthly", 0.8)
    for bad in (None, {}, {"limit": "x"}, {"limit": -1}, {"limit": 1, "period": "yearly"}):
        assert Budget.parse(bad) is None


def test_status_exhausted_at_the_limit_with_a_message_that_says_so() -> None:
    start, end = period_bounds("monthly", datetime(2025, 3, 5, tzinfo=UTC))
    budget = Budget(Decimal(1), "monthly", 0.8)
    under = BudgetStatus("key-1", budget, Decimal("0.79"), start, end)
    warn = BudgetStatus("key-1", budget, Decimal("0.80"), start, end)
    over = BudgetStatus("key-1", budget, Decimal("1.00"), start, end)
    assert not under.exhausted and not under.warning
    assert warn.warning and not warn.exhausted
    assert over.exhausted and not over.warning and over.remaining_usd == 0
    assert "Budget exhausted" in over.message and "$1.00" in over.message and "monthly" in over.message
    assert over.retry_after_s(datetime(2025, 3, 31, 23, 59, tzinfo=UTC)) == 60
    assert not BudgetStatus("k", None, Decimal(5)).exhausted


def test_spend_key_is_namespaced_by_env_and_period_start() -> None:
    assert spend_key("prod", "k1", "daily", datetime(2025, 3, 5, tzinfo=UTC)) == \
        "prod:budget:spend:k1:daily:20250305"
