"""Writes for account assets (lifecycle, hand-back, inventory) and the team's rules
(commission scheme, quality targets). Validated in full before anything is written."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action, access_staff_member, require
from siyu.audit.services import audit_record
from siyu.core.errors import Conflict, InvalidInput, NotFound
from siyu.core.tenancy import get_current_tenant
from siyu.customers.models import RelationStatus, StaffRelation
from siyu.tags.models import CustomerTag
from siyu.team.models import (
    STAGE_MOVES,
    AccountAsset,
    AssetFriendDay,
    AssetLog,
    AssetStage,
    CommissionScheme,
    InventoryItem,
    InventoryRun,
    QualityTargets,
)
from siyu.transfers.models import TransferJob
from siyu.transfers.services import MAX_CUSTOMERS_PER_JOB, transfer_customers

HOLDER_MAX = 64
NOTE_MAX = 300
TIERS_MAX = 10
RATE_MAX_BP = 10_000  # 100 %


def _note(note: str) -> str:
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise InvalidInput(_("备注不能超过 %(max)s 字") % {"max": NOTE_MAX})
    return note


def assets_ensure() -> int:
    """Every member's WeCom account is an asset: create the missing ones (tenant in context).
    An account that already serves customers starts in use; a new one starts at 起号."""
    missing = StaffMember.objects.filter(asset__isnull=True).annotate(
        serving=Exists(
            StaffRelation.objects.filter(staff=OuterRef("pk"), status=RelationStatus.ACTIVE)
        )
    )
    now = timezone.now()
    tenant = get_current_tenant()
    created = AccountAsset.objects.bulk_create(
        (
            AccountAsset(
                tenant=tenant,
                staff=member,
                stage=AssetStage.IN_USE if member.serving else AssetStage.REGISTERED,
                stage_changed_at=now,
            )
            for member in missing
        ),
        ignore_conflicts=True,  # a concurrent ensure made some of them
    )
    return len(created)


def _asset(actor: StaffMember, asset_id: int, *, write: bool) -> AccountAsset:
    asset = AccountAsset.objects.select_related("staff").filter(pk=asset_id).first()
    if asset is None:
        raise NotFound(_("账号不存在"))
    access_staff_member(actor, asset.staff_id, write=write)
    return asset


def _log(asset: AccountAsset, kind: str, before: str, after: str, note: str, actor: Any) -> None:
    AssetLog.objects.create(
        asset=asset, kind=kind, before=before, after=after, note=note, actor=actor
    )


@transaction.atomic
def asset_update(
    *, actor: StaffMember, asset_id: int, holder: str | None = None, note: str | None = None
) -> AccountAsset:
    require(actor, Action.ASSETS_MANAGE)
    asset = _asset(actor, asset_id, write=True)
    if holder is not None:
        holder = holder.strip()
        if len(holder) > HOLDER_MAX:
            raise InvalidInput(_("持有人不能超过 %(max)s 字") % {"max": HOLDER_MAX})
        if holder != asset.holder:
            _log(asset, "holder", asset.holder, holder, "", actor)
            asset.holder = holder
    if note is not None:
        asset.note = _note(note)
    asset.save(update_fields=["holder", "note"])
    return asset


@transaction.atomic
def asset_stage_set(
    *, actor: StaffMember, asset_id: int, stage: str, note: str = ""
) -> AccountAsset:
    """Move the account along its lifecycle; 还号 only through ``asset_hand_back``."""
    require(actor, Action.ASSETS_MANAGE)
    asset = _asset(actor, asset_id, write=True)
    if stage not in AssetStage.values:
        raise InvalidInput(_("未知的阶段 %(stage)s") % {"stage": stage})
    if stage == AssetStage.HANDED_BACK:
        raise InvalidInput(_("还号须指定接替成员，以便继承该账号的客户"), code="hand_back")
    if stage not in STAGE_MOVES[asset.stage]:
        raise Conflict(
            _("账号不能从「%(before)s」转为「%(after)s」")
            % {"before": asset.get_stage_display(), "after": AssetStage(stage).label}
        )
    _log(asset, "stage", asset.stage, stage, _note(note), actor)
    asset.stage, asset.stage_changed_at = stage, timezone.now()
    asset.save(update_fields=["stage", "stage_changed_at"])
    return asset


def asset_hand_back(
    *, actor: StaffMember, asset_id: int, successor_id: int, note: str = ""
) -> list[TransferJob]:
    """还号: the account's customers are transferred to ``successor`` (WeCom's on-job or resigned
    inheritance, in jobs of WeCom's size) and the account leaves service. Refused, with nothing
    changed, if the transfer cannot start."""
    require(actor, Action.ASSETS_MANAGE)
    require(actor, Action.TRANSFER_CUSTOMERS)
    asset = _asset(actor, asset_id, write=True)
    if asset.stage == AssetStage.HANDED_BACK:
        raise Conflict(_("该账号已归还"))
    note = _note(note)
    successor = access_staff_member(actor, successor_id)
    if successor.pk == asset.staff_id:
        raise InvalidInput(_("接替成员不能是该账号本身"))
    if successor.status != StaffStatus.ACTIVE:
        raise InvalidInput(_("接替成员须在职"))
    customer_ids = list(
        StaffRelation.objects.filter(staff_id=asset.staff_id, status=RelationStatus.ACTIVE)
        .order_by("customer_id")
        .values_list("customer_id", flat=True)
        .distinct()
    )
    jobs = [
        transfer_customers(
            actor=actor,
            handover_id=asset.staff_id,
            takeover_id=successor.pk,
            customer_ids=customer_ids[start : start + MAX_CUSTOMERS_PER_JOB],
        )
        for start in range(0, len(customer_ids), MAX_CUSTOMERS_PER_JOB)
    ]
    with transaction.atomic():
        detail = _("%(n)s 位客户由 %(name)s 继承") % {
            "n": len(customer_ids),
            "name": successor.name,
        }
        _log(asset, "hand_back", asset.stage, AssetStage.HANDED_BACK, note or detail, actor)
        asset.stage, asset.stage_changed_at = AssetStage.HANDED_BACK, timezone.now()
        asset.save(update_fields=["stage", "stage_changed_at"])
        audit_record(
            actor=actor,
            action="assets.hand_back",
            target=asset,
            details={
                "successor": successor.userid,
                "customers": len(customer_ids),
                "jobs": [job.pk for job in jobs],
            },
        )
    return jobs


def _friend_counts(staff_ids: list[int]) -> dict[int, int]:
    rows = (
        StaffRelation.objects.filter(staff_id__in=staff_ids, status=RelationStatus.ACTIVE)
        .values("staff_id")
        .annotate(n=Count("customer_id", distinct=True))
    )
    return {row["staff_id"]: row["n"] for row in rows}


def _tagged_counts(staff_ids: list[int]) -> dict[int, int]:
    tagged = CustomerTag.objects.filter(customer_id=OuterRef("customer_id"))
    rows = (
        StaffRelation.objects.filter(staff_id__in=staff_ids, status=RelationStatus.ACTIVE)
        .filter(Exists(tagged))
        .values("staff_id")
        .annotate(n=Count("customer_id", distinct=True))
    )
    return {row["staff_id"]: row["n"] for row in rows}


def friend_days_record(*, day: date | None = None) -> int:
    """Daily (tenant in context): each account's friend count, for its history."""
    assets_ensure()
    day = day or timezone.localdate()
    assets = list(AccountAsset.objects.exclude(stage=AssetStage.HANDED_BACK))
    counts = _friend_counts([a.staff_id for a in assets])
    AssetFriendDay.objects.bulk_create(
        (
            AssetFriendDay(tenant=a.tenant, asset=a, day=day, friends=counts.get(a.staff_id, 0))
            for a in assets
        ),
        update_conflicts=True,
        unique_fields=["asset", "day"],
        update_fields=["friends"],
    )
    return len(assets)


@transaction.atomic
def inventory_start(*, actor: StaffMember, name: str) -> InventoryRun:
    """盘号: a checklist per account in service (in the actor's scope), with what Siyu knows
    now — friends and tagging compliance — for the checker to confirm against the device."""
    require(actor, Action.ASSETS_MANAGE)
    name = name.strip()
    if not name or len(name) > 64:
        raise InvalidInput(_("请填写盘点名称（不超过 64 字）"))
    if InventoryRun.objects.filter(closed_at__isnull=True).exists():
        raise Conflict(_("上一次盘号还未结束"))
    assets_ensure()
    assets = list(AccountAsset.objects.exclude(stage=AssetStage.HANDED_BACK))
    staff_ids = [a.staff_id for a in assets]
    friends, tagged = _friend_counts(staff_ids), _tagged_counts(staff_ids)
    run = InventoryRun.objects.create(name=name, created_by=actor)
    InventoryItem.objects.bulk_create(
        InventoryItem(
            tenant=run.tenant,
            run=run,
            asset=asset,
            friends_recorded=friends.get(asset.staff_id, 0),
            tagged_share=(
                tagged.get(asset.staff_id, 0) / friends[asset.staff_id]
                if friends.get(asset.staff_id)
                else 1.0
            ),
        )
        for asset in assets
    )
    audit_record(
        actor=actor, action="assets.inventory_start", target=run, details={"items": len(assets)}
    )
    return run


@transaction.atomic
def inventory_check(
    *,
    actor: StaffMember,
    item_id: int,
    holder_confirmed: bool,
    friends_counted: int,
    data_backed_up: bool,
    note: str = "",
) -> InventoryItem:
    require(actor, Action.ASSETS_MANAGE)
    item = InventoryItem.objects.select_related("run", "asset").filter(pk=item_id).first()
    if item is None:
        raise NotFound(_("盘点项不存在"))
    access_staff_member(actor, item.asset.staff_id, write=True)
    if item.run.closed_at is not None:
        raise Conflict(_("该次盘号已结束"))
    if not isinstance(friends_counted, int) or isinstance(friends_counted, bool):
        raise InvalidInput(_("好友数须为整数"))
    if not 0 <= friends_counted <= 1_000_000:
        raise InvalidInput(_("好友数须在 0 到 1000000 之间"))
    item.holder_confirmed = bool(holder_confirmed)
    item.friends_counted = friends_counted
    item.data_backed_up = bool(data_backed_up)
    item.note = _note(note)
    item.checked_by, item.checked_at = actor, timezone.now()
    item.save()
    asset = item.asset
    asset.last_audited_at = item.checked_at
    asset.save(update_fields=["last_audited_at"])
    _log(asset, "inventory", "", "ok" if item_passed(item) else "issues", item.note, actor)
    return item


def item_passed(item: InventoryItem, *, tagged_min: float | None = None) -> bool:
    """All four checks: holder confirmed, friend count as recorded, tagging compliance, backup."""
    if tagged_min is None:
        tagged_min = quality_targets().tagged_pct / 100
    return bool(
        item.holder_confirmed
        and item.friends_counted == item.friends_recorded
        and item.tagged_share >= tagged_min
        and item.data_backed_up
    )


@transaction.atomic
def inventory_close(*, actor: StaffMember, run_id: int) -> InventoryRun:
    require(actor, Action.ASSETS_MANAGE)
    run = InventoryRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None:
        raise NotFound(_("盘号不存在"))
    if run.closed_at is not None:
        raise Conflict(_("该次盘号已结束"))
    unchecked = run.items.filter(checked_at__isnull=True).count()
    if unchecked:
        raise Conflict(_("还有 %(n)s 个账号未盘点") % {"n": unchecked}, code="unchecked")
    run.closed_at = timezone.now()
    run.save(update_fields=["closed_at"])
    audit_record(actor=actor, action="assets.inventory_close", target=run, details={})
    return run


def quality_targets() -> QualityTargets:
    targets, _created = QualityTargets.objects.get_or_create()
    return targets


@transaction.atomic
def quality_targets_set(
    *, actor: StaffMember, task_on_time_pct: int, tagged_pct: int, moments_per_day: float
) -> QualityTargets:
    require(actor, Action.PERFORMANCE_MANAGE)
    for value in (task_on_time_pct, tagged_pct):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
            raise InvalidInput(_("百分比须为 0 到 100 的整数"))
    if not isinstance(moments_per_day, int | float) or not 0 <= moments_per_day <= 50:
        raise InvalidInput(_("每日朋友圈目标须在 0 到 50 之间"))
    targets = quality_targets()
    targets.task_on_time_pct, targets.tagged_pct = task_on_time_pct, tagged_pct
    targets.moments_per_day = Decimal(str(round(float(moments_per_day), 1)))
    targets.save()
    audit_record(
        actor=actor,
        action="team.targets",
        target=targets,
        details={
            "task_on_time_pct": task_on_time_pct,
            "tagged_pct": tagged_pct,
            "moments_per_day": float(moments_per_day),
        },
    )
    return targets


def tiers_clean(raw: object) -> list[dict[str, int]]:
    """Tiers start at 0, ascend, and carry a rate in basis points (0–10000)."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= TIERS_MAX:
        raise InvalidInput(_("请设置 1 到 %(max)s 档提成") % {"max": TIERS_MAX})
    clean = []
    for tier in raw:
        if not isinstance(tier, dict) or set(tier) != {"from_fen", "rate_bp"}:
            raise InvalidInput(_("每档须为 {from_fen, rate_bp}"))
        start, rate = tier["from_fen"], tier["rate_bp"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, rate)):
            raise InvalidInput(_("门槛和比例须为整数"))
        if start < 0 or not 0 <= rate <= RATE_MAX_BP:
            raise InvalidInput(_("门槛不能为负，比例须在 0 到 10000 基点之间"))
        clean.append({"from_fen": start, "rate_bp": rate})
    if clean[0]["from_fen"] != 0:
        raise InvalidInput(_("第一档须从 0 元开始"))
    starts = [t["from_fen"] for t in clean]
    if starts != sorted(set(starts)):
        raise InvalidInput(_("各档门槛须递增且不重复"))
    return clean


@transaction.atomic
def commission_scheme_set(*, actor: StaffMember, name: str, tiers: object) -> CommissionScheme:
    """A new active scheme; the previous one is kept (inactive) for the record."""
    require(actor, Action.PERFORMANCE_MANAGE)
    name = name.strip()
    if not name or len(name) > 64:
        raise InvalidInput(_("请填写方案名称（不超过 64 字）"))
    clean = tiers_clean(tiers)
    CommissionScheme.objects.filter(active=True).update(active=False)
    scheme = CommissionScheme.objects.create(name=name, tiers=clean)
    audit_record(
        actor=actor, action="team.commission_scheme", target=scheme, details={"tiers": clean}
    )
    return scheme


def commission_for(gmv_fen: int, tiers: list[dict[str, int]]) -> int:
    """Progressive: each tier's rate on the part of the GMV inside it (fen, rounded down)."""
    if gmv_fen <= 0:
        return 0
    total = 0
    for index, tier in enumerate(tiers):
        upper = tiers[index + 1]["from_fen"] if index + 1 < len(tiers) else None
        top = gmv_fen if upper is None else min(gmv_fen, upper)
        if top > tier["from_fen"]:
            total += (top - tier["from_fen"]) * tier["rate_bp"]
    return total // RATE_MAX_BP
