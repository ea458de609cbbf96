"""Cohort retention on a small known history, and goals: baseline, progress, pace, forecast,
validation and the PDCA log."""

from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from django.utils import timezone

from siyu.analytics.tests.helpers import SHANGHAI, add, at, delete
from siyu.core.errors import InvalidInput, PermissionDenied
from siyu.dashboards.goals import goal_list, goal_status, linear_forecast
from siyu.dashboards.models import Goal, GoalLog
from siyu.dashboards.selectors import panel, parse_filters
from siyu.dashboards.services import goal_create, goal_log_add
from siyu.testing.stories import Company

from .helpers import deliver


def test_weekly_and_monthly_cohort_retention(in_acme: Company) -> None:
    """Week of Mon Oct 5: wm-1 and wm-2; wm-1 leaves in the next week. Week of Oct 12: wm-3
    leaves in its first week and comes back the week after."""
    add(in_acme, "alice", "wm-1", "ch:5", at(5))
    add(in_acme, "alice", "wm-2", "ch:5", at(5))
    add(in_acme, "bob", "wm-3", "fx:3:1", at(12))
    delete(in_acme, "alice", "wm-1", at(14))
    delete(in_acme, "bob", "wm-3", at(13))
    add(in_acme, "bob", "wm-3", "fx:3:1", at(20))
    deliver()
    boss = in_acme["boss"]
    october = parse_filters(start="2026-10-01", end="2026-10-31")
    weeks = {row[0]: row[1:5] for row in panel(boss, "cohort", october, grain="week").rows}
    assert weeks == {"2026-10-05": [2, 1.0, 0.5, 0.5], "2026-10-12": [1, 0.0, 1.0, 1.0]}
    months = panel(boss, "cohort", october, grain="month").rows
    assert [row[:3] for row in months] == [["2026-10-01", 3, 0.6667]]
    by_channel = parse_filters(start="2026-10-01", end="2026-10-31", channel="fx")
    assert [row[:4] for row in panel(boss, "cohort", by_channel).rows] == [
        ["2026-10-12", 1, 0.0, 1.0]
    ]
    # The current week is not over: no retention is shown for it yet.
    add(in_acme, "carol", "wm-9", "", timezone.now())
    deliver()
    recent = panel(boss, "cohort", parse_filters(channel="-")).rows
    assert recent[-1][1] == 1 and recent[-1][2] is None


def local(day: date) -> datetime:
    return datetime.combine(day, time(10), tzinfo=SHANGHAI)


def test_goal_progress_pace_and_forecast(in_acme: Company) -> None:
    today = timezone.localdate()
    start, deadline = today - timedelta(days=10), today + timedelta(days=20)
    # Baseline window (7 days to start − 1): two adds. Last 7 days: three.
    for n, days_ago in enumerate((16, 12, 9, 8, 5, 3, 1)):
        add(in_acme, "alice", f"wm-{n}", "ch:5", local(today - timedelta(days=days_ago)))
    deliver()
    goal = goal_create(
        actor=in_acme["ops"],
        name="新增翻倍",
        metric="new_customers",
        target_kind="relative",
        target_value=100,
        start=start,
        deadline=deadline,
        owner_id=in_acme["ops"].pk,
        window_days=7,
    )
    assert (goal.baseline, goal.target) == (2.0, 4.0)
    status = goal_status(goal)
    assert status.current == 3.0
    assert status.progress == pytest.approx(0.5)
    assert status.pace == pytest.approx(11 / 31)
    assert status.series[0] == (start - timedelta(days=1), 2.0)
    values = [value for _day, value in status.series]
    assert status.forecast == pytest.approx(
        linear_forecast([(x, v) for x, v in enumerate(values) if v is not None], 31)
    )
    assert status.forecast is not None and status.on_track is (status.forecast >= 4.0)


def test_linear_forecast_is_least_squares() -> None:
    assert linear_forecast([(0, 1.0), (1, 3.0), (2, 5.0)], 4) == pytest.approx(9.0)
    assert linear_forecast([(0, 2.0), (1, 2.0), (2, 5.0), (3, 5.0)], 5) == pytest.approx(7.7)
    assert linear_forecast([(0, 1.0)], 3) is None


def test_goals_are_validated_and_change_nothing_when_refused(in_acme: Company) -> None:
    today = timezone.localdate()
    good: dict[str, Any] = {
        "name": "意向 +12%",
        "metric": "intent",
        "target_kind": "absolute",
        "target_value": 10.0,
        "start": today,
        "deadline": today + timedelta(days=365),
        "owner_id": in_acme["ops"].pk,
    }
    for bad in (
        {"metric": "nope"},
        {"deadline": today - timedelta(days=1)},
        {"start": today + timedelta(days=10), "deadline": today + timedelta(days=5)},
        {"deadline": today + timedelta(days=4000)},
        {"target_kind": "relative", "target_value": 12.0},  # baseline 0: no relative target
        {"target_value": -1.0},
        {"name": " "},
        {"owner_id": 999999},
    ):
        with pytest.raises(InvalidInput):
            goal_create(actor=in_acme["boss"], **{**good, **bad})
    with pytest.raises(PermissionDenied):
        goal_create(actor=in_acme["alice"], **good)
    assert not Goal.objects.exists()
    goal = goal_create(actor=in_acme["boss"], **good)
    assert goal.baseline == 0.0 and goal.target == 10.0


def test_pdca_log_and_who_sees_which_goal(in_acme: Company) -> None:
    today = timezone.localdate()
    sales = in_acme["manager"].main_department_id
    marketing = in_acme["carol"].main_department_id

    def goal(department: int | None, owner: str) -> Goal:
        return goal_create(
            actor=in_acme["boss"],
            name=f"goal {department}",
            metric="paid_rate",
            target_kind="absolute",
            target_value=0.2,
            start=today,
            deadline=today + timedelta(days=90),
            owner_id=in_acme[owner].pk,
            department_id=department,
        )

    sales_goal, marketing_goal, company_goal = (
        goal(sales, "manager"),
        goal(marketing, "carol"),
        goal(None, "alice"),
    )
    assert set(goal_list(actor=in_acme["ops"])) == {sales_goal, marketing_goal, company_goal}
    assert set(goal_list(actor=in_acme["manager"])) == {sales_goal}
    assert set(goal_list(actor=in_acme["alice"])) == {company_goal}
    for phase in ("plan", "do", "check", "act"):
        goal_log_add(actor=in_acme["manager"], goal=sales_goal, phase=phase, note=f"{phase} 记录")
    with pytest.raises(InvalidInput):
        goal_log_add(actor=in_acme["manager"], goal=sales_goal, phase="review", note="x")
    with pytest.raises(InvalidInput):
        goal_log_add(actor=in_acme["manager"], goal=sales_goal, phase="do", note="  ")
    assert list(GoalLog.objects.values_list("phase", flat=True)) == ["act", "check", "do", "plan"]
    # A ratio without a base has no current value yet; nothing is invented.
    assert goal_status(sales_goal).current is None
