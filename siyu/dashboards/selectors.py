"""Reads: dashboard panels from the rollups only (never the event log), within the caller's
data scope, filtered by date range, department and channel.

Every panel is a table (columns + rows) plus the chart kind that draws it, so the numbers of
each chart are exactly what its export holds. Panels fed by apps built alongside this one
(content, mass sends, SOPs, shop) say ``available=False`` until their event types exist.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import AccountKind, Department, Role, StaffMember, StaffStatus
from siyu.accounts.permissions import Action, department_subtree_ids, require, visible_staff_ids
from siyu.analytics.selectors import validate_range
from siyu.analytics.sources import SourceKey, parse_source, source_labels
from siyu.core.errors import InvalidInput, NotFound
from siyu.core.events import event_types
from siyu.customers.lifecycle import stages
from siyu.dashboards import rollup
from siyu.dashboards.models import CohortCell, CustomerTrack, MetricDay, MetricMonth

COHORT_OFFSETS = 12  # columns of the heat map
LIST_LIMIT = 50
HOT_DAYS = 7  # 意向 customers active this recently are hot leads
REPURCHASE_DAYS = (30, 90)  # paid this long ago and not since: a repurchase is due
SLIPPING_DAYS = (14, 60)  # active before, quiet this long: slipping


@dataclass(frozen=True)
class Filters:
    start: date
    end: date
    department_id: int | None = None
    channel: SourceKey | None = None  # one source
    kind: str | None = None  # every source of one kind ("" = adds without a Siyu state)


def parse_filters(
    *,
    start: str | date | None = None,
    end: str | date | None = None,
    department: str | int | None = None,
    channel: str | None = None,
) -> Filters:
    """Filters from a request's values; InvalidInput on a malformed one. Defaults: the last 30
    days, every department and channel. ``channel``: ``ch`` (a kind), ``ch:42``, ``-``."""
    try:
        last = _day(end) or timezone.localdate()
        first = _day(start) or last - timedelta(days=29)
    except ValueError:
        raise InvalidInput(_("日期格式应为 YYYY-MM-DD")) from None
    validate_range(first, last)
    department_id = None
    if department not in (None, ""):
        if not str(department).isdigit():
            raise InvalidInput(_("部门必须是部门编号"))
        department_id = int(department)
    source: SourceKey | None = None
    kind: str | None = None
    if channel:
        if channel.isalpha() and len(channel) <= 4:
            kind = channel
        else:
            try:
                source = parse_source(channel)
            except ValueError:
                raise InvalidInput(_("渠道格式应为 类型 或 类型:编号，例如 ch 或 ch:42")) from None
    return Filters(first, last, department_id, source, kind)


def _day(value: str | date | None) -> date | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def scope(actor: StaffMember, filters: Filters) -> set[int] | None:
    """Member ids whose numbers the actor sees under the filters; None: the whole company
    (including numbers no member can be named for)."""
    ids = visible_staff_ids(actor)
    if filters.department_id is None:
        return ids
    if not Department.objects.filter(pk=filters.department_id).exists():
        raise NotFound(_("部门不存在"))
    depts = department_subtree_ids({filters.department_id})
    members = set(
        StaffMember.objects.filter(
            Q(departments__in=depts) | Q(main_department_id__in=depts)
        ).values_list("pk", flat=True)
    )
    return members if ids is None else ids & members


def _filtered(qs: QuerySet[Any], filters: Filters, staff_ids: set[int] | None) -> QuerySet[Any]:
    if staff_ids is not None:
        qs = qs.filter(staff_id__in=staff_ids)
    if filters.channel is not None:
        qs = qs.filter(source_kind=filters.channel[0], source_id=filters.channel[1])
    elif filters.kind is not None:
        qs = qs.filter(source_kind="" if filters.kind == "-" else filters.kind)
    return qs


def balances(
    actor: StaffMember, filters: Filters, names: Iterable[str], on: date
) -> dict[str, int]:
    """Running totals of balance metrics at the end of ``on``: whole months from
    ``MetricMonth``, then the days of ``on``'s month from ``MetricDay``."""
    staff_ids = scope(actor, filters)
    first = rollup.month_start(on)
    names = list(names)
    totals: dict[str, int] = defaultdict(int)
    months = _filtered(
        MetricMonth.objects.filter(metric__in=names, month__lt=first), filters, staff_ids
    )
    days = _filtered(
        MetricDay.objects.filter(metric__in=names, day__gte=first, day__lte=on), filters, staff_ids
    )
    for qs in (months, days):
        for row in qs.values("metric").annotate(total=Sum("value")):
            totals[row["metric"]] += row["total"]
    return totals


def metric_sums(
    actor: StaffMember,
    filters: Filters,
    names: Iterable[str],
    *,
    by: tuple[str, ...] = ("day",),
) -> dict[tuple[Any, ...], int]:
    """Sums of rollup deltas over the filtered range, grouped by ``by`` (plus the metric name,
    last in each key)."""
    qs = MetricDay.objects.filter(
        metric__in=list(names), day__gte=filters.start, day__lte=filters.end
    )
    qs = _filtered(qs, filters, scope(actor, filters))
    rows = qs.values(*by, "metric").annotate(total=Sum("value"))
    return {(*(row[k] for k in by), row["metric"]): row["total"] for row in rows}


@dataclass
class Column:
    key: str
    label: str
    unit: str = ""  # "fen", "%", or "" (a count / text)

    def shown(self, value: Any) -> Any:
        """The value as people read it: fen as yuan, ratios as percentages, "" for none."""
        if value is None:
            return ""
        if self.unit == "fen":
            return f"{value / 100:.2f}"
        if self.unit == "%":
            return f"{value * 100:.1f}%"
        return value


@dataclass
class Panel:
    key: str
    title: str
    chart: str  # line | bar | funnel | heatmap | pie | table
    columns: list[Column]
    rows: list[list[Any]]
    available: bool = True
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shown_rows(self) -> list[list[Any]]:
        return [[c.shown(v) for c, v in zip(self.columns, row, strict=True)] for row in self.rows]


def _days(filters: Filters) -> list[date]:
    return [
        filters.start + timedelta(days=i) for i in range((filters.end - filters.start).days + 1)
    ]


def _ratio(top: int, base: int) -> float | None:
    return round(top / base, 4) if base else None


def _registered(*names: str) -> bool:
    known = {t.name for t in event_types()}
    return all(name in known for name in names)


# --- panels --------------------------------------------------------------------------------


def assets_panel(actor: StaffMember, filters: Filters) -> Panel:
    """Customer assets per day: total (balance), new, lost, net adds, active."""
    names = ("customers", "new_customers", "lost_customers", "active")
    daily = metric_sums(actor, filters, names)
    opening = balances(actor, filters, ["customers"], filters.start - timedelta(days=1))
    rows: list[list[Any]] = []
    total = opening["customers"]
    for day in _days(filters):
        net = daily.get((day, "customers"), 0)
        total += net
        rows.append(
            [
                str(day),
                total,
                daily.get((day, "new_customers"), 0),
                daily.get((day, "lost_customers"), 0),
                net,
                daily.get((day, "active"), 0),
            ]
        )
    return Panel(
        "assets",
        _("客户资产"),
        "line",
        [
            Column("day", _("日期")),
            Column("total", _("客户总数")),
            Column("new", _("新增客户")),
            Column("lost", _("流失客户")),
            Column("net", _("净增")),
            Column("active", _("活跃客户")),
        ],
        rows,
    )


def stages_panel(actor: StaffMember, filters: Filters) -> Panel:
    """Customers by lifecycle stage at the end of the range."""
    found = balances(actor, filters, [f"stage:{s.key}" for s in stages()], filters.end)
    rows = [[s.name, found[f"stage:{s.key}"]] for s in stages()]
    return Panel(
        "stages",
        _("客户阶段分布"),
        "pie",
        [Column("stage", _("阶段")), Column("count", _("客户数"))],
        rows,
    )


def funnel_panel(actor: StaffMember, filters: Filters) -> Panel:
    """Funnel steps reached per day and each step's conversion from the one before."""
    names = [f"funnel:{step}" for step in rollup.FUNNEL]
    daily = metric_sums(actor, filters, names)
    labels = _funnel_labels()
    rows: list[list[Any]] = []
    for day in _days(filters):
        counts = [daily.get((day, name), 0) for name in names]
        rates = [_ratio(counts[i], counts[i - 1]) for i in range(1, len(counts))]
        rows.append([str(day), *counts, *rates])
    columns = [Column("day", _("日期"))]
    columns += [Column(step, labels[step]) for step in rollup.FUNNEL]
    columns += [
        Column(f"rate_{step}", _("%(a)s→%(b)s") % {"a": labels[prev], "b": labels[step]}, "%")
        for prev, step in zip(rollup.FUNNEL, rollup.FUNNEL[1:], strict=False)
    ]
    totals = [sum(row[i + 1] for row in rows) for i in range(len(names))]
    return Panel(
        "funnel",
        _("转化漏斗"),
        "funnel",
        columns,
        rows,
        extra={"totals": dict(zip(rollup.FUNNEL, totals, strict=True))},
    )


def _funnel_labels() -> dict[str, str]:
    names = {s.key: s.name for s in stages()}
    return {
        "added": _("添加"),
        "engaged": _("互动"),
        "intent": names.get("intent", _("意向")),
        "paid": names.get("paid", _("付费")),
        "repeat": names.get("repeat", _("复购")),
    }


STAFF_METRICS = ("new_customers", "customers", "funnel:paid", "orders", "gmv_fen")


def staff_panel(actor: StaffMember, filters: Filters) -> Panel:
    """Per member (ranked by GMV, then net adds): the manager's ranking and the boss's 人效."""
    sums = metric_sums(actor, filters, STAFF_METRICS, by=("staff_id",))
    members = {m.pk: m for m in StaffMember.objects.filter(pk__in={k[0] for k in sums if k[0]})}
    table: list[list[Any]] = []
    for staff_id, member in members.items():
        values = [sums.get((staff_id, name), 0) for name in STAFF_METRICS]
        table.append([member.name, member.userid, *values])
    table.sort(key=lambda row: (-row[6], -row[3], row[1]))
    people = len(table)
    gmv = sum(row[6] for row in table)
    note = _("人效（人均 GMV）：%(yuan).2f 元，%(n)s 人") % {
        "yuan": gmv / people / 100 if people else 0,
        "n": people,
    }
    return Panel(
        "staff",
        _("员工排行与人效"),
        "bar",
        [
            Column("name", _("员工")),
            Column("userid", _("账号")),
            Column("new", _("新增客户")),
            Column("net", _("净增")),
            Column("paying", _("新增付费客户")),
            Column("orders", _("订单")),
            Column("gmv_fen", "GMV", "fen"),
        ],
        table,
        note=note,
        extra={"gmv_per_staff_fen": gmv // people if people else 0},
    )


CHANNEL_METRICS = ("adds", "deletes", "new_customers", "funnel:paid", "orders", "gmv_fen")


def channels_panel(actor: StaffMember, filters: Filters) -> Panel:
    """Channels and campaigns side by side (a fission campaign is a source of kind fx)."""
    sums = metric_sums(actor, filters, CHANNEL_METRICS, by=("source_kind", "source_id"))
    keys = sorted({(k[0], k[1]) for k in sums})
    labels = source_labels(keys)
    rows: list[list[Any]] = []
    for key in keys:
        v = {name: sums.get((*key, name), 0) for name in CHANNEL_METRICS}
        rows.append(
            [
                labels[key],
                f"{key[0]}:{key[1]}" if key[0] else "-",
                v["adds"],
                v["deletes"],
                v["adds"] - v["deletes"],
                v["new_customers"],
                v["funnel:paid"],
                _ratio(v["funnel:paid"], v["new_customers"]),
                v["orders"],
                v["gmv_fen"],
            ]
        )
    rows.sort(key=lambda row: (-row[2], row[1]))
    return Panel(
        "channels",
        _("渠道与活动对比"),
        "bar",
        [
            Column("label", _("来源")),
            Column("source", _("来源编号")),
            Column("adds", _("添加")),
            Column("deletes", _("删除")),
            Column("net", _("净增")),
            Column("new", _("新客户")),
            Column("paying", _("付费客户")),
            Column("paying_rate", _("付费转化率"), "%"),
            Column("orders", _("订单")),
            Column("gmv_fen", "GMV", "fen"),
        ],
        rows,
    )


def _subject_panel(
    actor: StaffMember,
    filters: Filters,
    *,
    key: str,
    title: str,
    prefix: str,
    metrics: list[tuple[str, str]],
    needs: tuple[str, ...],
    label: Callable[[list[str]], dict[str, str]],
) -> Panel:
    """Per subject (a content item, a mass send, …) counts of its events."""
    columns = [Column("subject", _("对象")), Column("id", _("编号"))]
    columns += [Column(name, text) for name, text in metrics]
    if not _registered(*needs):
        return Panel(
            key,
            title,
            "bar",
            columns,
            [],
            available=False,
            note=_("该功能模块尚未启用，暂无数据。"),
        )
    qs = MetricDay.objects.filter(
        metric__in=[name for name, _text in metrics],
        subject__startswith=prefix,
        day__gte=filters.start,
        day__lte=filters.end,
    )
    qs = _filtered(qs, filters, scope(actor, filters))
    sums: dict[str, dict[str, int]] = defaultdict(dict)
    for row in qs.values("subject", "metric").annotate(total=Sum("value")):
        sums[row["subject"].removeprefix(prefix)][row["metric"]] = row["total"]
    names = label(sorted(sums))
    rows = [
        [names.get(ident, f"#{ident}"), ident, *(sums[ident].get(name, 0) for name, _t in metrics)]
        for ident in sorted(sums, key=lambda i: -sum(sums[i].values()))
    ]
    return Panel(key, title, "bar", columns, rows)


def _model_names(app_label: str, model: str, attr: str) -> Callable[[list[str]], dict[str, str]]:
    """Display names from another app's model, if that app is installed and has the field."""

    def resolve(ids: list[str]) -> dict[str, str]:
        if not apps.is_installed(f"siyu.{app_label}"):
            return {}
        try:
            found = apps.get_model(app_label, model)
            found._meta.get_field(attr)
        except (LookupError, FieldDoesNotExist):  # a renamed model or field: fallback labels
            return {}
        pks = [int(i) for i in ids if i.isdigit()]
        return {
            str(pk): str(name)
            for pk, name in found.objects.filter(pk__in=pks).values_list("pk", attr)
        }

    return resolve


def content_panel(actor: StaffMember, filters: Filters) -> Panel:
    return _subject_panel(
        actor,
        filters,
        key="content",
        title=_("内容效果"),
        prefix="content:",
        metrics=[
            (rollup.CONTENT_OPENED, _("打开")),
            (rollup.CONTENT_READ, _("阅读")),
            (rollup.CONTENT_FORWARDED, _("转发")),
        ],
        needs=(rollup.CONTENT_OPENED,),
        label=_model_names("content", "ContentItem", "title"),
    )


def masssend_panel(actor: StaffMember, filters: Filters) -> Panel:
    return _subject_panel(
        actor,
        filters,
        key="masssend",
        title=_("群发效果"),
        prefix="masssend:",
        metrics=[(rollup.MASSSEND_SENT, _("已发送")), (rollup.MASSSEND_DELIVERED, _("已送达"))],
        needs=(rollup.MASSSEND_SENT,),
        label=_model_names("masssend", "MassSend", "name"),
    )


def sop_panel(actor: StaffMember, filters: Filters) -> Panel:
    """SOP funnels: enrolled → each step reached → converted, per SOP."""
    needs = (rollup.SOP_ENROLLED,)
    columns = [
        Column("sop", _("SOP")),
        Column("id", _("编号")),
        Column("step", _("步骤")),
        Column("count", _("人数")),
    ]
    if not _registered(*needs):
        return Panel(
            "sop",
            _("SOP 漏斗"),
            "funnel",
            columns,
            [],
            available=False,
            note=_("该功能模块尚未启用，暂无数据。"),
        )
    qs = MetricDay.objects.filter(
        metric__in=rollup.SOP_TYPES, day__gte=filters.start, day__lte=filters.end
    )
    qs = _filtered(qs, filters, scope(actor, filters))
    # subject "sop:<id>" (enrolled, converted) or "sop:<id>:<step>" (a step reached)
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in qs.values("subject", "metric").annotate(total=Sum("value")):
        _prefix, ident, *step = row["subject"].split(":", 2)
        sums[ident][step[0] if step else row["metric"]] += row["total"]
    names = _model_names("sop", "Sop", "name")(sorted(sums))
    rows = []
    for ident in sorted(sums):
        counts = sums[ident]
        steps = sorted((k for k in counts if k not in rollup.SOP_TYPES), key=lambda k: (len(k), k))
        for key in [rollup.SOP_ENROLLED, *steps, rollup.SOP_CONVERTED]:
            label = {rollup.SOP_ENROLLED: _("入组"), rollup.SOP_CONVERTED: _("转化")}.get(key, key)
            rows.append([names.get(ident, f"#{ident}"), ident, label, counts.get(key, 0)])
    return Panel("sop", _("SOP 漏斗"), "funnel", columns, rows)


def cohort_panel(actor: StaffMember, filters: Filters, grain: str = "week") -> Panel:
    """Retention heat map: customers first added in each week (month) of the range, and the share
    still a customer at the end of each later week (month). Periods not yet over are blank."""
    if grain not in ("week", "month"):
        raise InvalidInput(_("分组只能是 week 或 month"))
    first = rollup.cohort_key(grain, filters.start)
    qs = CohortCell.objects.filter(grain=grain, period__gte=first, period__lte=filters.end)
    qs = _filtered(qs, filters, scope(actor, filters))
    size: dict[date, int] = defaultdict(int)
    lost: dict[tuple[date, int], int] = defaultdict(int)
    for row in qs.values("period", "offset").annotate(s=Sum("size"), l=Sum("lost")):
        size[row["period"]] += row["s"]
        lost[(row["period"], row["offset"])] += row["l"]
    today = timezone.localdate()
    rows = []
    for period in sorted(size):
        cells: list[float | None] = []
        gone = 0
        for k in range(COHORT_OFFSETS):
            gone += lost.get((period, k), 0)
            over = _period_end(grain, period, k) < today
            cells.append(_ratio(size[period] - gone, size[period]) if over else None)
        rows.append([str(period), size[period], *cells])
    unit = _("周") if grain == "week" else _("月")
    columns = [Column("period", _("添加周期")), Column("size", _("客户数"))]
    columns += [Column(f"r{k}", f"{unit}{k}", "%") for k in range(COHORT_OFFSETS)]
    return Panel(
        "cohort", _("留存（按添加周期）"), "heatmap", columns, rows, extra={"grain": grain}
    )


def _period_end(grain: str, period: date, k: int) -> date:
    if grain == "week":
        return period + timedelta(days=7 * (k + 1) - 1)
    month = period.month - 1 + k + 1
    return date(period.year + month // 12, month % 12 + 1, 1) - timedelta(days=1)


def accounts_panel(actor: StaffMember, filters: Filters) -> Panel:
    """Account inventory (账号盘点): members in scope by account kind and status."""
    members = StaffMember.objects.all()
    ids = scope(actor, filters)
    if ids is not None:
        members = members.filter(pk__in=ids)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for kind, status in members.values_list("account_kind", "status"):
        counts[(kind, status)] += 1
    kinds = dict(AccountKind.choices)
    statuses = list(StaffStatus)
    rows = [
        [str(kinds[kind]), *(counts.get((kind, s.value), 0) for s in statuses)]
        for kind in kinds
        if any(counts.get((kind, s.value)) for s in statuses)
    ]
    columns = [Column("kind", _("账号类型"))] + [Column(s.value, str(s.label)) for s in statuses]
    return Panel("accounts", _("账号盘点"), "bar", columns, rows)


def _customer_list(
    actor: StaffMember, filters: Filters, key: str, title: str, tracks: QuerySet[CustomerTrack]
) -> Panel:
    tracks = _filtered(tracks, filters, scope(actor, filters)).filter(relations__gt=0)
    from siyu.customers.models import Customer

    found = list(tracks.order_by("-last_active_on", "customer_id")[:LIST_LIMIT])
    names = dict(
        Customer.objects.filter(pk__in=[t.customer_id for t in found]).values_list("pk", "name")
    )
    stage_names = {s.key: s.name for s in stages()}
    rows = [
        [
            t.customer_id,
            names.get(t.customer_id, ""),
            stage_names.get(t.stage, t.stage),
            str(t.last_active_on or ""),
            str(t.last_paid_on or ""),
            t.paid_orders,
        ]
        for t in found
    ]
    columns = [
        Column("customer_id", _("客户编号")),
        Column("name", _("客户")),
        Column("stage", _("阶段")),
        Column("last_active", _("最近互动")),
        Column("last_paid", _("最近付款")),
        Column("orders", _("付费订单")),
    ]
    return Panel(key, title, "table", columns, rows)


def hot_leads_panel(actor: StaffMember, filters: Filters) -> Panel:
    """意向 (not yet paid) customers who interacted in the last week, as of the range's end."""
    since = filters.end - timedelta(days=HOT_DAYS)
    tracks = CustomerTrack.objects.filter(
        intent_on__isnull=False, paid_on__isnull=True, last_active_on__gt=since
    )
    return _customer_list(actor, filters, "hot_leads", _("热门线索"), tracks)


def repurchase_panel(actor: StaffMember, filters: Filters) -> Panel:
    """Paying customers whose last payment was 30–90 days before the range's end."""
    low, high = REPURCHASE_DAYS
    tracks = CustomerTrack.objects.filter(
        last_paid_on__lte=filters.end - timedelta(days=low),
        last_paid_on__gt=filters.end - timedelta(days=high),
    )
    panel = _customer_list(actor, filters, "repurchase", _("待复购"), tracks)
    panel.available = _registered(rollup.ORDER_PAID)
    return panel


def slipping_panel(actor: StaffMember, filters: Filters) -> Panel:
    """Customers who interacted before but not in the 14–60 days up to the range's end."""
    low, high = SLIPPING_DAYS
    tracks = CustomerTrack.objects.filter(
        last_active_on__lte=filters.end - timedelta(days=low),
        last_active_on__gt=filters.end - timedelta(days=high),
    )
    return _customer_list(actor, filters, "slipping", _("流失风险"), tracks)


PANELS: dict[str, Callable[[StaffMember, Filters], Panel]] = {
    "assets": assets_panel,
    "stages": stages_panel,
    "funnel": funnel_panel,
    "staff": staff_panel,
    "channels": channels_panel,
    "content": content_panel,
    "masssend": masssend_panel,
    "sop": sop_panel,
    "cohort": cohort_panel,
    "accounts": accounts_panel,
    "hot_leads": hot_leads_panel,
    "repurchase": repurchase_panel,
    "slipping": slipping_panel,
}

# What each role's dashboard shows; ``goals`` is drawn from the goal selectors.
ROLE_PANELS: dict[str, tuple[str, ...]] = {
    "boss": ("assets", "stages", "staff", "channels", "cohort", "accounts"),
    "operations": ("funnel", "channels", "content", "sop", "masssend", "cohort"),
    "manager": ("staff", "assets", "funnel"),
    "staff": ("assets", "stages", "hot_leads", "repurchase", "slipping"),
}


def dashboard_kind(actor: StaffMember) -> str:
    kinds: dict[str, str] = {
        Role.BOSS: "boss",
        Role.ADMIN: "boss",
        Role.OPERATIONS: "operations",
        Role.MANAGER: "manager",
    }
    return kinds.get(actor.role, "staff")


def panel(actor: StaffMember, key: str, filters: Filters, **options: str) -> Panel:
    require(actor, Action.DASHBOARD_VIEW)
    builder = PANELS.get(key)
    if builder is None:
        raise NotFound(_("看板面板不存在"))
    if key == "cohort":
        return cohort_panel(actor, filters, options.get("grain") or "week")
    return builder(actor, filters)
