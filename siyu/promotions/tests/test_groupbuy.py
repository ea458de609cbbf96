"""Group-buy (拼团): open and join, success at N paid members within the limit, refusals with
clear errors, and automatic refunds of failed teams — each member exactly once."""

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from siyu.core.errors import Conflict, InvalidInput
from siyu.core.models import Event
from siyu.customers.models import Customer
from siyu.customers.services import relation_added
from siyu.promotions import services
from siyu.promotions.models import GroupBuyCampaign, GroupBuyMember, GroupBuyTeam
from siyu.promotions.tests.conftest import Payer, deliver
from siyu.shop.models import Order, OrderStatus, Refund
from siyu.shop.tests.conftest import Shop


def _campaign(shop: Shop, size: int = 2) -> GroupBuyCampaign:
    now = timezone.now()
    return services.groupbuy_campaign_create(
        actor=shop.company["ops"],
        name="龙井两人团",
        sku=shop.tea,
        group_size=size,
        time_limit_minutes=60,
        group_price_fen=9900,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=7),
    )


def _customer(shop: Shop, ext: str) -> Customer:
    relation = relation_added(
        staff=shop.company["alice"], external_userid=ext, at=timezone.now(), source="api"
    )
    assert relation is not None
    return relation.customer


def _order(member: GroupBuyMember) -> Order:
    return Order.objects.get(pk=member.order_id)


def _team(member: GroupBuyMember) -> GroupBuyTeam:
    return GroupBuyTeam.objects.get(pk=member.team_id)


def test_bad_campaigns_are_refused(shop: Shop) -> None:
    now = timezone.now()
    with pytest.raises(InvalidInput) as exc:
        services.groupbuy_campaign_create(
            actor=None,
            name="x",
            sku=shop.tea,
            group_size=2,
            time_limit_minutes=60,
            group_price_fen=shop.tea.price_fen + 1,
            starts_at=now,
            ends_at=now + timedelta(days=1),
        )
    assert exc.value.code == "invalid_price"
    assert not GroupBuyCampaign.objects.exists()


def test_a_team_succeeds_at_n_paid_members_and_then_refuses_joins(
    shop: Shop, paying: Payer, login: Any
) -> None:
    campaign = _campaign(shop)
    leader = services.team_open(campaign=campaign, customer=shop.customer)
    order = _order(leader)
    assert (order.total_fen, order.discount_fen, order.payable_fen) == (12800, 2900, 9900)
    assert order.channel == f"groupbuy:{leader.team_id}"
    paying.pay(order)
    deliver()
    assert _team(leader).status == "forming"

    joiner = services.team_join(team=_team(leader), customer=shop.stranger)
    with pytest.raises(Conflict) as exc:  # the last seat is held while the joiner pays
        services.team_join(team=_team(leader), customer=_customer(shop, "wm_third"))
    assert exc.value.code == "team_full"
    notice = paying.pay(_order(joiner))
    paying.settle(notice)  # duplicate notification
    deliver()
    team = _team(leader)
    assert (team.status, team.paid_count) == ("succeeded", 2)
    assert Event.objects.filter(type="groupbuy.succeeded").count() == 2

    with pytest.raises(Conflict) as exc:
        services.team_join(team=team, customer=_customer(shop, "wm_late"))
    assert exc.value.code == "team_succeeded"
    assert GroupBuyMember.objects.count() == 2
    assert not Refund.objects.exists()
    page = login.session(shop.company["ops"]).get(reverse("console:promotions_groupbuy_teams"))
    assert "拼团成功" in page.content.decode()


def test_a_cancelled_unpaid_member_frees_the_seat(shop: Shop) -> None:
    from siyu.shop.services import order_cancel

    leader = services.team_open(campaign=_campaign(shop), customer=shop.customer)
    joiner = services.team_join(team=_team(leader), customer=shop.stranger)
    order_cancel(order=_order(joiner))
    deliver()
    assert _team(leader).seats_taken == 1
    again = services.team_join(team=_team(leader), customer=shop.stranger)
    assert again.status == "pending"


def test_timeout_refunds_each_paid_member_exactly_once(shop: Shop, paying: Payer) -> None:
    campaign = _campaign(shop, size=3)
    leader = services.team_open(campaign=campaign, customer=shop.customer)
    member = services.team_join(team=_team(leader), customer=shop.stranger)
    unpaid = services.team_join(team=_team(leader), customer=_customer(shop, "wm_slow"))
    paying.pay(_order(leader))
    paying.pay(_order(member))
    deliver()
    assert _team(leader).paid_count == 2

    with pytest.raises(Conflict) as exc:  # not due yet: nothing happens
        services.team_fail(team=_team(leader))
    assert exc.value.code == "team_not_expired"
    later = timezone.now() + timedelta(minutes=61)
    assert services.teams_expire(now=later) == 2
    assert services.teams_expire(now=later) == 0  # the next sweep: nothing twice
    deliver()

    team = _team(leader)
    assert team.status == "failed"
    for paid in (leader, member):
        order = _order(paid)
        assert (order.status, order.refunded_fen) == (OrderStatus.REFUNDED, 9900)
        assert Refund.objects.filter(order=order).count() == 1
        assert GroupBuyMember.objects.get(pk=paid.pk).status == "refunded"
    assert _order(unpaid).status == OrderStatus.CANCELLED
    assert GroupBuyMember.objects.get(pk=unpaid.pk).status == "cancelled"
    assert Event.objects.filter(type="groupbuy.failed").count() == 2

    with pytest.raises(Conflict) as exc:
        services.team_join(team=team, customer=_customer(shop, "wm_after"))
    assert exc.value.code == "team_expired"


def test_a_payment_after_the_deadline_is_refunded_by_the_sweep(shop: Shop, paying: Payer) -> None:
    leader = services.team_open(campaign=_campaign(shop), customer=shop.customer)
    joiner = services.team_join(team=_team(leader), customer=shop.stranger)
    paying.pay(_order(leader))
    # The joiner's money arrives after the hour (the notification says when they paid).
    paying.pay(_order(joiner), at_offset=timedelta(minutes=61))
    deliver()
    team = _team(leader)
    assert (team.status, team.paid_count) == ("forming", 1)
    assert services.teams_expire(now=timezone.now() + timedelta(minutes=62)) == 2
    assert _team(leader).status == "failed"
    assert Refund.objects.count() == 2


def test_the_periodic_task_sweeps_every_tenant(shop: Shop, paying: Payer) -> None:
    from siyu.promotions.tasks import expire_teams

    leader = services.team_open(campaign=_campaign(shop), customer=shop.customer)
    paying.pay(_order(leader))
    deliver()
    GroupBuyTeam.objects.filter(pk=leader.team_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert expire_teams() == 1
    assert expire_teams() == 0
    assert _order(leader).refunded_fen == 9900
