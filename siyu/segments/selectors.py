"""Reads of segments: who is in one, how many, and the saved segments themselves."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db.models import QuerySet
from pyroaring import BitMap

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require, restrict_customers, visible_staff_ids
from siyu.core.errors import NotFound
from siyu.customers.models import Customer, StaffRelation
from siyu.segments.compiler import bind, to_q
from siyu.segments.index import segment_index
from siyu.segments.models import SavedSegment

ENGINES = ("auto", "bitmap", "sql")


def segment_customers(expression: str) -> QuerySet[Customer]:
    """The live customers (never merged-away records) of the tenant in context who match
    ``expression``. Raises ``SegmentError`` (with the position) for bad syntax or unknown
    tags, stages, fields, members or event types. Callers narrow it further (data scope, …)."""
    return Customer.objects.filter(merged_into__isnull=True).filter(to_q(bind(expression)))


@dataclass(frozen=True)
class SegmentCount:
    count: int
    took_ms: float
    # "bitmap": the index alone; "bitmap+sql": the index plus database lookups for attributes
    # or behaviour counts; "sql": the compiled query.
    engine: str


def segment_count(
    *, expression: str, actor: StaffMember | None = None, engine: str = "auto"
) -> SegmentCount:
    """How many customers match, within ``actor``'s data scope when given (``None``: the
    whole tenant, for commands and jobs). ``auto`` uses the bitmap index."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    started = time.perf_counter()
    scope = visible_staff_ids(require(actor, Action.CUSTOMERS_VIEW)) if actor else None
    bound = bind(expression)
    if engine == "sql":
        customers = Customer.objects.filter(merged_into__isnull=True).filter(to_q(bound))
        if actor is not None:
            customers = restrict_customers(customers, actor)
        count, used = customers.count(), "sql"
    else:
        index = segment_index()
        with index.lock:
            members, used_sql = index.evaluate(bound)
        if scope is not None:
            # Same rule as restrict_customers: a relation in any state with a member in scope.
            owned = StaffRelation.objects.filter(staff_id__in=scope).values_list(
                "customer_id", flat=True
            )
            members &= BitMap(owned)
        count, used = len(members), "bitmap+sql" if used_sql else "bitmap"
    took_ms = (time.perf_counter() - started) * 1000
    return SegmentCount(count=count, took_ms=round(took_ms, 2), engine=used)


def saved_segment_list(*, actor: StaffMember | None = None) -> QuerySet[SavedSegment]:
    """Everyone may see the saved segments (they count and list only within their scope).
    ``actor=None``: the caller checked access itself (exports, jobs, commands)."""
    if actor is not None:
        require(actor, Action.CUSTOMERS_VIEW)
    return SavedSegment.objects.select_related("created_by").order_by("name")


def saved_segment_get(*, segment_id: int, actor: StaffMember | None = None) -> SavedSegment:
    segment = saved_segment_list(actor=actor).filter(pk=segment_id).first()
    if segment is None:
        raise NotFound("segment not found")
    return segment


def saved_segment_customers(*, actor: StaffMember, segment_id: int) -> QuerySet[Customer]:
    """The segment's members that ``actor`` may see, newest first."""
    segment = saved_segment_get(actor=actor, segment_id=segment_id)
    return restrict_customers(segment_customers(segment.expression), actor).order_by(
        "-created_at", "-pk"
    )
