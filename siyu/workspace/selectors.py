"""Reads of the workspace: a member's own tasks and alerts, the scripts library, and the
managers' overview of the tasks of the members in their scope."""

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require, restrict
from siyu.workspace.models import Script, ScriptCategory, StaffAlert, StaffTask, TaskStatus

OVERVIEW_DAYS = 30


def _end_of_today() -> datetime:
    now = timezone.localtime()
    return now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def my_tasks(*, actor: StaffMember, status: str = "", today: bool = False) -> QuerySet[StaffTask]:
    """The caller's own tasks. ``today``: what is open and due within the next 24 hours,
    overdue or undated, plus what was done today — the mobile page's list. A rolling day, not
    the calendar's: at 23:30 the task due at 00:30 is the next thing to do."""
    require(actor, Action.WORKSPACE_USE)
    tasks = StaffTask.objects.filter(staff=actor).select_related("customer")
    if status:
        tasks = tasks.filter(status=status)
    if today:
        tonight = _end_of_today()
        due = Q(due_at__isnull=True) | Q(due_at__lt=timezone.now() + timedelta(hours=24))
        tasks = tasks.filter(
            (Q(status=TaskStatus.OPEN) & due)
            | Q(status=TaskStatus.DONE, done_at__gte=tonight - timedelta(days=1))
        )
    return tasks.order_by(F("due_at").asc(nulls_last=True), "pk")


def my_alerts(*, actor: StaffMember) -> QuerySet[StaffAlert]:
    require(actor, Action.WORKSPACE_USE)
    return StaffAlert.objects.filter(staff=actor).select_related("customer")


def script_list(
    *, actor: StaffMember, query: str = "", category_id: int | None = None
) -> QuerySet[Script]:
    """Every member reads the whole library (it is the team's); most used first."""
    require(actor, Action.WORKSPACE_USE)
    scripts = Script.objects.select_related("category")
    if query:
        scripts = scripts.filter(Q(title__icontains=query) | Q(text__icontains=query))
    if category_id is not None:
        scripts = scripts.filter(category_id=category_id)
    return scripts.order_by("-usage_count", "pk")


def category_list(*, actor: StaffMember) -> QuerySet[ScriptCategory]:
    require(actor, Action.WORKSPACE_USE)
    return ScriptCategory.objects.annotate(script_count=Count("scripts"))


def task_overview(*, actor: StaffMember) -> list[dict[str, Any]]:
    """Per member in scope, over the last ``OVERVIEW_DAYS`` days: open, overdue, done, and the
    on-time rate (tasks due in the window done by their due time / tasks due in the window)."""
    members = restrict(StaffMember.objects.all(), actor, Action.TASKS_OVERVIEW, owner_field="id")
    now = timezone.now()
    since = now - timedelta(days=OVERVIEW_DAYS)
    due_window = Q(workspace_tasks__due_at__gte=since, workspace_tasks__due_at__lte=now)
    due_window &= ~Q(workspace_tasks__status=TaskStatus.CANCELLED)
    rows = members.annotate(
        open=Count("workspace_tasks", filter=Q(workspace_tasks__status=TaskStatus.OPEN)),
        overdue=Count(
            "workspace_tasks",
            filter=Q(workspace_tasks__status=TaskStatus.OPEN, workspace_tasks__due_at__lt=now),
        ),
        done=Count(
            "workspace_tasks",
            filter=Q(workspace_tasks__status=TaskStatus.DONE, workspace_tasks__done_at__gte=since),
        ),
        due=Count("workspace_tasks", filter=due_window),
        on_time=Count(
            "workspace_tasks",
            filter=due_window
            & Q(
                workspace_tasks__status=TaskStatus.DONE,
                workspace_tasks__done_at__lte=F("workspace_tasks__due_at"),
            ),
        ),
    ).order_by("name", "pk")
    return [
        {
            "staff_id": m.pk,
            "name": m.name,
            "open": m.open,
            "overdue": m.overdue,
            "done": m.done,
            "due": m.due,
            "on_time": m.on_time,
            "on_time_rate": round(m.on_time / m.due, 4) if m.due else None,
        }
        for m in rows
    ]
