"""The in-memory bitmap index: instant segment counts for millions of customers.

Per tenant, one roaring bitmap of customer ids per tag, stage, staff member (active relations)
and local day of first add, plus the live (not merged-away) customers. A count walks the bound
expression with bitmap and/or/andnot; conditions the index does not hold (attributes, behaviour
counts) are asked of the database and turned into a bitmap on the way.

The index is built from the tables once per process and kept current from the event log: every
event names the customer it changed, so catching up means re-reading those customers' rows
(``refresh``) — idempotent, whatever the event type. Ids are allocated before commit, so a row
may become visible after a higher id: the follower re-reads a short settling window each time
and only moves its watermark past rows older than ``SETTLE``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Min
from django.db.models.functions import TruncDate
from django.utils import timezone
from pyroaring import BitMap

from siyu.core.models import Event
from siyu.core.tenancy import get_current_tenant
from siyu.customers.models import Customer, RelationStatus, StaffRelation
from siyu.segments.compiler import (
    BAnd,
    BNot,
    BOr,
    Bound,
    FirstAdded,
    FollowedBy,
    HasTags,
    InStage,
    SqlOnly,
)
from siyu.tags.models import CustomerTag

# How long a transaction may stay open between allocating an event id and committing it.
SETTLE = timedelta(seconds=60)
# Event payload keys naming other customers a change touched (merge, undo, split).
CUSTOMER_REFS = ("absorbed_id", "survivor_id", "original_id", "new_id")
CHUNK = 5000


def _union(bitmaps: list[BitMap]) -> BitMap:
    return BitMap.union(*bitmaps) if bitmaps else BitMap()


class _Follower:
    """Which rows of an append-only table (by pk) have been applied."""

    def __init__(self, watermark: int) -> None:
        self.watermark = watermark  # every row with pk ≤ watermark is applied
        self.seen: set[int] = set()  # applied rows above the watermark

    @classmethod
    def start(cls, rows: Any, written: str) -> _Follower:
        """Start following ``rows`` (a queryset): everything visible now counts as applied
        (the build reads it), rows in the settling window are remembered by pk."""
        follower = cls(_max_pk(rows.filter(**{f"{written}__lt": timezone.now() - SETTLE})))
        follower.seen = set(
            rows.filter(pk__gt=follower.watermark).values_list("pk", flat=True).iterator()
        )
        return follower

    def take(self, rows: list[tuple[int, datetime]], now: datetime) -> list[int]:
        """Of ``rows`` (all rows above the watermark: pk, time written), the pks not yet
        applied; marks them applied and moves the watermark past the settled ones."""
        fresh = [pk for pk, _ in rows if pk not in self.seen]
        self.seen.update(fresh)
        settled = [pk for pk, written in rows if written < now - SETTLE]
        if settled:
            self.watermark = max(settled)
            self.seen = {pk for pk in self.seen if pk > self.watermark}
        return fresh


class SegmentIndex:
    """One tenant's index. Build with ``build`` (tenant in context); use under ``lock``."""

    def __init__(self) -> None:
        self.live = BitMap()
        self.tags: dict[int, BitMap] = {}
        self.stages: dict[str, BitMap] = {}
        self.staff: dict[int, BitMap] = {}
        self.days: dict[date, BitMap] = {}
        self.events = _Follower(0)
        self.customers = _Follower(0)
        self.lock = threading.Lock()
        self.build_seconds = 0.0

    # ---- building ----------------------------------------------------------------------------

    @classmethod
    def build(cls) -> SegmentIndex:
        started = time.perf_counter()
        index = cls()
        # Followers first, tables second: anything written in between is applied again later,
        # which re-reads the same rows and changes nothing.
        index.events = _Follower.start(Event.objects.all(), "recorded_at")
        index.customers = _Follower.start(Customer.objects.all(), "created_at")
        live = Customer.objects.filter(merged_into__isnull=True)
        index.live = _bitmap(live.values_list("pk", flat=True))
        for stage in live.values_list("stage", flat=True).distinct():
            index.stages[stage] = _bitmap(
                Customer.objects.filter(stage=stage).values_list("pk", flat=True)
            )
        for tag_id in CustomerTag.objects.values_list("tag_id", flat=True).distinct():
            index.tags[tag_id] = _bitmap(
                CustomerTag.objects.filter(tag_id=tag_id).values_list("customer_id", flat=True)
            )
        active = StaffRelation.objects.filter(status=RelationStatus.ACTIVE)
        for staff_id in active.values_list("staff_id", flat=True).distinct():
            index.staff[staff_id] = _bitmap(
                active.filter(staff_id=staff_id).values_list("customer_id", flat=True)
            )
        # Min of the local day is the local day of the min: one grouped scan.
        firsts = (
            active.filter(added_at__isnull=False)
            .values("customer_id")
            .annotate(day=Min(TruncDate("added_at", tzinfo=timezone.get_current_timezone())))
            .values_list("day", "customer_id")
            .order_by()
        )
        by_day: dict[date, list[int]] = {}
        for day, customer_id in _iterate(firsts):
            by_day.setdefault(day, []).append(customer_id)
        index.days = {day: BitMap(ids) for day, ids in by_day.items()}
        for bitmap in index._bitmaps():
            bitmap.run_optimize()  # runs of consecutive ids (imports, old customers) shrink
            bitmap.shrink_to_fit()
        index.build_seconds = time.perf_counter() - started
        return index

    # ---- keeping current ---------------------------------------------------------------------

    def catch_up(self) -> int:
        """Apply events and new customers written since the last call; returns how many
        customers were re-read."""
        now = timezone.now()
        dirty = BitMap()
        events = list(
            Event.objects.filter(pk__gt=self.events.watermark).values_list(
                "pk", "recorded_at", "customer_id", "payload"
            )
        )
        fresh = set(self.events.take([(pk, at) for pk, at, _, _ in events], now))
        for pk, _, customer_id, payload in events:
            if pk not in fresh:
                continue
            if customer_id is not None:
                dirty.add(customer_id)
            if isinstance(payload, dict):
                dirty.update(
                    v for k in CUSTOMER_REFS if isinstance(v := payload.get(k), int) and v > 0
                )
        created = list(
            Customer.objects.filter(pk__gt=self.customers.watermark).values_list("pk", "created_at")
        )
        dirty.update(self.customers.take(created, now))
        if dirty:
            self.refresh(dirty)
        return len(dirty)

    def refresh(self, customer_ids: BitMap) -> None:
        """Make the index agree with the database about these customers."""
        stage_of: dict[int, str] = {}
        live: list[int] = []
        tags: dict[int, list[int]] = {}
        staff: dict[int, list[int]] = {}
        first: dict[int, datetime] = {}
        for chunk in _chunks(customer_ids):
            for pk, stage, merged_into in Customer.objects.filter(pk__in=chunk).values_list(
                "pk", "stage", "merged_into_id"
            ):
                stage_of[pk] = stage
                if merged_into is None:
                    live.append(pk)
            for customer_id, tag_id in CustomerTag.objects.filter(
                customer_id__in=chunk
            ).values_list("customer_id", "tag_id"):
                tags.setdefault(tag_id, []).append(customer_id)
            for customer_id, staff_id, added_at in StaffRelation.objects.filter(
                customer_id__in=chunk, status=RelationStatus.ACTIVE
            ).values_list("customer_id", "staff_id", "added_at"):
                staff.setdefault(staff_id, []).append(customer_id)
                if added_at is not None and (
                    customer_id not in first or added_at < first[customer_id]
                ):
                    first[customer_id] = added_at
        self.live.difference_update(customer_ids)
        self.live.update(live)
        _replace(self.stages, _group(stage_of.items()), customer_ids)
        _replace(self.tags, tags, customer_ids)
        _replace(self.staff, staff, customer_ids)
        days = _group((pk, timezone.localdate(at)) for pk, at in first.items())
        _replace(self.days, days, customer_ids)

    # ---- answering ---------------------------------------------------------------------------

    def evaluate(self, node: Bound) -> tuple[BitMap, bool]:
        """The live customers matching ``node``, and whether the database had to help.
        Leaves may return the index's own bitmaps: only fresh results are modified in place."""
        used_sql = [False]
        result = self._eval(node, used_sql) & self.live
        return result, used_sql[0]

    def _eval(self, node: Bound, used_sql: list[bool]) -> BitMap:
        if isinstance(node, BAnd):
            # a and not b = a − b: never materialise "everyone but b" inside a conjunction.
            positives = [self._eval(i, used_sql) for i in node.items if not isinstance(i, BNot)]
            negatives = [self._eval(i.item, used_sql) for i in node.items if isinstance(i, BNot)]
            result = BitMap.intersection(*positives) if positives else BitMap(self.live)
            for negative in negatives:
                result.difference_update(negative)
            return result
        if isinstance(node, BOr):
            return _union([self._eval(item, used_sql) for item in node.items])
        if isinstance(node, BNot):
            return self.live - self._eval(node.item, used_sql)
        if isinstance(node, HasTags):
            return _union([self.tags[t] for t in node.tag_ids if t in self.tags])
        if isinstance(node, InStage):
            return self.stages.get(node.key) or BitMap()
        if isinstance(node, FollowedBy):
            return self.staff.get(node.staff_id) or BitMap()
        if isinstance(node, FirstAdded):
            return _union(
                [
                    bitmap
                    for day, bitmap in self.days.items()
                    if (node.since is None or day >= node.since)
                    and (node.before is None or day < node.before)
                ]
            )
        if isinstance(node, SqlOnly):
            used_sql[0] = True
            return _bitmap(node.ids)
        raise TypeError(f"unknown segment node {node!r}")

    def _bitmaps(self) -> list[BitMap]:
        bitmaps: list[BitMap] = [self.live]
        for family in (self.tags, self.stages, self.staff, self.days):
            bitmaps.extend(family.values())
        return bitmaps

    def memory_bytes(self) -> int:
        """What the bitmaps hold (roaring's own size; the dicts around them are small)."""
        return sum(bitmap.__sizeof__() for bitmap in self._bitmaps())


def _max_pk(queryset: Any) -> int:
    return queryset.order_by("-pk").values_list("pk", flat=True).first() or 0


def _iterate(queryset: Any) -> Iterator[Any]:
    # A server-side cursor on PostgreSQL: millions of rows without holding them all at once.
    return queryset.iterator(chunk_size=100_000)


def _bitmap(ids: Iterable[int]) -> BitMap:
    bitmap = BitMap()
    batch: list[int] = []
    iterator = ids.iterator(chunk_size=100_000) if hasattr(ids, "iterator") else ids
    for value in iterator:
        batch.append(value)
        if len(batch) >= 100_000:
            bitmap.update(batch)
            batch = []
    bitmap.update(batch)
    return bitmap


def _replace[K](family: dict[K, BitMap], fresh: dict[K, list[int]], ids: BitMap) -> None:
    """Forget ``ids`` in every bitmap of ``family``, then add what the database says now."""
    for bitmap in family.values():
        bitmap.difference_update(ids)
    for key, members in fresh.items():
        family.setdefault(key, BitMap()).update(members)


def _chunks(ids: BitMap) -> Iterator[list[int]]:
    values = list(ids)
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _group[K](pairs: Iterable[tuple[int, K]]) -> dict[K, list[int]]:
    grouped: dict[K, list[int]] = {}
    for pk, key in pairs:
        grouped.setdefault(key, []).append(pk)
    return grouped


# ---- one index per tenant per process ---------------------------------------------------------

_indexes: dict[tuple[int, datetime], SegmentIndex] = {}
_registry_lock = threading.Lock()


def segment_index() -> SegmentIndex:
    """The current index of the tenant in context: built on first use, caught up on every
    call. Keyed by the tenant's creation time too, so a recreated tenant row with a reused id
    (tests, restores) never sees another tenant's bitmaps."""
    tenant = get_current_tenant()
    key = (tenant.pk, tenant.created_at)
    with _registry_lock:
        index = _indexes.get(key)
        if index is None:
            index = _indexes[key] = SegmentIndex.build()
    with index.lock:
        index.catch_up()
    return index


def segment_index_forget_all() -> None:
    """Drop every index (tests; after a restore). The next count rebuilds."""
    with _registry_lock:
        _indexes.clear()
