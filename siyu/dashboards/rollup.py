"""What one event changes in the dashboard rollups. Shared by the incremental subscriber and the
rebuild, so the two cannot disagree.

Adds and deletes are counted exactly as the channel rollup counts them (same function, same
exclusions for 在职/离职继承). A *customer* is counted from their first counted add, under
that member and source; they are *lost* when their last counted relation ends and *return*
when one is added again. Funnel milestones (added → engaged → 意向 → 付费 → 复购) are counted
once per customer, on the day first reached; reaching a step also reaches the steps before it.
"""

from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from django.utils import timezone

from siyu.analytics.rollup import RELATION_TYPES, contribution
from siyu.analytics.sources import NO_SOURCE, SourceKey
from siyu.core.models import Event
from siyu.customers.events import CUSTOMER_ADDED, CUSTOMER_STAGE_CHANGED

# Contract event names of apps built alongside this one (content, shop, masssend, sop).
CONTENT_OPENED = "content.opened"
CONTENT_READ = "content.read"
CONTENT_FORWARDED = "content.forwarded"
PRODUCT_VIEWED = "shop.product_viewed"
ORDER_CREATED = "order.created"
ORDER_PAID = "order.paid"
ORDER_REFUNDED = "order.refunded"
MASSSEND_SENT = "masssend.sent"
MASSSEND_DELIVERED = "masssend.delivered"
SOP_ENROLLED = "sop.enrolled"
SOP_STEP_REACHED = "sop.step_reached"
SOP_CONVERTED = "sop.converted"

CONTENT_TYPES = (CONTENT_OPENED, CONTENT_READ, CONTENT_FORWARDED)
MASSSEND_TYPES = (MASSSEND_SENT, MASSSEND_DELIVERED)
SOP_TYPES = (SOP_ENROLLED, SOP_STEP_REACHED, SOP_CONVERTED)
# A customer doing something: engaged (funnel) and active that day.
INTERACTION_TYPES = (*CONTENT_TYPES, PRODUCT_VIEWED, ORDER_CREATED, ORDER_PAID)
TRACKED_TYPES = frozenset(
    {
        *RELATION_TYPES,
        CUSTOMER_STAGE_CHANGED,
        *INTERACTION_TYPES,
        ORDER_REFUNDED,
        *MASSSEND_TYPES,
        *SOP_TYPES,
    }
)

FUNNEL = ("added", "engaged", "intent", "paid", "repeat")


def is_balance(metric: str) -> bool:
    """Metrics read as a running total (customers now, per stage), kept per month too."""
    return metric == "customers" or metric.startswith("stage:")


# Lifecycle stage keys (the defaults) that mark funnel steps when a customer reaches them.
STAGE_STEPS = {"intent": "intent", "paid": "paid", "repeat": "repeat"}


@dataclass
class Track:
    customer_id: int
    staff_id: int | None
    source: SourceKey
    added_on: date
    stage: str = "normal"
    relations: int = 0
    reached: dict[str, date] = field(default_factory=dict)  # funnel step → day
    last_active_on: date | None = None
    last_paid_on: date | None = None
    paid_orders: int = 0


@dataclass(frozen=True)
class Delta:
    day: date
    staff_id: int | None
    source: SourceKey
    metric: str
    value: int
    subject: str = ""


@dataclass(frozen=True)
class CohortDelta:
    grain: str
    period: date
    staff_id: int | None
    source: SourceKey
    offset: int
    size: int = 0
    lost: int = 0


@dataclass
class Outcome:
    deltas: list[Delta] = field(default_factory=list)
    cohorts: list[CohortDelta] = field(default_factory=list)
    track: Track | None = None


@dataclass(frozen=True)
class Context:
    """Lookups an event needs: the tenant's stage order, and (in a rebuild) userid → id and the
    relations seen so far, as the channel rollup takes them. ``staff_ids`` validates member ids
    named in payloads (None: ask the database)."""

    stage_order: dict[str, int] = field(default_factory=dict)  # needed by stage events only
    staff: dict[str, int] | None = None
    previous: dict[tuple[str, str], str | None] | None = None
    staff_ids: set[int] | None = None


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def month_start(day: date) -> date:
    return day.replace(day=1)


def offset(grain: str, added: date, day: date) -> int:
    if grain == "week":
        return (week_start(day) - week_start(added)).days // 7
    return (day.year - added.year) * 12 + day.month - added.month


def cohort_key(grain: str, day: date) -> date:
    return week_start(day) if grain == "week" else month_start(day)


def apply(event: Event, track: Track | None, context: Context) -> Outcome:
    """The deltas one event causes and the customer's track after it (``track`` is not
    changed in place). Call with the event's tenant in context."""
    out = Outcome(track=replace(track, reached=dict(track.reached)) if track else None)
    day = timezone.localdate(event.occurred_at)
    if event.type in RELATION_TYPES:
        _relation(event, day, out, context)
        return out
    if event.type == CUSTOMER_STAGE_CHANGED:
        _stage(event, day, out, context)
        return out
    payload = event.payload if isinstance(event.payload, dict) else {}
    current = out.track
    named = payload.get("staff_id")
    if current is not None and named == current.staff_id:
        staff_id = current.staff_id  # the usual case: no lookup
    else:
        staff_id = _member(named, context)
        if staff_id is None and current is not None:
            staff_id = current.staff_id
    source = current.source if current is not None else NO_SOURCE

    def emit(metric: str, value: int = 1, subject: str = "") -> None:
        out.deltas.append(Delta(day, staff_id, source, metric, value, subject))

    if event.type in INTERACTION_TYPES and current is not None:
        _reach(current, "engaged", day, out)
        if current.last_active_on != day:
            emit("active")
            current.last_active_on = max(day, current.last_active_on or day)
    if event.type in CONTENT_TYPES:
        emit(event.type, subject=f"content:{_id(payload.get('item_id'))}")
    elif event.type == ORDER_PAID:
        amount = _positive(payload.get("amount_fen"))
        emit("gmv_fen", amount)
        emit("orders")
        if current is not None:
            current.paid_orders = max(
                current.paid_orders + 1, _positive(payload.get("paid_orders"))
            )
            current.last_paid_on = max(day, current.last_paid_on or day)
            _reach(current, "repeat" if current.paid_orders >= 2 else "paid", day, out)
    elif event.type == ORDER_REFUNDED:
        amount = _positive(payload.get("amount_fen"))
        emit("gmv_fen", -amount)
        emit("refund_fen", amount)
    elif event.type in MASSSEND_TYPES:
        emit(event.type, subject=f"masssend:{_id(payload.get('mass_send_id'))}")
    elif event.type in SOP_TYPES:
        subject = f"sop:{_id(payload.get('sop_id'))}"
        if event.type == SOP_STEP_REACHED:
            subject += f":{_id(payload.get('step'))}"
        emit(event.type, subject=subject)
    return out


def _relation(event: Event, day: date, out: Outcome, context: Context) -> None:
    found = contribution(event, context.staff, context.previous)
    if found is None:
        return
    out.deltas.append(Delta(day, found.staff_id, found.source, found.field, 1))
    if event.customer_id is None:
        return
    track = out.track
    if event.type == CUSTOMER_ADDED:
        if track is None:
            track = out.track = Track(event.customer_id, found.staff_id, found.source, day)
            _customer(track, day, out, +1)
            out.deltas.append(_on(track, day, "new_customers", 1))
            _reach(track, "added", day, out)
            for grain in ("week", "month"):
                out.cohorts.append(_cohort(track, grain, day, size=1))
        elif track.relations == 0:
            _customer(track, day, out, +1)
            out.deltas.append(_on(track, day, "returned_customers", 1))
            for grain in ("week", "month"):
                out.cohorts.append(_cohort(track, grain, day, lost=-1))
        track.relations += 1
    elif track is not None and track.relations > 0:
        track.relations -= 1
        if track.relations == 0:
            _customer(track, day, out, -1)
            out.deltas.append(_on(track, day, "lost_customers", 1))
            for grain in ("week", "month"):
                out.cohorts.append(_cohort(track, grain, day, lost=1))


def _stage(event: Event, day: date, out: Outcome, context: Context) -> None:
    track = out.track
    payload = event.payload if isinstance(event.payload, dict) else {}
    to = str(payload.get("to", ""))
    if track is None or not to or to == track.stage:
        return
    if track.relations > 0:
        out.deltas.append(_on(track, day, f"stage:{track.stage}", -1))
        out.deltas.append(_on(track, day, f"stage:{to}", 1))
    track.stage = to
    rank = context.stage_order.get(to)
    if rank is None:
        return
    for key, step in reversed(STAGE_STEPS.items()):
        if key in context.stage_order and rank >= context.stage_order[key]:
            _reach(track, step, day, out)
            return


def _customer(track: Track, day: date, out: Outcome, sign: int) -> None:
    out.deltas.append(_on(track, day, "customers", sign))
    out.deltas.append(_on(track, day, f"stage:{track.stage}", sign))


def _reach(track: Track, step: str, day: date, out: Outcome) -> None:
    """Mark ``step`` and every earlier funnel step reached (each once per customer)."""
    for name in FUNNEL[: FUNNEL.index(step) + 1]:
        if name not in track.reached:
            track.reached[name] = day
            out.deltas.append(_on(track, day, f"funnel:{name}", 1))


def _on(track: Track, day: date, metric: str, value: int) -> Delta:
    return Delta(day, track.staff_id, track.source, metric, value)


def _cohort(track: Track, grain: str, day: date, *, size: int = 0, lost: int = 0) -> CohortDelta:
    return CohortDelta(
        grain=grain,
        period=cohort_key(grain, track.added_on),
        staff_id=track.staff_id,
        source=track.source,
        offset=offset(grain, track.added_on, day),
        size=size,
        lost=lost,
    )


def _member(value: object, context: Context) -> int | None:
    if type(value) is not int or value <= 0:
        return None
    if context.staff_ids is not None:
        return value if value in context.staff_ids else None
    from siyu.accounts.models import StaffMember

    return value if StaffMember.objects.filter(pk=value).exists() else None


def _positive(value: object) -> int:
    """A payload's amount or count: a positive int, anything else counts as 0."""
    return value if type(value) is int and value > 0 else 0


def _id(value: object) -> str:
    return str(value)[:20] if type(value) in (int, str) else "?"
