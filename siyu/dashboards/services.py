"""Writes: the dashboard rollups (incremental and rebuilt) and goals with their PDCA log."""

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import Department, StaffMember
from siyu.accounts.permissions import Action, require, visible_staff_ids
from siyu.audit.services import audit_record
from siyu.core.errors import InvalidInput
from siyu.core.models import Event
from siyu.core.tenancy import get_current_tenant
from siyu.customers.events import CUSTOMER_STAGE_CHANGED
from siyu.customers.lifecycle import stage_order
from siyu.dashboards import metrics
from siyu.dashboards.goals import measure_series
from siyu.dashboards.models import (
    CohortCell,
    CustomerTrack,
    Goal,
    GoalLog,
    MetricDay,
    MetricMonth,
    PdcaPhase,
    TargetKind,
)
from siyu.dashboards.rollup import (
    TRACKED_TYPES,
    Context,
    Outcome,
    Track,
    apply,
    is_balance,
    month_start,
)

MAX_GOAL_DAYS = 3 * 366
MAX_RELATIVE_PERCENT = 1000.0

# A rollup cell's key (member and source first, as ``_CELL`` lists them) → amounts to add.
Cells = dict[tuple[Any, ...], list[int]]
_CELL = ("staff_id", "source_kind", "source_id")


def rollup_apply(*, event: Event) -> Outcome:
    """Apply one event to the rollups. Runs inside the event delivery's transaction, which also
    marks the delivery done, so each event counts once; the customer's track row is locked so
    two of their events cannot both take the same milestone."""
    row = None
    if event.customer_id is not None:
        locked = CustomerTrack.objects.select_for_update()
        row = locked.filter(customer_id=event.customer_id).first()
    order = stage_order() if event.type == CUSTOMER_STAGE_CHANGED else {}
    out = apply(event, _track(row) if row else None, Context(stage_order=order))
    if out.track is not None:
        _save_track(out.track, row)
    days: Cells = defaultdict(lambda: [0])
    months: Cells = defaultdict(lambda: [0])
    cohorts: Cells = defaultdict(lambda: [0, 0])
    for d in out.deltas:
        days[(d.staff_id, *d.source, d.day, d.metric, d.subject)][0] += d.value
        if is_balance(d.metric):
            months[(d.staff_id, *d.source, month_start(d.day), d.metric)][0] += d.value
    for c in out.cohorts:
        counts = cohorts[(c.staff_id, *c.source, c.grain, c.period, c.offset)]
        counts[0] += c.size
        counts[1] += c.lost
    _add_to_cells(MetricDay, (*_CELL, "day", "metric", "subject"), ("value",), days)
    _add_to_cells(MetricMonth, (*_CELL, "month", "metric"), ("value",), months)
    _add_to_cells(CohortCell, (*_CELL, "grain", "period", "offset"), ("size", "lost"), cohorts)
    return out


def _add_to_cells(
    model: type[models.Model], key: tuple[str, ...], amounts: tuple[str, ...], cells: Cells
) -> None:
    """Add each cell's amounts to its row of ``model``, creating the rows missing: one upsert per
    group of cells with and without a member, because each group has its own partial unique
    index (``_once``). ``key`` names the columns of that index besides the tenant; every other
    column of the model is in ``amounts``. Exact under concurrency: a row another transaction
    inserts meanwhile is waited for and incremented, never a duplicate nor an error."""
    # Raw SQL because the ORM cannot say "insert, or add to the row already there" (bulk_create's
    # update_conflicts overwrites, and cannot name a partial index). Only identifiers from the
    # model are interpolated; every value is a bound parameter. Rows go in key order so that
    # transactions sharing cells lock them in the same order.
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    columns = ("tenant_id", *key, *amounts)
    by_column = {field.attname: field for field in model._meta.concrete_fields}
    fields = [by_column[name] for name in columns]
    tenant_id = get_current_tenant().pk
    staff = key.index("staff_id")
    for attributed in (True, False):
        group = sorted(item for item in cells.items() if (item[0][staff] is not None) == attributed)
        if not group:
            continue
        target = [name for name in ("tenant_id", *key) if attributed or name != "staff_id"]
        row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        sql = (
            f"INSERT INTO {table} ({', '.join(qn(name) for name in columns)}) "  # noqa: S608
            f"VALUES {', '.join([row] * len(group))} "
            f"ON CONFLICT ({', '.join(qn(name) for name in target)}) "
            f"WHERE {qn('staff_id')} IS {'NOT NULL' if attributed else 'NULL'} DO UPDATE SET "
            + ", ".join(f"{qn(a)} = {table}.{qn(a)} + EXCLUDED.{qn(a)}" for a in amounts)
        )
        params = [
            field.get_db_prep_save(value, connection)
            for cell, added in group
            for field, value in zip(fields, (tenant_id, *cell, *added), strict=True)
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _track(row: CustomerTrack) -> Track:
    reached = {
        step: day
        for step, day in (
            ("added", row.added_on),
            ("engaged", row.engaged_on),
            ("intent", row.intent_on),
            ("paid", row.paid_on),
            ("repeat", row.repeat_on),
        )
        if day is not None
    }
    return Track(
        customer_id=row.customer_id,
        staff_id=row.staff_id,
        source=(row.source_kind, row.source_id),
        added_on=row.added_on,
        stage=row.stage,
        relations=row.relations,
        reached=reached,
        last_active_on=row.last_active_on,
        last_paid_on=row.last_paid_on,
        paid_orders=row.paid_orders,
    )


def _track_fields(track: Track) -> dict[str, Any]:
    return {
        "staff_id": track.staff_id,
        "source_kind": track.source[0],
        "source_id": track.source[1],
        "added_on": track.added_on,
        "stage": track.stage,
        "relations": track.relations,
        "engaged_on": track.reached.get("engaged"),
        "intent_on": track.reached.get("intent"),
        "paid_on": track.reached.get("paid"),
        "repeat_on": track.reached.get("repeat"),
        "last_active_on": track.last_active_on,
        "last_paid_on": track.last_paid_on,
        "paid_orders": track.paid_orders,
    }


def _save_track(track: Track, row: CustomerTrack | None) -> None:
    if row is None:
        CustomerTrack.objects.create(customer_id=track.customer_id, **_track_fields(track))
    else:
        CustomerTrack.objects.filter(pk=row.pk).update(**_track_fields(track))


def rollup_rebuild(*, batch: int = 5000) -> int:
    """Recompute every rollup of the tenant in context from the event log; returns the number
    of metric cells written. For backfill and repair: run it when the queue is quiet (a delivery
    running meanwhile may count its event twice), or rerun it."""
    context = Context(
        stage_order=stage_order(),
        staff=dict(StaffMember.objects.values_list("userid", "pk")),
        previous={},
        staff_ids=set(StaffMember.objects.values_list("pk", flat=True)),
    )
    tracks: dict[int, Track] = {}
    cells: dict[tuple[Any, ...], int] = defaultdict(int)
    months: dict[tuple[Any, ...], int] = defaultdict(int)
    cohorts: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    events = Event.objects.filter(type__in=TRACKED_TYPES).order_by("occurred_at", "pk")
    for event in events.iterator(chunk_size=batch):
        out = apply(event, tracks.get(event.customer_id or 0), context)
        if out.track is not None:
            tracks[out.track.customer_id] = out.track
        for d in out.deltas:
            cells[(d.day, d.staff_id, d.source, d.metric, d.subject)] += d.value
            if is_balance(d.metric):
                months[(month_start(d.day), d.staff_id, d.source, d.metric)] += d.value
        for c in out.cohorts:
            counts = cohorts[(c.grain, c.period, c.staff_id, c.source, c.offset)]
            counts[0] += c.size
            counts[1] += c.lost
    tenant = get_current_tenant()
    with transaction.atomic():
        for model in (MetricDay, MetricMonth, CohortCell, CustomerTrack):
            model.objects.all().delete()
        CustomerTrack.objects.bulk_create(
            (
                CustomerTrack(tenant=tenant, customer_id=t.customer_id, **_track_fields(t))
                for t in tracks.values()
            ),
            batch_size=batch,
        )
        MetricDay.objects.bulk_create(
            (
                MetricDay(
                    tenant=tenant,
                    day=day,
                    staff_id=staff_id,
                    source_kind=source[0],
                    source_id=source[1],
                    metric=metric,
                    subject=subject,
                    value=value,
                )
                for (day, staff_id, source, metric, subject), value in cells.items()
            ),
            batch_size=batch,
        )
        MetricMonth.objects.bulk_create(
            (
                MetricMonth(
                    tenant=tenant,
                    month=month,
                    staff_id=staff_id,
                    source_kind=source[0],
                    source_id=source[1],
                    metric=metric,
                    value=value,
                )
                for (month, staff_id, source, metric), value in months.items()
            ),
            batch_size=batch,
        )
        CohortCell.objects.bulk_create(
            (
                CohortCell(
                    tenant=tenant,
                    grain=grain,
                    period=period,
                    staff_id=staff_id,
                    source_kind=source[0],
                    source_id=source[1],
                    offset=off,
                    size=size,
                    lost=lost,
                )
                for (grain, period, staff_id, source, off), (size, lost) in cohorts.items()
            ),
            batch_size=batch,
        )
    return len(cells)


def goal_create(
    *,
    actor: StaffMember,
    name: str,
    metric: str,
    target_kind: str,
    target_value: float,
    start: date,
    deadline: date,
    owner_id: int,
    department_id: int | None = None,
    window_days: int = 30,
) -> Goal:
    """A SMART goal: a registered metric, a measured baseline (the window ending the day before
    ``start``), a target (absolute, or relative % over the baseline), a deadline and an owner."""
    require(actor, Action.GOALS_MANAGE)
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput(_("目标名称应为 1–100 个字符"))
    if metric not in metrics.METRICS:
        raise InvalidInput(_("未知的指标：%(metric)s") % {"metric": metric})
    if target_kind not in TargetKind.values:
        raise InvalidInput(_("目标类型只能是 absolute 或 relative"))
    if not 1 <= window_days <= 366:
        raise InvalidInput(_("统计窗口应为 1–366 天"))
    today = timezone.localdate()
    if deadline <= start:
        raise InvalidInput(_("截止日期必须晚于开始日期"))
    if deadline <= today:
        raise InvalidInput(_("截止日期必须在今天之后"))
    if (deadline - start).days > MAX_GOAL_DAYS:
        raise InvalidInput(_("目标周期最长 3 年"))
    owner = StaffMember.objects.filter(pk=owner_id).first()
    scope = visible_staff_ids(actor)
    if owner is None or (scope is not None and owner.pk not in scope):
        raise InvalidInput(_("负责人不存在"))
    if department_id is not None and not Department.objects.filter(pk=department_id).exists():
        raise InvalidInput(_("部门不存在"))
    baseline_day = min(start, today + timedelta(days=1)) - timedelta(days=1)
    measured = measure_series(
        metric=metric,
        department_id=department_id,
        window_days=window_days,
        first=baseline_day,
        last=baseline_day,
    )
    baseline = measured[0][1]
    if target_kind == TargetKind.RELATIVE:
        if not -100 < target_value <= MAX_RELATIVE_PERCENT:
            raise InvalidInput(_("相对提升应在 -100% 到 1000% 之间"))
        if not baseline:
            raise InvalidInput(_("基线为 0 或无法计算，请改用目标值"))
        target = baseline * (1 + target_value / 100)
    else:
        if target_value < 0:
            raise InvalidInput(_("目标值不能为负"))
        target = float(target_value)
    with transaction.atomic():
        goal = Goal.objects.create(
            name=name,
            metric=metric,
            department_id=department_id,
            owner=owner,
            window_days=window_days,
            baseline=baseline or 0.0,
            target_kind=target_kind,
            target_input=target_value,
            target=target,
            start=start,
            deadline=deadline,
            created_by=actor,
        )
        audit_record(
            actor=actor,
            action="dashboards.goal_create",
            target=goal,
            details={"metric": metric, "baseline": goal.baseline, "target": target},
        )
    return goal


def goal_log_add(*, actor: StaffMember, goal: Goal, phase: str, note: str) -> GoalLog:
    """One plan/do/check/act entry. Anyone who sees the goal may log against it."""
    require(actor, Action.DASHBOARD_VIEW)
    if phase not in PdcaPhase.values:
        raise InvalidInput(_("阶段只能是 plan、do、check 或 act"))
    note = note.strip()
    if not 1 <= len(note) <= 2000:
        raise InvalidInput(_("记录内容应为 1–2000 个字符"))
    return GoalLog.objects.create(goal=goal, phase=phase, note=note, author=actor)


def goal_delete(*, actor: StaffMember, goal: Goal) -> None:
    require(actor, Action.GOALS_MANAGE)
    with transaction.atomic():
        audit_record(actor=actor, action="dashboards.goal_delete", target=goal, details={})
        goal.delete()
