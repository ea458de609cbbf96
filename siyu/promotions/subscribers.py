"""Promotions react to the shop's order events and to fission rewards. Each subscriber runs
once per event; the services they call are idempotent besides, so a replayed or re-ordered
event leaves coupons, teams and commissions exact."""

from siyu.core.events import subscriber
from siyu.core.models import Event
from siyu.customers.events import CUSTOMER_STAGE_CHANGED
from siyu.customers.models import Customer
from siyu.fission.events import FISSION_REWARDED
from siyu.fission.models import RewardGrant
from siyu.promotions import services
from siyu.promotions.models import CouponSource, CouponTemplate
from siyu.shop.events import ORDER_CANCELLED, ORDER_PAID, ORDER_REFUNDED


def _order_id(event: Event) -> int:
    return int(event.payload["order_id"])


@subscriber(ORDER_PAID, name="promotions.order_paid")
def order_paid(event: Event) -> None:
    order_id = _order_id(event)
    services.redemption_settle_paid(order_id=order_id)
    services.member_paid(order_id=order_id, paid_at=event.occurred_at)
    services.commission_on_paid(order_id=order_id, event_id=event.pk, at=event.occurred_at)


@subscriber(ORDER_REFUNDED, name="promotions.order_refunded")
def order_refunded(event: Event) -> None:
    services.commission_on_refunded(
        order_id=_order_id(event),
        event_id=event.pk,
        amount_fen=int(event.payload["amount_fen"]),
        at=event.occurred_at,
    )


@subscriber(ORDER_CANCELLED, name="promotions.order_cancelled")
def order_cancelled(event: Event) -> None:
    services.redemption_release(order_id=_order_id(event))
    services.member_cancelled(order_id=_order_id(event))


def _coupon_reward(event: Event) -> bool:
    # Asked when the reward is written: only tiers that hand out a real coupon apply.
    grant = RewardGrant.objects.filter(pk=event.payload.get("grant_id")).first()
    return grant is not None and grant.tier.coupon_template_id is not None


@subscriber(FISSION_REWARDED, name="promotions.fission_coupon", applies=_coupon_reward)
def fission_coupon(event: Event) -> None:
    """A participant reached a coupon tier (in stock): one coupon, keyed by the grant."""
    if not event.payload.get("in_stock"):
        return
    grant = RewardGrant.objects.select_related("tier", "participant__customer").get(
        pk=event.payload["grant_id"]
    )
    template = CouponTemplate.objects.get(pk=int(grant.tier.coupon_template_id or 0))
    services.coupon_issue(
        template=template,
        customer=grant.participant.customer,
        source=CouponSource.FISSION,
        source_key=f"fission:{grant.pk}",
    )


AGENT_STAGE = "agent"  # 代理: the seeded lifecycle stage of customer agents


@subscriber(
    CUSTOMER_STAGE_CHANGED,
    name="promotions.agent_link",
    applies=lambda event: event.payload.get("to") == AGENT_STAGE,
)
def agent_link(event: Event) -> None:
    """A customer who reaches the 代理 stage becomes an agent: they get their share code."""
    if event.customer_id is None:
        return
    customer = Customer.objects.filter(pk=event.customer_id).first()
    if customer is not None:
        services.sharer_link_ensure(customer=customer)
