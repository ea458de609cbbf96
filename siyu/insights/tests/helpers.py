"""Helpers of the insights tests: customers, deletions and paid orders through the owning apps'
real services, and the churn subscriber's deliveries run the way the job queue runs them."""

from datetime import datetime

from siyu.core.models import DeliveryStatus, EventDelivery
from siyu.core.services import event_delivery_run
from siyu.customers.models import Customer, IdentityKind
from siyu.customers.services import identity_link, relation_added, relation_deleted
from siyu.shop.external import Buyer, ExternalOrder, external_order_record
from siyu.shop.models import ExternalShop
from siyu.testing.stories import Company


def customer(company: Company, userid: str, ext: str, when: datetime, state: str = "") -> Customer:
    relation = relation_added(
        staff=company[userid], external_userid=ext, at=when, source="wecom", state=state
    )
    assert relation is not None
    customer = relation.customer
    customer.name = ext
    customer.save(update_fields=["name"])
    identity_link(customer, IdentityKind.SHOP_BUYER.value, f"yz:{ext}")
    return customer


def delete(company: Company, userid: str, ext: str, when: datetime, by: str = "customer") -> None:
    relation_deleted(staff=company[userid], external_userid=ext, at=when, by=by, source="wecom")


def paid(ext: str, when: datetime, fen: int, number: int) -> None:
    """An order of ``ext`` paid at ``when`` (an external shop's order: any time is possible)."""
    shop, _ = ExternalShop.objects.get_or_create(key="yz", defaults={"name": "有赞", "secret": "s"})
    order = ExternalOrder(
        external_id=f"{ext}-{number}",
        status="paid",
        total_fen=fen,
        paid_fen=fen,
        paid_at=when,
        buyer=Buyer(buyer_id=ext),
    )
    recorded = external_order_record(shop=shop, data=order, source="import")
    assert recorded.matched


def deliver() -> int:
    """Run every pending churn delivery; returns how many ran."""
    ran = 0
    for delivery in EventDelivery.objects.filter(
        subscriber="insights.churn_record", status=DeliveryStatus.PENDING
    ).order_by("pk"):
        assert event_delivery_run(delivery_id=delivery.pk) == "done"
        ran += 1
    return ran
