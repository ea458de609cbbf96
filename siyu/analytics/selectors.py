"""Reads: the channel report (per source, per day) within the caller's data scope.

Counts from the event log come from the ``SourceDay`` rollup. Numbers that change as time
passes are computed here from the relations themselves, as cohorts of the customers added
through a source on a day:

- retention day N: the share of the cohort whose relation was still there N days after the add
  (measured only once N days have passed; a relation ended by 在职/离职继承 stays counted,
  the customer stayed with the company);
- conversion: the share of the cohort who reached 付费 or a later stage (a
  ``customer.stage_changed`` event, or their current stage);
- GMV: the sum of their ``order.paid`` amounts less their ``order.refunded`` amounts (payload
  ``amount_fen``), once the shop's event types exist; a customer who paid counts as converted
  even if no stage rule moved them.

A customer added through two sources counts in both cohorts. Spend (company-wide figures)
and with it cost per customer and ROI are shown only to members who see the whole company.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require, visible_staff_ids
from siyu.analytics.models import SourceDay, Spend
from siyu.analytics.rollup import DELETE_BY_TRANSFER, TRANSFER_ADD_WAYS
from siyu.analytics.sources import (
    NO_SOURCE,
    SourceKey,
    format_source,
    scan_kinds,
    source_labels,
    source_of_state,
)
from siyu.core.errors import InvalidInput
from siyu.core.events import event_types
from siyu.core.models import Event
from siyu.customers.events import CUSTOMER_STAGE_CHANGED
from siyu.customers.lifecycle import stage_order
from siyu.customers.models import Customer, StaffRelation

RETENTION_DAYS = (1, 7, 30)
MAX_RANGE_DAYS = 366
# Declared by the shop app (contract: payload "amount_fen").
ORDER_PAID = "order.paid"
ORDER_REFUNDED = "order.refunded"
PAID_STAGE = "paid"
_CHUNK = 2000

_Wanted = Callable[[SourceKey], bool]


@dataclass
class Counts:
    """Additive numbers of one source on one day (or summed over days)."""

    scans: int = 0
    adds: int = 0
    deletes: int = 0
    cohort: int = 0
    kept: dict[int, int] = field(default_factory=lambda: dict.fromkeys(RETENTION_DAYS, 0))
    measured: dict[int, int] = field(default_factory=lambda: dict.fromkeys(RETENTION_DAYS, 0))
    converted: int = 0
    gmv_fen: int = 0
    spend_fen: int = 0

    def merge(self, other: Counts) -> None:
        for name in ("scans", "adds", "deletes", "cohort", "converted", "gmv_fen", "spend_fen"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for n in RETENTION_DAYS:
            self.kept[n] += other.kept[n]
            self.measured[n] += other.measured[n]


@dataclass
class Line:
    """One source's numbers for one day (``day``) or the whole range (``day=None``)."""

    source: SourceKey
    label: str
    day: date | None
    counts: Counts
    scans_known: bool
    cost_visible: bool

    @property
    def key(self) -> str:
        return format_source(self.source)

    @property
    def scans(self) -> int | None:
        return self.counts.scans if self.scans_known else None

    @property
    def net_adds(self) -> int:
        return self.counts.adds - self.counts.deletes

    def retention(self, days: int) -> float | None:
        measured = self.counts.measured[days]
        return self.counts.kept[days] / measured if measured else None

    @property
    def retention_1(self) -> float | None:
        return self.retention(1)

    @property
    def retention_7(self) -> float | None:
        return self.retention(7)

    @property
    def retention_30(self) -> float | None:
        return self.retention(30)

    @property
    def conversion_rate(self) -> float | None:
        return self.counts.converted / self.counts.cohort if self.counts.cohort else None

    @property
    def spend_fen(self) -> int | None:
        return self.counts.spend_fen if self.cost_visible else None

    @property
    def cost_per_customer_fen(self) -> float | None:
        """Spend per net add; undefined (None) without spend or without net growth."""
        if not self.cost_visible or not self.counts.spend_fen or self.net_adds <= 0:
            return None
        return self.counts.spend_fen / self.net_adds

    @property
    def roi(self) -> float | None:
        """(GMV − spend) / spend; undefined (None) without spend."""
        if not self.cost_visible or not self.counts.spend_fen:
            return None
        return (self.counts.gmv_fen - self.counts.spend_fen) / self.counts.spend_fen


@dataclass
class Report:
    start: date
    end: date
    rows: list[Line]  # one per source, most adds first
    total: Line
    daily: dict[SourceKey, list[Line]]  # one line per day of the range, per source
    gmv_available: bool
    cost_visible: bool
    scans_known: bool  # any source in the report has scan numbers

    @property
    def days(self) -> list[date]:
        return _days(self.start, self.end)


def source_report(
    *,
    actor: StaffMember,
    start: date,
    end: date,
    kind: str | None = None,
    sources: list[SourceKey] | None = None,
) -> Report:
    """The channel report for ``start``–``end`` (local days, inclusive): every source with
    activity, or only ``kind``, or only ``sources`` (side-by-side comparison)."""
    require(actor, Action.ANALYTICS_VIEW)
    validate_range(start, end)
    staff_ids = visible_staff_ids(actor)
    cost_visible = staff_ids is None

    def wanted(source: SourceKey) -> bool:
        if sources:
            return source in sources
        return kind is None or source[0] == kind

    cells: dict[SourceKey, dict[date, Counts]] = defaultdict(lambda: defaultdict(Counts))
    _add_rollup(cells, start, end, staff_ids, wanted)
    gmv_available = _add_cohorts(cells, start, end, staff_ids, wanted)
    if cost_visible:
        _add_spend(cells, start, end, wanted)
    for source in sources or []:
        # A compared source with no activity still gets its (empty) column.
        cells.setdefault(source, defaultdict(Counts))

    labels = source_labels(cells)
    known = scan_kinds()
    days = _days(start, end)
    daily: dict[SourceKey, list[Line]] = {}
    rows: list[Line] = []
    grand = Counts()
    for source, by_day in cells.items():
        lines = [
            Line(
                source,
                labels[source],
                day,
                by_day.get(day, Counts()),
                source[0] in known,
                cost_visible,
            )
            for day in days
        ]
        total = Counts()
        for line in lines:
            total.merge(line.counts)
        grand.merge(total)
        daily[source] = lines
        rows.append(Line(source, labels[source], None, total, source[0] in known, cost_visible))
    rows.sort(key=lambda line: (-line.counts.adds, line.source))
    scans_known = any(row.scans_known for row in rows)
    return Report(
        start=start,
        end=end,
        rows=rows,
        total=Line(NO_SOURCE, _("合计"), None, grand, scans_known, cost_visible),
        daily=daily,
        gmv_available=gmv_available,
        cost_visible=cost_visible,
        scans_known=scans_known,
    )


def validate_range(start: date, end: date) -> None:
    if end < start:
        raise InvalidInput(_("结束日期不能早于开始日期"))
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise InvalidInput(_("一次最多查看 %(days)s 天") % {"days": MAX_RANGE_DAYS})


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _local_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _add_rollup(
    cells: dict[SourceKey, dict[date, Counts]],
    start: date,
    end: date,
    staff_ids: set[int] | None,
    wanted: _Wanted,
) -> None:
    rows = SourceDay.objects.filter(day__gte=start, day__lte=end)
    if staff_ids is not None:
        rows = rows.filter(staff_id__in=staff_ids)
    summed = rows.values("day", "source_kind", "source_id").annotate(
        scans_sum=Sum("scans"), adds_sum=Sum("adds"), deletes_sum=Sum("deletes")
    )
    for row in summed:
        source = (row["source_kind"], row["source_id"])
        if not wanted(source):
            continue
        counts = cells[source][row["day"]]
        counts.scans += row["scans_sum"]
        counts.adds += row["adds_sum"]
        counts.deletes += row["deletes_sum"]


def _add_cohorts(
    cells: dict[SourceKey, dict[date, Counts]],
    start: date,
    end: date,
    staff_ids: set[int] | None,
    wanted: _Wanted,
) -> bool:
    """Retention, conversion and GMV of the customers added in the range; True if GMV is
    measured (the ``order.paid`` event type exists)."""
    relations: QuerySet[StaffRelation] = StaffRelation.objects.filter(
        added_at__gte=_local_start(start), added_at__lt=_local_start(end + timedelta(days=1))
    ).exclude(add_way__in=TRANSFER_ADD_WAYS)
    if staff_ids is not None:
        relations = relations.filter(staff_id__in=staff_ids)
    now = timezone.now()
    members: dict[tuple[SourceKey, date], set[int]] = defaultdict(set)
    for customer_id, state, added_at, deleted_at, delete_source in relations.values_list(
        "customer_id", "state", "added_at", "deleted_at", "delete_source"
    ).iterator(chunk_size=_CHUNK):
        source = source_of_state(state)
        if added_at is None or not wanted(source):
            continue
        day = timezone.localdate(added_at)
        counts = cells[source][day]
        counts.cohort += 1
        members[(source, day)].add(customer_id)
        for n in RETENTION_DAYS:
            mark = added_at + timedelta(days=n)
            if mark > now:
                continue
            counts.measured[n] += 1
            if deleted_at is None or deleted_at > mark or delete_source == DELETE_BY_TRANSFER:
                counts.kept[n] += 1
    everyone = set().union(*members.values()) if members else set()
    gmv_available = any(t.name == ORDER_PAID for t in event_types())
    gmv = _gmv(everyone) if gmv_available else {}
    converted = _converted(everyone) | set(gmv)
    for (source, day), ids in members.items():
        counts = cells[source][day]
        counts.converted += len(ids & converted)
        counts.gmv_fen += sum(gmv.get(customer_id, 0) for customer_id in ids)
    return gmv_available


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ordered = sorted(ids)
    for i in range(0, len(ordered), _CHUNK):
        yield ordered[i : i + _CHUNK]


def _converted(customer_ids: set[int]) -> set[int]:
    order = stage_order()
    if PAID_STAGE not in order:
        return set()
    paid = [key for key, rank in order.items() if rank >= order[PAID_STAGE]]
    found: set[int] = set()
    for chunk in _chunks(customer_ids):
        found.update(
            Customer.objects.filter(pk__in=chunk, stage__in=paid).values_list("pk", flat=True)
        )
        changed = Event.objects.filter(
            type=CUSTOMER_STAGE_CHANGED, customer_id__in=chunk, payload__to__in=paid
        ).values_list("customer_id", flat=True)
        found.update(customer_id for customer_id in changed if customer_id is not None)
    return found


def _gmv(customer_ids: set[int]) -> dict[int, int]:
    """Paid less refunded, per customer who paid at all."""
    totals: dict[int, int] = defaultdict(int)
    for chunk in _chunks(customer_ids):
        for customer_id, kind, payload in Event.objects.filter(
            type__in=(ORDER_PAID, ORDER_REFUNDED), customer_id__in=chunk
        ).values_list("customer_id", "type", "payload"):
            amount = payload.get("amount_fen") if isinstance(payload, dict) else None
            if customer_id is None or type(amount) is not int or amount <= 0:
                continue
            if kind == ORDER_PAID:
                totals[customer_id] += amount
            elif customer_id in totals:
                totals[customer_id] -= amount
    return totals


def _add_spend(
    cells: dict[SourceKey, dict[date, Counts]], start: date, end: date, wanted: _Wanted
) -> None:
    for spend in Spend.objects.filter(start__lte=end, end__gte=start):
        source = (spend.source_kind, spend.source_id)
        if not wanted(source):
            continue
        for day, fen in spread(spend.amount_fen, spend.start, spend.end).items():
            if start <= day <= end:
                cells[source][day].spend_fen += fen


def spread(amount_fen: int, start: date, end: date) -> dict[date, int]:
    """An amount spread evenly over its days in whole fen; the first days take the remainder,
    so the parts always add up to the amount."""
    days = (end - start).days + 1
    share, rest = divmod(amount_fen, days)
    return {start + timedelta(days=i): share + (1 if i < rest else 0) for i in range(days)}


def spend_list(*, actor: StaffMember) -> QuerySet[Spend]:
    require(actor, Action.ANALYTICS_SPEND)
    return Spend.objects.select_related("created_by").all()
