"""Invoice arithmetic against hand-computed figures (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

from agenthq_usage.billing.pricing import invoice_lines, plan_days, share
from agenthq_usage.plans.catalog import load_plans

CATALOG = load_plans()


def lines_by_metric(lines: list) -> dict[str, dict]:  # type: ignore[type-arg]
    return {line.metric: line.as_dict() for line in lines}


def test_a_whole_month_on_pro_with_overage() -> None:
    history = [(datetime(2026, 1, 15, tzinfo=UTC), "pro")]
    usage = {"tasks_created": 5_010, "llm_tokens_used": 5_000_001, "api_calls": 499_999}
    lines = lines_by_metric(invoice_lines(CATALOG, history, usage, 2026, 10))
    assert lines["subscription:pro"]["amount"] == 4_900
    assert lines["subscription:pro"]["quantity"] == 31
    # 10 tasks over 5,000 at 2 cents each.
    assert lines["tasks_created"] == {
        "metric": "tasks_created",
        "quantity": 5_010,
        "included": 5_000,
        "unit": 1,
        "unit_price": 2,
        "amount": 20,
    }
    # One token over: one started block of 1,000 at 1 cent.
    assert lines["llm_tokens_used"]["amount"] == 1
    assert lines["api_calls"]["amount"] == 0
    assert sum(line["amount"] for line in lines.values()) == 4_921


def test_an_upgrade_mid_month_is_prorated_by_days() -> None:
    """free until 10 Nov 15:00, then pro: the 10th is billed at pro (the plan at
    the end of the day). November has 30 days: 9 free days, 21 pro days."""
    history = [
        (datetime(2026, 10, 1, tzinfo=UTC), "free"),
        (datetime(2026, 11, 10, 15, 0, tzinfo=UTC), "pro"),
    ]
    days, last = plan_days(history, 2026, 11)
    assert dict(days) == {"free": 9, "pro": 21} and last == "pro"
    usage = {"tasks_created": 4_000, "llm_tokens_used": 0, "api_calls": 400_000}
    lines = lines_by_metric(invoice_lines(CATALOG, history, usage, 2026, 11))
    # 4900 * 21 / 30 = 3430 exactly.
    assert lines["subscription:pro"]["amount"] == 3_430
    assert lines["subscription:free"]["amount"] == 0
    # Included: free 100 * 9/30 = 30, pro 5000 * 21/30 = 3500 -> 3530; 470 over at 2.
    assert lines["tasks_created"]["included"] == 3_530
    assert lines["tasks_created"]["amount"] == 940
    # api calls: free 10000*9/30 = 3000 + pro 500000*21/30 = 350000 -> 353000;
    # 47,000 over = 47 blocks of 1,000 at 5.
    assert lines["api_calls"]["included"] == 353_000
    assert lines["api_calls"]["amount"] == 235
    assert sum(line["amount"] for line in lines.values()) == 3_430 + 940 + 235


def test_a_team_created_mid_month_pays_only_its_days_with_half_up_rounding() -> None:
    # Created on 31 Oct: one day of 31 on pro: 4900 / 31 = 158.06 -> 158.
    history = [(datetime(2026, 10, 31, 8, 0, tzinfo=UTC), "pro")]
    lines = lines_by_metric(invoice_lines(CATALOG, history, {}, 2026, 10))
    assert lines["subscription:pro"]["quantity"] == 1
    assert lines["subscription:pro"]["amount"] == 158
    assert share(49_900, 16, 31, round_half_up=True) == 25_755  # 25754.84
    assert share(1, 1, 2, round_half_up=True) == 1  # exactly half rounds up
    assert share(5_000, 1, 3, round_half_up=False) == 1_666


def test_no_invoice_before_the_team_existed() -> None:
    history = [(datetime(2026, 12, 1, tzinfo=UTC), "pro")]
    assert invoice_lines(CATALOG, history, {"api_calls": 10}, 2026, 11) == []


def test_the_plans_catalogue_is_whole_and_in_integers() -> None:
    assert {"free", "pro", "enterprise"} <= set(CATALOG.plans)
    for plan in CATALOG.plans.values():
        assert isinstance(plan.monthly_price, int)
        for terms in plan.metrics.values():
            assert all(isinstance(v, int) for v in (terms.included, terms.unit, terms.unit_price))
    assert CATALOG.get("unknown") == CATALOG.plans["free"]
