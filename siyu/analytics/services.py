"""Writes: the channel rollup (incremental and rebuilt) and spend entries."""

import re
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require
from siyu.analytics.models import SourceDay, Spend
from siyu.analytics.rollup import Contribution, contribution, counted_types
from siyu.analytics.sources import SourceKey, kinds
from siyu.audit.services import audit_record
from siyu.core.errors import InvalidInput, NotFound
from siyu.core.models import Event
from siyu.core.tenancy import get_current_tenant

MAX_SPEND_FEN = 10**12  # 100 亿元: anything above is a typo
MAX_SPEND_DAYS = 366
_SOURCE_ID = re.compile(r"[A-Za-z0-9_-]{1,30}")


def rollup_apply(*, event: Event) -> bool:
    """Count one event into its day × source × member cell; False if it counts nowhere.

    Runs inside the event delivery's transaction, which also marks the delivery done, so each
    event is counted once. The increment is a single conditional UPDATE (no read-modify-write);
    the first event of a cell creates it, and a concurrent creator is answered by incrementing.
    """
    found = contribution(event)
    if found is None:
        return False
    if _increment(found):
        return True
    try:
        with transaction.atomic():
            SourceDay.objects.create(**_cell(found), **{found.field: 1})
    except IntegrityError:
        if not _increment(found):
            raise
    return True


def _cell(found: Contribution) -> dict[str, object]:
    return {
        "day": found.day,
        "source_kind": found.source[0],
        "source_id": found.source[1],
        "staff_id": found.staff_id,
    }


def _increment(found: Contribution) -> bool:
    updated = SourceDay.objects.filter(**_cell(found)).update(**{found.field: F(found.field) + 1})
    return updated == 1


def rollup_rebuild(*, since: date | None = None, batch: int = 2000) -> int:
    """Recompute the rollup of the tenant in context from the event log, from ``since`` (a
    local day; None = everything). Returns the number of cells written.

    For backfill (events from before analytics existed) and repair. Deliveries running during
    a rebuild may count an event twice; run it when the queue is quiet, or rerun it.
    """
    events = Event.objects.all()
    if since is not None:
        start = timezone.make_aware(datetime.combine(since, time.min))
        events = events.filter(occurred_at__gte=start)
    staff = dict(StaffMember.objects.values_list("userid", "pk"))
    previous: dict[tuple[str, str], str | None] = {}
    cells: dict[tuple[date, SourceKey, int | None], dict[str, int]] = {}
    ordered = events.filter(type__in=counted_types()).order_by("occurred_at", "pk")
    for event in ordered.iterator(chunk_size=batch):
        found = contribution(event, staff, previous)
        if found is None:
            continue
        key = (found.day, found.source, found.staff_id)
        cell = cells.setdefault(key, {"scans": 0, "adds": 0, "deletes": 0})
        cell[found.field] += 1
    tenant = get_current_tenant()
    rows = [
        SourceDay(
            tenant=tenant,
            day=day,
            source_kind=source[0],
            source_id=source[1],
            staff_id=staff_id,
            **counts,
        )
        for (day, source, staff_id), counts in cells.items()
    ]
    with transaction.atomic():
        stale = SourceDay.objects.all()
        if since is not None:
            stale = stale.filter(day__gte=since)
        stale.delete()
        SourceDay.objects.bulk_create(rows, batch_size=batch)
    return len(rows)


def parse_yuan(text: str) -> int:
    """An amount typed in yuan ("1234.5", "1,234.56") as fen. Refuses negatives, absurd sizes
    and fractions of a fen."""
    try:
        amount = Decimal(text.strip().replace(",", "").replace("，", ""))
    except InvalidOperation:
        raise InvalidInput(_("金额必须是数字，单位为元，例如 1200 或 99.50")) from None
    if not amount.is_finite() or not 0 <= amount * 100 <= MAX_SPEND_FEN:
        raise InvalidInput(_("金额必须在 0 到 100 亿元之间"))
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise InvalidInput(_("金额最多两位小数（精确到分）"))
    return int(fen)


def spend_create(
    *,
    actor: StaffMember,
    source_kind: str,
    source_id: str,
    start: date,
    end: date,
    amount_fen: int,
    note: str = "",
) -> Spend:
    """Record spend on one source over ``start``–``end`` (inclusive)."""
    require(actor, Action.ANALYTICS_SPEND)
    if not source_kind or source_kind not in kinds():
        raise InvalidInput(_("未知的来源类型：%(kind)s") % {"kind": source_kind})
    if not _SOURCE_ID.fullmatch(source_id):
        raise InvalidInput(_("来源编号只能是 1–30 位字母、数字、_ 或 -"))
    if type(amount_fen) is not int or not 0 <= amount_fen <= MAX_SPEND_FEN:
        raise InvalidInput(_("金额必须是不小于 0 的整数（单位：分），且不超过 100 亿元"))
    if end < start:
        raise InvalidInput(_("结束日期不能早于开始日期"))
    if (end - start).days + 1 > MAX_SPEND_DAYS:
        raise InvalidInput(_("一条花费最长覆盖 %(days)s 天") % {"days": MAX_SPEND_DAYS})
    if len(note) > 200:
        raise InvalidInput(_("备注最长 200 个字符"))
    with transaction.atomic():
        spend = Spend.objects.create(
            source_kind=source_kind,
            source_id=source_id,
            start=start,
            end=end,
            amount_fen=amount_fen,
            note=note,
            created_by=actor,
        )
        audit_record(
            actor=actor,
            action="analytics.spend_create",
            target=spend,
            details={"amount_fen": amount_fen, "start": str(start), "end": str(end)},
        )
    return spend


def spend_delete(*, actor: StaffMember, spend_id: int) -> None:
    require(actor, Action.ANALYTICS_SPEND)
    spend = Spend.objects.filter(pk=spend_id).first()
    if spend is None:
        raise NotFound(_("花费记录不存在"))
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="analytics.spend_delete",
            target=spend,
            details={"amount_fen": spend.amount_fen, "start": str(spend.start)},
        )
        spend.delete()
