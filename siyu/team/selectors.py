"""Reads for account assets and team performance. Performance is computed from what happened —
order events, relations, staff tasks, confirmed moments — never typed in."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import BigIntegerField, Count, Exists, OuterRef, Q, QuerySet, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import Role, StaffMember
from siyu.accounts.permissions import Action, department_subtree_ids, require, restrict
from siyu.core.errors import InvalidInput, NotFound
from siyu.core.models import Event
from siyu.customers.models import RelationStatus, StaffRelation
from siyu.masssend.models import Batch, MassSendKind
from siyu.tags.models import CustomerTag
from siyu.team.models import AccountAsset, CommissionScheme, InventoryItem, InventoryRun
from siyu.team.services import assets_ensure, commission_for, item_passed, quality_targets
from siyu.workspace.models import StaffTask


def asset_list(*, actor: StaffMember, stage: str = "") -> QuerySet[AccountAsset]:
    """The accounts in the actor's scope with their current friend count."""
    assets_ensure()
    friends = Count(
        "staff__customer_relations__customer_id",
        filter=Q(staff__customer_relations__status=RelationStatus.ACTIVE),
        distinct=True,
    )
    queryset = restrict(
        AccountAsset.objects.select_related("staff"),
        actor,
        Action.ASSETS_VIEW,
        owner_field="staff_id",
    )
    if stage:
        queryset = queryset.filter(stage=stage)
    return queryset.annotate(friends=friends).order_by("stage", "staff__name")


def asset_detail(*, actor: StaffMember, asset_id: int) -> AccountAsset:
    asset = asset_list(actor=actor).filter(pk=asset_id).first()
    if asset is None:
        raise NotFound(_("账号不存在"))
    return asset


def inventory_runs(*, actor: StaffMember) -> QuerySet[InventoryRun]:
    require(actor, Action.ASSETS_VIEW)
    return (
        InventoryRun.objects.select_related("created_by")
        .annotate(
            total=Count("items"), checked=Count("items", filter=Q(items__checked_at__isnull=False))
        )
        .order_by("-created_at")
    )


def inventory_items(*, actor: StaffMember, run_id: int) -> list[dict[str, Any]]:
    items = restrict(
        InventoryItem.objects.filter(run_id=run_id).select_related("asset__staff", "checked_by"),
        actor,
        Action.ASSETS_VIEW,
        owner_field="asset__staff_id",
    ).order_by("asset__staff__name")
    tagged_min = quality_targets().tagged_pct / 100
    return [
        {
            "item": item,
            "checked": item.checked_at is not None,
            "passed": item.checked_at is not None and item_passed(item, tagged_min=tagged_min),
            "friends_match": item.friends_counted == item.friends_recorded,
            "tagged_ok": item.tagged_share >= tagged_min,
        }
        for item in items
    ]


@dataclass
class MemberNumbers:
    staff: StaffMember
    gmv_fen: int = 0
    orders: int = 0
    refunds_fen: int = 0
    adds: int = 0
    deletes: int = 0
    tasks_due: int = 0
    tasks_on_time: int = 0
    new_customers_tagged: int = 0
    moments: int = 0
    commission_fen: int = 0
    grade: str = ""  # 2-7-1: A top 20 %, B middle 70 %, C bottom 10 %
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def net_adds(self) -> int:
        return self.adds - self.deletes

    @property
    def on_time_rate(self) -> float | None:
        return self.tasks_on_time / self.tasks_due if self.tasks_due else None

    @property
    def tagged_rate(self) -> float | None:
        return self.new_customers_tagged / self.adds if self.adds else None


def _money_by_staff(event_type: str, start: datetime, end: datetime) -> dict[int, tuple[int, int]]:
    rows = (
        Event.objects.filter(type=event_type, occurred_at__gte=start, occurred_at__lt=end)
        .annotate(
            staff=KT("payload__staff_id"),
            amount=Cast(KT("payload__amount_fen"), BigIntegerField()),
        )
        .values("staff")
        .annotate(total=Sum("amount"), n=Count("id"))
    )
    result: dict[int, tuple[int, int]] = {}
    for row in rows:
        if row["staff"] and str(row["staff"]).isdigit():
            result[int(row["staff"])] = (int(row["total"] or 0), row["n"])
    return result


def _grade(ranked: list[MemberNumbers]) -> None:
    """2-7-1 by GMV: the top 20 % A, the bottom 10 % C (at least one each once there are
    three members), the rest B. Ties at a boundary share the better grade."""
    n = len(ranked)
    top = math.ceil(n * 0.2) if n >= 3 else 0
    bottom = max(1, math.floor(n * 0.1)) if n >= 3 else 0
    for index, row in enumerate(ranked):
        row.grade = "A" if index < top else "C" if index >= n - bottom else "B"
    for index in range(1, n):  # ties inherit the better grade
        if ranked[index].gmv_fen == ranked[index - 1].gmv_fen:
            ranked[index].grade = min(ranked[index].grade, ranked[index - 1].grade)


PERIOD_MAX_DAYS = 366


def period_clean(start: date | None, end: date | None) -> tuple[date, date]:
    """A reporting period: by default this month to date; at most a year, end not before start."""
    end = end or timezone.localdate()
    start = start or end.replace(day=1)
    if end < start or (end - start).days >= PERIOD_MAX_DAYS:
        raise InvalidInput(_("日期范围须在一年以内，且结束不早于开始"))
    return start, end


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, day after end 00:00) in the server's time zone."""
    zone = timezone.get_current_timezone()
    return (
        datetime.combine(start, time.min, tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone),
    )


def performance(
    *, actor: StaffMember, start: datetime, end: datetime, department_id: int | None = None
) -> dict[str, Any]:
    """Each member in scope over [start, end): GMV (paid − refunded), commission by the active
    scheme, adds and deletions, SOP/task punctuality, tagging of new customers and moments
    posted against the team's targets; ranked 2-7-1; and the period's honours."""
    if end <= start:
        raise InvalidInput(_("结束日期须晚于开始日期"))
    members = restrict(StaffMember.objects.all(), actor, Action.PERFORMANCE_VIEW, owner_field="id")
    if department_id is not None:
        members = members.filter(departments__in=department_subtree_ids({department_id}))
    paid = _money_by_staff("order.paid", start, end)
    refunded = _money_by_staff("order.refunded", start, end)
    # The front line, and whoever sold in the period (an admin may sell too).
    members = members.filter(Q(role__in=[Role.STAFF, Role.MANAGER]) | Q(pk__in=set(paid)))
    rows = {m.pk: MemberNumbers(staff=m) for m in members.distinct().order_by("name")}
    ids = list(rows)
    for staff_id, (total, n) in paid.items():
        if staff_id in rows:
            rows[staff_id].gmv_fen += total
            rows[staff_id].orders = n
    for staff_id, (total, _n) in refunded.items():
        if staff_id in rows:
            rows[staff_id].gmv_fen -= total
            rows[staff_id].refunds_fen = total
    relations = StaffRelation.objects.filter(staff_id__in=ids)
    added = relations.filter(added_at__gte=start, added_at__lt=end)
    for added_row in added.values("staff_id").annotate(
        n=Count("id"),
        tagged=Count(
            "id", filter=Q(Exists(CustomerTag.objects.filter(customer_id=OuterRef("customer_id"))))
        ),
    ):
        rows[added_row["staff_id"]].adds = added_row["n"]
        rows[added_row["staff_id"]].new_customers_tagged = added_row["tagged"]
    deleted = relations.filter(
        deleted_at__gte=start,
        deleted_at__lt=end,
        status__in=[RelationStatus.CUSTOMER_DELETED, RelationStatus.STAFF_DELETED],
    )
    for deleted_row in deleted.values("staff_id").annotate(n=Count("id")):
        rows[deleted_row["staff_id"]].deletes = deleted_row["n"]
    due_until = min(end, timezone.now())
    tasks = StaffTask.objects.filter(staff_id__in=ids, due_at__gte=start, due_at__lt=due_until)
    for task_row in _task_rows(tasks):
        rows[task_row["staff_id"]].tasks_due = task_row["n"]
        rows[task_row["staff_id"]].tasks_on_time = task_row["on_time"]
    moments = Batch.objects.filter(
        staff_id__in=ids,
        mass_send__kind=MassSendKind.MOMENTS,
        confirmed_at__gte=start,
        confirmed_at__lt=end,
    )
    for moment_row in moments.values("staff_id").annotate(n=Count("id")):
        rows[moment_row["staff_id"]].moments = moment_row["n"]
    scheme = CommissionScheme.objects.filter(active=True).first()
    targets = quality_targets()
    days = max(1.0, (min(end, timezone.now()) - start).total_seconds() / 86400)
    for row in rows.values():
        row.commission_fen = commission_for(row.gmv_fen, scheme.tiers) if scheme else 0
        on_time, tagged = row.on_time_rate, row.tagged_rate
        row.checks = {
            "tasks": on_time is None or on_time * 100 >= targets.task_on_time_pct,
            "tags": tagged is None or tagged * 100 >= targets.tagged_pct,
            "moments": row.moments >= float(targets.moments_per_day) * days,
        }
    ranked = sorted(rows.values(), key=lambda r: (-r.gmv_fen, r.staff.name))
    _grade(ranked)
    return {
        "members": ranked,
        "scheme": scheme,
        "targets": targets,
        "honours": _honours(ranked),
        "totals": {
            "gmv_fen": sum(r.gmv_fen for r in ranked),
            "commission_fen": sum(r.commission_fen for r in ranked),
            "net_adds": sum(r.net_adds for r in ranked),
        },
    }


def _task_rows(tasks: QuerySet[StaffTask]) -> list[dict[str, Any]]:
    counts: dict[int, dict[str, Any]] = {}
    for staff_id, due_at, done_at in tasks.values_list("staff_id", "due_at", "done_at"):
        row = counts.setdefault(staff_id, {"staff_id": staff_id, "n": 0, "on_time": 0})
        row["n"] += 1
        if done_at is not None and due_at is not None and done_at <= due_at:
            row["on_time"] += 1
    return list(counts.values())


def _honours(ranked: list[MemberNumbers]) -> list[dict[str, Any]]:
    """The period's honours, each to the best member with a non-zero result."""
    honours = []
    for title, key in (
        (_("销冠"), lambda r: r.gmv_fen),
        (_("拉新王"), lambda r: r.net_adds),
        (_("服务之星"), lambda r: (r.on_time_rate or 0, r.tasks_due)),
    ):
        best = max(ranked, key=key, default=None)
        if best is not None and key(best) not in (0, (0, 0)):
            honours.append({"title": title, "staff": best.staff})
    return honours
