"""Reads: goals (SMART) with progress, pace and forecast, measured on the daily rollup.

A goal's metric (``siyu.dashboards.metrics``) is measured over a trailing window of
``window_days`` ending on a day, restricted to the goal's department (or the whole company):

- baseline: the value on the day before the goal starts, stored when the goal is created;
- current: the value on today (or the deadline, once passed);
- progress = (current − baseline) / (target − baseline); 1.0 means the target is reached;
- pace = elapsed / total days of the goal: the progress a straight line from baseline to target
  would have reached by today; progress ≥ pace means ahead of plan;
- forecast: an ordinary least-squares line through the daily values from the baseline day to
  today, extrapolated to the deadline. With one point (the goal starts today) there is none.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from siyu.accounts.models import DataScope, StaffMember
from siyu.accounts.permissions import (
    Action,
    department_subtree_ids,
    effective_scope,
    require,
)
from siyu.core.errors import NotFound
from siyu.dashboards.metrics import METRICS
from siyu.dashboards.models import Goal, MetricDay


def department_members(department_id: int | None) -> set[int] | None:
    if department_id is None:
        return None
    depts = department_subtree_ids({department_id})
    return set(
        StaffMember.objects.filter(
            Q(departments__in=depts) | Q(main_department_id__in=depts)
        ).values_list("pk", flat=True)
    )


def measure_series(
    *, metric: str, department_id: int | None, window_days: int, first: date, last: date
) -> list[tuple[date, float | None]]:
    """The metric on each day ``first``–``last``, each over its trailing window; one query."""
    spec = METRICS[metric]
    since = first - timedelta(days=window_days - 1)
    qs = MetricDay.objects.filter(metric__in=spec.names, day__gte=since, day__lte=last)
    members = department_members(department_id)
    if members is not None:
        qs = qs.filter(staff_id__in=members)
    daily: dict[date, dict[str, int]] = defaultdict(dict)
    for row in qs.values("day", "metric").annotate(total=Sum("value")):
        daily[row["day"]][row["metric"]] = row["total"]
    window: dict[str, int] = defaultdict(int)
    series = []
    day = since
    while day <= last:
        for name, value in daily.get(day, {}).items():
            window[name] += value
        leaving = day - timedelta(days=window_days)
        for name, value in daily.get(leaving, {}).items():
            window[name] -= value
        if day >= first:
            series.append((day, spec.value(window)))
        day += timedelta(days=1)
    return series


@dataclass
class GoalStatus:
    goal: Goal
    current: float | None
    progress: float | None
    pace: float
    forecast: float | None
    on_track: bool | None
    series: list[tuple[date, float | None]]


def goal_status(goal: Goal, today: date | None = None) -> GoalStatus:
    today = today or timezone.localdate()
    baseline_day = goal.start - timedelta(days=1)
    last = min(max(today, baseline_day), goal.deadline)
    series = measure_series(
        metric=goal.metric,
        department_id=goal.department_id,
        window_days=goal.window_days,
        first=baseline_day,
        last=last,
    )
    current = series[-1][1] if series else None
    span = (goal.deadline - baseline_day).days
    pace = min(max((last - baseline_day).days / span, 0.0), 1.0)
    gap = goal.target - goal.baseline
    progress = None
    if current is not None:
        progress = (current - goal.baseline) / gap if gap else float(current >= goal.target)
    forecast = linear_forecast(
        [((day - baseline_day).days, value) for day, value in series if value is not None], span
    )
    on_track = None
    if forecast is not None:
        on_track = forecast >= goal.target if gap >= 0 else forecast <= goal.target
    return GoalStatus(goal, current, progress, pace, forecast, on_track, series)


def linear_forecast(points: list[tuple[int, float]], at: int) -> float | None:
    """Least-squares line through ``points`` (x, y), evaluated at ``x = at``."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _y in points) / n
    mean_y = sum(y for _x, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _y in points)
    if not var:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / var
    return mean_y + slope * (at - mean_x)


def goal_list(*, actor: StaffMember) -> QuerySet[Goal]:
    """Company-wide viewers see every goal; others the goals they own or of a department in
    their scope (their own department subtree)."""
    require(actor, Action.DASHBOARD_VIEW)
    goals = Goal.objects.select_related("owner", "department")
    if effective_scope(actor) == DataScope.COMPANY:
        return goals
    roots = set(actor.departments.values_list("id", flat=True))
    if actor.main_department_id is not None:
        roots.add(actor.main_department_id)
    visible = Q(owner=actor)
    if effective_scope(actor) == DataScope.DEPARTMENT:
        visible |= Q(department_id__in=department_subtree_ids(roots))
    return goals.filter(visible)


def goal_get(*, actor: StaffMember, goal_id: int) -> Goal:
    goal = goal_list(actor=actor).filter(pk=goal_id).first()
    if goal is None:
        raise NotFound("goal not found")
    return goal
