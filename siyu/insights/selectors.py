"""Queries of the insights app. ``paid_purchases`` is the only place that reads the shop's
orders; the scoring and the churn records read everything else through this module too."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from siyu.accounts.models import Role, StaffMember, StaffStatus
from siyu.accounts.permissions import Action, require, restrict_customers, visible_staff_ids
from siyu.analytics.sources import SourceKey, format_source, source_labels, source_of_state
from siyu.core.models import Event
from siyu.customers.models import Customer, RelationStatus, StaffRelation
from siyu.insights.models import ChurnDirection, ChurnRecord, CustomerScore, Segment, ValueModel

# What counts as the customer interacting with the company (the engagement model's input).
# order.created is left out: an imported order's is recorded at import time, not when the
# customer acted; order.paid carries the payment time.
INTERACTION_TYPES = (
    "customer.added",
    "customer.joined_group",
    "content.opened",
    "content.read",
    "content.forwarded",
    "shop.product_viewed",
    "order.paid",
    "fission.joined",
)


@dataclass(frozen=True)
class Purchase:
    customer_id: int
    paid_at: datetime
    amount_fen: int


def _survivors() -> dict[int, int]:
    """Merged-away customer id → the surviving record's id (following chains)."""
    merged = dict(
        Customer.objects.filter(merged_into__isnull=False).values_list("pk", "merged_into_id")
    )
    result: dict[int, int] = {}
    for pk in merged:
        target = merged[pk]
        seen = {pk}
        while target in merged and target not in seen:
            seen.add(target)
            target = merged[target]
        result[pk] = target
    return result


def paid_purchases() -> list[Purchase]:
    """Every paid order of a known customer, net of refunds (fully refunded orders are no
    purchase), attributed to the surviving record of merged customers."""
    from siyu.shop.models import PAID_STATUSES, Order

    survivors = _survivors()
    rows = (
        Order.objects.filter(
            status__in=PAID_STATUSES, customer__isnull=False, paid_at__isnull=False
        )
        .values_list("customer_id", "paid_at", "paid_fen", "refunded_fen")
        .iterator(chunk_size=5000)
    )
    return [
        Purchase(survivors.get(customer_id, customer_id), paid_at, paid - refunded)
        for customer_id, paid_at, paid, refunded in rows
        if paid > refunded and customer_id is not None and paid_at is not None
    ]


def customer_paid_fen(customer_id: int) -> int:
    from siyu.shop.models import PAID_STATUSES, Order

    totals = Order.objects.filter(customer_id=customer_id, status__in=PAID_STATUSES).aggregate(
        paid=Coalesce(Sum("paid_fen"), 0), refunded=Coalesce(Sum("refunded_fen"), 0)
    )
    return int(totals["paid"]) - int(totals["refunded"])


def interactions(since: datetime) -> list[tuple[int, datetime]]:
    """(customer id, time) of every interaction since ``since``, merged records resolved."""
    survivors = _survivors()
    rows = (
        Event.objects.filter(
            type__in=INTERACTION_TYPES, customer_id__isnull=False, occurred_at__gte=since
        )
        .values_list("customer_id", "occurred_at")
        .iterator(chunk_size=5000)
    )
    return [(survivors.get(cid, cid), at) for cid, at in rows if cid is not None]


def scored_customers() -> list[tuple[int, datetime]]:
    """(id, created_at) of every customer record that is not merged away."""
    return list(Customer.objects.filter(merged_into__isnull=True).values_list("pk", "created_at"))


def customer_owners(customer_ids: list[int]) -> dict[int, StaffMember]:
    """Each customer's current owner: the active member whose relation was added last."""
    owners: dict[int, StaffMember] = {}
    relations = (
        StaffRelation.objects.filter(
            customer_id__in=customer_ids,
            status=RelationStatus.ACTIVE,
            staff__status=StaffStatus.ACTIVE,
        )
        .select_related("staff")
        .order_by("customer_id", "-added_at", "-pk")
    )
    for relation in relations:
        owners.setdefault(relation.customer_id, relation.staff)
    return owners


def bosses() -> list[StaffMember]:
    return list(StaffMember.objects.filter(role=Role.BOSS, status=StaffStatus.ACTIVE))


def recent_event(
    customer_id: int, types: tuple[str, ...], since: datetime, until: datetime
) -> bool:
    return Event.objects.filter(
        customer_id=customer_id, type__in=types, occurred_at__gte=since, occurred_at__lte=until
    ).exists()


def value_model() -> ValueModel | None:
    return ValueModel.objects.first()


# --- churn -------------------------------------------------------------------------------------


def _staff_scope(actor: StaffMember) -> Q:
    ids = visible_staff_ids(actor)
    return Q() if ids is None else Q(staff_id__in=ids)


def churn_records(
    *, actor: StaffMember, start: datetime, end: datetime, direction: str | None = None
) -> QuerySet[ChurnRecord]:
    """Deletions in [start, end) of relations of members in the actor's scope."""
    require(actor, Action.INSIGHTS_VIEW)
    rows = ChurnRecord.objects.filter(
        _staff_scope(actor), deleted_at__gte=start, deleted_at__lt=end
    )
    if direction:
        rows = rows.filter(direction=direction)
    return rows.select_related("customer", "staff", "reason_by")


@dataclass
class LossRow:
    key: str
    label: str
    base: int = 0  # relations that existed during the period
    by_customer: int = 0
    by_staff: int = 0

    @property
    def lost(self) -> int:
        return self.by_customer + self.by_staff

    @property
    def rate(self) -> float | None:
        return self.lost / self.base if self.base else None

    @property
    def customer_rate(self) -> float | None:
        return self.by_customer / self.base if self.base else None


@dataclass
class LossReport:
    start: datetime
    end: datetime
    total: LossRow
    by_staff: list[LossRow] = field(default_factory=list)
    by_source: list[LossRow] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)


def loss_report(*, actor: StaffMember, start: datetime, end: datetime) -> LossReport:
    """Loss rates in [start, end): deletions (each way) ÷ the relations that existed in the
    period (added before its end and not deleted before its start), per member and per source."""
    require(actor, Action.INSIGHTS_VIEW)
    scope = _staff_scope(actor)
    relations = (
        StaffRelation.objects.filter(scope, added_at__lt=end)
        .exclude(status=RelationStatus.HALF)
        .filter(Q(deleted_at__isnull=True) | Q(deleted_at__gte=start))
    )
    staff_rows: dict[int, LossRow] = {}
    source_rows: dict[SourceKey, LossRow] = {}
    total = LossRow("", "")
    names = dict(StaffMember.objects.values_list("pk", "name"))

    def staff_row(staff_id: int) -> LossRow:
        return staff_rows.setdefault(staff_id, LossRow(str(staff_id), names.get(staff_id, "-")))

    def source_row(key: SourceKey) -> LossRow:
        return source_rows.setdefault(key, LossRow(format_source(key), ""))

    by_state = relations.values("staff_id", "state").annotate(n=Count("pk"))
    for row in by_state:
        staff_row(row["staff_id"]).base += row["n"]
        source_row(source_of_state(row["state"])).base += row["n"]
        total.base += row["n"]
    deletions = (
        ChurnRecord.objects.filter(scope, deleted_at__gte=start, deleted_at__lt=end)
        .values("staff_id", "source_kind", "source_id", "direction")
        .annotate(n=Count("pk"))
    )
    for deleted in deletions:
        attr = "by_customer" if deleted["direction"] == ChurnDirection.CUSTOMER else "by_staff"
        targets = [total, source_row((deleted["source_kind"], deleted["source_id"]))]
        if deleted["staff_id"] is not None:
            targets.append(staff_row(deleted["staff_id"]))
        for target in targets:
            setattr(target, attr, getattr(target, attr) + deleted["n"])
    labels = source_labels(source_rows)
    for key, line in source_rows.items():
        line.label = labels[key]
    reasons: dict[str, int] = defaultdict(int)
    for known, written in ChurnRecord.objects.filter(
        scope, deleted_at__gte=start, deleted_at__lt=end
    ).values_list("known_reason", "reason"):
        reasons[written or known] += 1
    return LossReport(
        start=start,
        end=end,
        total=total,
        by_staff=sorted(staff_rows.values(), key=lambda r: (-(r.rate or 0), r.label)),
        by_source=sorted(source_rows.values(), key=lambda r: (-r.lost, r.key)),
        reasons=dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
    )


# --- scores ------------------------------------------------------------------------------------


def scores(*, actor: StaffMember) -> QuerySet[CustomerScore]:
    """Score rows of the customers the actor may see."""
    require(actor, Action.INSIGHTS_VIEW)
    visible = restrict_customers(Customer.objects.all(), actor, Action.INSIGHTS_VIEW)
    return CustomerScore.objects.filter(customer__in=visible).select_related("customer")


def at_risk(*, actor: StaffMember) -> QuerySet[CustomerScore]:
    return scores(actor=actor).filter(at_risk=True).order_by("-paid_fen", "p_active", "pk")


@dataclass(frozen=True)
class ValueSummary:
    buyers: int
    grid: list[list[int]]  # grid[r - 1][f - 1]: buyers with that recency and frequency score
    segments: dict[str, int]
    clv_histogram: list[tuple[int, int, int]]  # (from fen, to fen, customers)
    top: list[CustomerScore]


def value_summary(*, actor: StaffMember, top: int = 20) -> ValueSummary:
    rows = scores(actor=actor).filter(purchases__gt=0)
    grid = [[0] * 5 for _ in range(5)]
    for r, f, n in rows.values_list("rfm_r", "rfm_f").annotate(n=Count("pk")):
        if r and f:
            grid[r - 1][f - 1] += n
    segments = {str(label): 0 for value, label in Segment.choices if value}
    for value, n in rows.values_list("segment").annotate(n=Count("pk")):
        if value:
            segments[str(Segment(value).label)] += n
    clvs = sorted(v for v in rows.values_list("clv_fen", flat=True) if v is not None)
    return ValueSummary(
        buyers=rows.count(),
        grid=grid,
        segments=segments,
        clv_histogram=_histogram(clvs),
        top=list(rows.filter(clv_fen__isnull=False).order_by("-clv_fen", "pk")[:top]),
    )


def _histogram(values: list[int], bins: int = 10) -> list[tuple[int, int, int]]:
    if not values:
        return []
    high = max(values[-1], 1)
    width = max(1, -(-high // bins))
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, max(0, value) // width)] += 1
    return [(i * width, (i + 1) * width, n) for i, n in enumerate(counts)]
