"""A fission tier can hand out a real coupon: the participant who reaches it gets one coupon
of the template, exactly once per grant."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from siyu.channels.state import state_encode
from siyu.core.errors import InvalidInput
from siyu.core.models import DeliveryStatus, Event, EventDelivery
from siyu.core.services import event_delivery_run
from siyu.customers.models import IdentityKind
from siyu.customers.services import identity_link, relation_added
from siyu.fission.models import Participant, RewardGrant
from siyu.fission.services import STATE_KIND, campaign_create
from siyu.promotions import services
from siyu.promotions.models import Coupon
from siyu.promotions.subscribers import fission_coupon
from siyu.shop.tests.conftest import Shop


def _run_deliveries() -> None:
    for _round in range(3):
        for delivery in EventDelivery.objects.filter(status=DeliveryStatus.PENDING).order_by("pk"):
            event_delivery_run(delivery_id=delivery.pk)


def test_a_coupon_tier_grants_one_coupon_per_reward(shop: Shop) -> None:
    template = services.coupon_template_create(
        actor=None,
        name="满100减20",
        kind="amount",
        amount_off_fen=2000,
        valid_days=30,
        min_spend_fen=10000,
        total_stock=10,
    )
    now = timezone.now()
    tiers = [
        {
            "threshold": 1,
            "kind": "coupon",
            "payload": "满100减20",
            "stock": 5,
            "coupon_template_id": template.pk,
        },
    ]
    common: dict[str, Any] = {
        "actor": shop.company["ops"],
        "kind": "task",
        "name": "老带新",
        "starts_at": now - timedelta(hours=1),
        "ends_at": now + timedelta(days=1),
        "staff_ids": [shop.company["alice"].pk],
    }
    with pytest.raises(InvalidInput) as exc:
        campaign_create(**common, tiers=[tiers[0] | {"coupon_template_id": 999999}])
    assert exc.value.code == "unknown_coupon_template"
    with pytest.raises(InvalidInput):  # only coupon tiers carry a template
        campaign_create(**common, tiers=[tiers[0] | {"kind": "link", "payload": "https://x.t"}])

    campaign = campaign_create(**common, tiers=tiers)
    participant = Participant.objects.create(
        campaign=campaign,
        customer=shop.customer,
        state=state_encode(STATE_KIND, campaign.pk, 0),
    )
    relation = relation_added(
        staff=shop.company["alice"],
        external_userid="wm_invited_friend",
        at=timezone.now(),
        source="wecom",
        state=state_encode(STATE_KIND, campaign.pk, participant.pk),
    )
    assert relation is not None
    # Known by unionid already (as after the profile lane), so fission needs no WeCom read.
    identity_link(relation.customer, IdentityKind.UNIONID.value, "u_invited_friend")
    _run_deliveries()

    grant = RewardGrant.objects.get(participant=participant)
    coupon = Coupon.objects.get(customer=shop.customer)
    assert (coupon.template_id, coupon.source, coupon.source_key) == (
        template.pk,
        "fission",
        f"fission:{grant.pk}",
    )
    # The reward event handled again (a redelivery) issues nothing more.
    fission_coupon(Event.objects.get(type="fission.rewarded"))
    assert Coupon.objects.filter(customer=shop.customer).count() == 1
    template.refresh_from_db()
    assert template.issued == 1
