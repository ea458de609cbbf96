"""Group-buy (拼团): a leader opens a team on a campaign's SKU, others join; every member pays
their own order at the group price. The team succeeds when ``size`` members have paid within
the time limit; otherwise it fails and every paid member is refunded through the shop.

Seats are taken by a conditional UPDATE (``seats_taken < size``, still forming, not expired),
so a team never holds more members than its size; a member's order cancelled unpaid gives the
seat back. Payment and failure both lock the team row, so a payment racing the deadline is
either counted before the team fails or refunded after. A refund is "what the order still has
paid and not refunded", reserved by the shop's conditional UPDATE: a retried or concurrent
refund of the same member finds nothing left and changes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.core.errors import Conflict, InvalidInput
from siyu.core.services import event_record
from siyu.customers.models import Customer
from siyu.promotions import events
from siyu.promotions.models import (
    GroupBuyCampaign,
    GroupBuyMember,
    GroupBuyTeam,
    MemberStatus,
    TeamStatus,
)
from siyu.shop.models import Order, Sku
from siyu.shop.services import order_cancel, order_create, order_refund

logger = logging.getLogger(__name__)

MIN_SIZE, MAX_SIZE = 2, 50
MIN_LIMIT_MINUTES, MAX_LIMIT_MINUTES = 5, 7 * 24 * 60
REFUND_REASON = "拼团失败自动退款"


def groupbuy_campaign_create(
    *,
    actor: StaffMember | None,
    name: str,
    sku: Sku,
    group_size: int,
    time_limit_minutes: int,
    group_price_fen: int,
    starts_at: datetime,
    ends_at: datetime,
) -> GroupBuyCampaign:
    name = name.strip()
    if not name or len(name) > 64:
        raise InvalidInput(_("请填写活动名称（不超过 64 字）"))
    if not MIN_SIZE <= group_size <= MAX_SIZE:
        raise InvalidInput(
            _("成团人数须在 %(min)s 到 %(max)s 人之间") % {"min": MIN_SIZE, "max": MAX_SIZE}
        )
    if not MIN_LIMIT_MINUTES <= time_limit_minutes <= MAX_LIMIT_MINUTES:
        raise InvalidInput(
            _("成团时限须在 %(min)s 到 %(max)s 分钟之间")
            % {"min": MIN_LIMIT_MINUTES, "max": MAX_LIMIT_MINUTES}
        )
    if not sku.is_active:
        raise InvalidInput(_("该商品规格未上架"), code="sku_inactive")
    if not 1 <= group_price_fen <= sku.price_fen:
        raise InvalidInput(_("拼团价须大于 0 且不高于原价"), code="invalid_price")
    if timezone.is_naive(starts_at) or timezone.is_naive(ends_at):
        raise InvalidInput(_("活动时间需要带时区"))
    if ends_at <= starts_at:
        raise InvalidInput(_("结束时间必须晚于开始时间"), code="invalid_period")
    return GroupBuyCampaign.objects.create(
        name=name,
        sku=sku,
        group_size=group_size,
        time_limit_minutes=time_limit_minutes,
        group_price_fen=group_price_fen,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=actor,
    )


def _member_order(team: GroupBuyTeam, customer: Customer, sku: Sku, price_fen: int) -> Order:
    return order_create(
        customer=customer,
        staff=team.staff,
        lines=[(sku, 1)],
        discount_fen=sku.price_fen - price_fen,
        channel=f"groupbuy:{team.pk}",
    )


def _joined(member: GroupBuyMember, team: GroupBuyTeam) -> None:
    event_record(
        type=events.GROUPBUY_JOINED,
        source="h5",
        customer_id=member.customer_id,
        payload={
            "team_id": team.pk,
            "campaign_id": team.campaign_id,
            "order_id": member.order_id,
            "leader": member.is_leader,
        },
    )


def team_open(
    *, campaign: GroupBuyCampaign, customer: Customer, staff: StaffMember | None = None
) -> GroupBuyMember:
    """The leader opens a team and gets their order to pay; the clock starts now."""
    now = timezone.now()
    if not campaign.is_active or not campaign.starts_at <= now < campaign.ends_at:
        raise Conflict(_("拼团活动未开始或已结束"), code="campaign_closed")
    sku = Sku.objects.get(pk=campaign.sku_id)
    with transaction.atomic():
        team = GroupBuyTeam.objects.create(
            campaign=campaign,
            leader=customer,
            staff=staff,
            size=campaign.group_size,
            seats_taken=1,
            expires_at=now + timedelta(minutes=campaign.time_limit_minutes),
        )
        order = _member_order(team, customer, sku, campaign.group_price_fen)
        member = GroupBuyMember.objects.create(
            team=team, customer=customer, order=order, is_leader=True
        )
        _joined(member, team)
    return member


def _refuse_join(team: GroupBuyTeam, now: datetime) -> Conflict:
    if team.status == TeamStatus.SUCCEEDED:
        return Conflict(_("该团已拼团成功，无法再加入"), code="team_succeeded")
    if team.status == TeamStatus.FAILED or team.expires_at <= now:
        return Conflict(_("该团已过期，无法加入"), code="team_expired")
    return Conflict(_("该团已满员，无法加入"), code="team_full")


def team_join(*, team: GroupBuyTeam, customer: Customer) -> GroupBuyMember:
    """A customer joins a forming team and gets their order to pay. A succeeded, failed,
    expired or full team refuses with a clear error and nothing changes."""
    now = timezone.now()
    campaign = GroupBuyCampaign.objects.get(pk=team.campaign_id)
    sku = Sku.objects.get(pk=campaign.sku_id)
    if GroupBuyMember.objects.filter(
        team=team, customer=customer, status__in=[MemberStatus.PENDING, MemberStatus.PAID]
    ).exists():
        raise Conflict(_("您已在该团中"), code="team_member")
    with transaction.atomic():
        seat = GroupBuyTeam.objects.filter(
            pk=team.pk,
            status=TeamStatus.FORMING,
            expires_at__gt=now,
            seats_taken__lt=F("size"),
        ).update(seats_taken=F("seats_taken") + 1)
        if seat != 1:
            raise _refuse_join(GroupBuyTeam.objects.get(pk=team.pk), now)
        order = _member_order(team, customer, sku, campaign.group_price_fen)
        try:
            with transaction.atomic():
                member = GroupBuyMember.objects.create(team=team, customer=customer, order=order)
        except IntegrityError:
            raise Conflict(_("您已在该团中"), code="team_member") from None
        _joined(member, team)
    return member


def _closed(team: GroupBuyTeam, status: str, now: datetime) -> bool:
    return (
        GroupBuyTeam.objects.filter(pk=team.pk, status=TeamStatus.FORMING).update(
            status=status, closed_at=now
        )
        == 1
    )


def member_paid(*, order_id: int, paid_at: datetime) -> bool:
    """The member's order was paid (``order.paid``): count them; the size-th payment within
    the limit makes the team succeed. A payment for a team already failed, or after the
    deadline, is left to ``teams_expire`` to refund. Safe to call again for the same order."""
    member = GroupBuyMember.objects.filter(order_id=order_id).first()
    if member is None:
        return False
    now = timezone.now()
    with transaction.atomic():
        team = GroupBuyTeam.objects.select_for_update().get(pk=member.team_id)
        moved = GroupBuyMember.objects.filter(pk=member.pk, status=MemberStatus.PENDING).update(
            status=MemberStatus.PAID, paid_at=paid_at
        )
        if moved != 1:
            return False
        if team.status == TeamStatus.FORMING and paid_at < team.expires_at:
            GroupBuyTeam.objects.filter(pk=team.pk).update(paid_count=F("paid_count") + 1)
            team.refresh_from_db()
            if team.paid_count >= team.size and _closed(team, TeamStatus.SUCCEEDED, now):
                for paid in team.members.filter(status=MemberStatus.PAID):
                    event_record(
                        type=events.GROUPBUY_SUCCEEDED,
                        source="system",
                        customer_id=paid.customer_id,
                        payload={"team_id": team.pk, "campaign_id": team.campaign_id},
                    )
            return True
    # Late: the team failed already, or the money came after the deadline. The refund is not
    # made here (inside the caller's transaction a rollback could hide money that moved): the
    # sweep refunds paid members of failed and expired teams within a minute.
    return True


def member_cancelled(*, order_id: int) -> bool:
    """The member's order was cancelled unpaid: they leave and their seat is free again."""
    member = GroupBuyMember.objects.filter(order_id=order_id).first()
    if member is None:
        return False
    with transaction.atomic():
        moved = GroupBuyMember.objects.filter(pk=member.pk, status=MemberStatus.PENDING).update(
            status=MemberStatus.CANCELLED
        )
        if moved:
            GroupBuyTeam.objects.filter(
                pk=member.team_id, status=TeamStatus.FORMING, seats_taken__gt=0
            ).update(seats_taken=F("seats_taken") - 1)
    return bool(moved)


def member_refund(*, member: GroupBuyMember) -> bool:
    """Give a paid member of a failed team their money back, once. Returns False when the
    provider refused (the member stays paid and the next sweep tries again)."""
    order = Order.objects.get(pk=member.order_id)
    left = order.paid_fen - order.refunded_fen
    if left > 0:
        try:
            order_refund(order=order, amount_fen=left, reason=REFUND_REASON)
        except InvalidInput as exc:
            if exc.code != "refund_too_large":
                raise
            # A concurrent sweep reserved the same refund first: nothing is left to give back.
        except Conflict as exc:
            logger.warning("group-buy refund of order %s failed: %s", order.number, exc.message)
            return False
    with transaction.atomic():
        done = GroupBuyMember.objects.filter(pk=member.pk, status=MemberStatus.PAID).update(
            status=MemberStatus.REFUNDED, refunded_fen=max(left, 0), refunded_at=timezone.now()
        )
        if done:
            event_record(
                type=events.GROUPBUY_FAILED,
                source="system",
                customer_id=member.customer_id,
                payload={
                    "team_id": member.team_id,
                    "order_id": order.pk,
                    "refunded_fen": max(left, 0),
                },
            )
    return True


def team_fail(*, team: GroupBuyTeam, now: datetime | None = None) -> int:
    """Close a team past its deadline that did not fill: unpaid orders are cancelled and every
    paid member is refunded. Returns how many members were refunded by this call; running it
    again (a second sweep, a crash in between) refunds only those not refunded yet."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = GroupBuyTeam.objects.select_for_update().get(pk=team.pk)
        if locked.status == TeamStatus.FORMING:
            if locked.expires_at > now:
                raise Conflict(_("该团尚未到期"), code="team_not_expired")
            _closed(locked, TeamStatus.FAILED, now)
        elif locked.status != TeamStatus.FAILED:
            return 0
    refunded = 0
    for member in GroupBuyMember.objects.filter(team=team).order_by("pk"):
        if member.status == MemberStatus.PENDING:
            try:
                order_cancel(order=Order.objects.get(pk=member.order_id), source="schedule")
            except Conflict:
                continue  # paid meanwhile: its order.paid refunds it
            member_cancelled(order_id=member.order_id)
        elif member.status == MemberStatus.PAID and member_refund(member=member):
            refunded += 1
    return refunded


def teams_expire(*, now: datetime | None = None, batch: int = 200) -> int:
    """The periodic sweep: fail teams past their deadline, and finish refunds of failed teams
    that a crash or a provider error left paid. Returns the members refunded."""
    now = now or timezone.now()
    due = GroupBuyTeam.objects.filter(status=TeamStatus.FORMING, expires_at__lte=now)
    # Failed teams with a member still paid: a payment that came late, a provider refusal.
    stuck = GroupBuyTeam.objects.filter(
        status=TeamStatus.FAILED, members__status=MemberStatus.PAID
    ).distinct()
    refunded = 0
    for team in list(due.order_by("expires_at")[:batch]) + list(stuck.order_by("pk")[:batch]):
        refunded += team_fail(team=team, now=now)
    return refunded
