"""The API, the console pages and the customer's H5 pages of promotions: issuing within
scope, the claim page, and a coupon used at the shop's H5 checkout."""

import json
from datetime import timedelta

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from siyu.customers.models import Customer
from siyu.promotions import services
from siyu.promotions.models import Coupon, CouponRedemption, CouponTemplate
from siyu.promotions.tests.conftest import Payer
from siyu.shop import services as shop_services
from siyu.shop.models import Order
from siyu.shop.tests.conftest import Shop


def _visitor(shop: Shop, customer: Customer) -> Client:
    """A browser already identified by WeChat OAuth (the h5 lane's session key)."""
    client = Client()
    session = client.session
    session[f"h5:visitor:{shop.company.tenant.pk}"] = customer.pk
    session.save()
    return client


def test_api_creates_templates_and_issues_only_to_customers_in_scope(shop: Shop, login) -> None:
    ops = login.token(shop.company["ops"])
    body = {
        "name": "新客立减",
        "kind": "percent",
        "percent_off": 20,
        "max_off_fen": 1000,
        "valid_days": 3,
        "total_stock": 5,
    }
    created = ops.post(
        "/api/v1/promotions/coupon-templates", json.dumps(body), content_type="application/json"
    )
    assert created.status_code == 201, created.content
    template_id = created.json()["id"]
    bad = ops.post(
        "/api/v1/promotions/coupon-templates",
        json.dumps(body | {"valid_until": "2030-01-01T00:00:00+00:00"}),
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_validity"

    issue = f"/api/v1/promotions/coupon-templates/{template_id}/issue"
    ok = ops.post(issue, {"customer_id": shop.customer.pk}, content_type="application/json")
    assert ok.status_code == 201, ok.content
    assert ok.json()["status"] == "available" and not ok.json()["expired"]
    again = ops.post(issue, {"customer_id": shop.customer.pk}, content_type="application/json")
    assert (again.status_code, again.json()["code"]) == (409, "coupon_limit")
    # Alice may not issue at all; the lists answer only promotion managers.
    alice = login.token(shop.company["alice"])
    denied = alice.post(issue, {"customer_id": shop.customer.pk}, content_type="application/json")
    assert denied.status_code == 403
    listed = ops.get(f"/api/v1/promotions/coupons?template_id={template_id}")
    assert listed.json()["count"] == 1
    assert Coupon.objects.count() == 1


def test_the_claim_page_claims_once_per_limit(shop: Shop) -> None:
    template = services.coupon_template_create(
        actor=None,
        name="进店礼",
        kind="amount",
        amount_off_fen=500,
        valid_until=timezone.now() + timedelta(days=3),
        total_stock=10,
        claimable=True,
    )
    url = reverse("promotions_h5:claim", args=["acme", template.pk])
    anonymous = Client().get(url)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(reverse("h5:oauth_start", args=["acme"]))

    client = _visitor(shop, shop.customer)
    assert client.get(url).status_code == 200
    assert client.post(url).status_code == 302
    second = client.post(url)
    assert second.status_code == 409
    assert "已达上限" in second.content.decode()
    assert Coupon.objects.filter(template=template, customer=shop.customer).count() == 1
    CouponTemplate.objects.filter(pk=template.pk).update(claimable=False)
    assert client.get(url).status_code == 404


def test_a_coupon_at_the_shop_checkout(shop: Shop, paying: Payer, login) -> None:
    template = services.coupon_template_create(
        actor=None,
        name="满100减20",
        kind="amount",
        amount_off_fen=2000,
        min_spend_fen=10000,
        valid_days=7,
        total_stock=10,
    )
    coupon = services.coupon_issue(template=template, customer=shop.customer, source="operator")
    basket = shop_services.cart_for(customer=shop.customer, staff=shop.company["alice"])
    shop_services.cart_set(cart=basket, sku=shop.tea, quantity=1)
    client = _visitor(shop, shop.customer)
    checkout = reverse("shop_h5:checkout", args=["acme"])
    response = client.post(checkout, {"coupon": coupon.code.lower()})
    assert response.status_code in {200, 302}, response.content
    order = Order.objects.get()
    assert (order.total_fen, order.discount_fen) == (12800, 2000)
    assert CouponRedemption.objects.get().order_id == order.pk

    # The same code on the next cart is refused and leaves no order and an open cart behind.
    basket = shop_services.cart_for(customer=shop.customer, staff=shop.company["alice"])
    shop_services.cart_set(cart=basket, sku=shop.tea, quantity=1)
    refused = client.post(checkout, {"coupon": coupon.code})
    assert refused.status_code == 409
    assert Order.objects.count() == 1

    # The console shows the grant and the redemption.
    ops = login.session(shop.company["ops"])
    grants = ops.get(reverse("console:promotions_coupon_grants") + f"?template={template.pk}")
    assert coupon.code in grants.content.decode()
    redemptions = ops.get(reverse("console:promotions_coupon_redemptions"))
    assert order.number in redemptions.content.decode()


def test_console_pages_render_for_managers_and_staff_see_their_commissions(
    shop: Shop, login
) -> None:
    services.commission_rule_set(sharer_kind="staff", rate_bp=500, tiers=[])
    ops = login.session(shop.company["ops"])
    for name in ("promotions_coupons", "promotions_groupbuys", "promotions_commission_rules"):
        assert ops.get(reverse(f"console:{name}")).status_code == 200
    created = ops.post(
        reverse("console:promotions_coupons"),
        {
            "name": "满50减5",
            "kind": "amount",
            "amount_off": "5",
            "min_spend": "50",
            "valid_days": "7",
            "total_stock": "100",
        },
    )
    assert created.status_code == 302
    assert CouponTemplate.objects.get().amount_off_fen == 500
    refused = ops.post(
        reverse("console:promotions_coupons"),
        {"name": "x", "kind": "amount", "amount_off": "1.234", "total_stock": "1"},
    )
    assert refused.status_code == 302 and CouponTemplate.objects.count() == 1
    page = login.session(shop.company["alice"]).get(reverse("console:promotions_commissions"))
    assert page.status_code == 200
    assert "佣金规则" not in page.content.decode()


def test_customers_open_and_join_a_group_buy_in_wechat_and_pay(shop: Shop, paying: Payer) -> None:
    from siyu.promotions.models import GroupBuyTeam
    from siyu.promotions.tests.conftest import deliver
    from siyu.promotions.tests.test_groupbuy import _campaign, _customer

    campaign = _campaign(shop)
    leader = _visitor(shop, shop.customer)
    page = leader.get(reverse("promotions_h5:groupbuy", args=["acme", campaign.pk]))
    assert page.status_code == 200 and "我要开团" in page.content.decode()
    opened = leader.post(reverse("promotions_h5:groupbuy", args=["acme", campaign.pk]))
    assert opened.status_code == 302 and "/sandbox/pay/" in opened["Location"]  # the cashier
    team = GroupBuyTeam.objects.get()
    order = Order.objects.get(customer=shop.customer)
    assert order.payable_fen == campaign.group_price_fen
    # Left at the cashier: the order page offers to pay again; a paid order refuses.
    own = leader.get(reverse("shop_h5:order", args=["acme", order.number]))
    assert "去支付" in own.content.decode()
    paying.pay(order)
    deliver()
    again = leader.post(reverse("shop_h5:order_pay", args=["acme", order.number]))
    assert again.status_code == 409

    # The leader shares the team page; a friend joins and pays; the team succeeds.
    friend = _visitor(shop, shop.stranger)
    team_url = reverse("promotions_h5:groupbuy_team", args=["acme", team.pk])
    assert "参团并付款" in friend.get(team_url).content.decode()
    joined = friend.post(team_url)
    assert joined.status_code == 302, joined.content
    paying.pay(Order.objects.get(customer=shop.stranger))
    deliver()
    team.refresh_from_db()
    assert (team.status, team.paid_count) == ("succeeded", 2)

    # Joining after success is refused with the reason, and nothing is created.
    late = _visitor(shop, _customer(shop, "wm_late"))
    refused = late.post(team_url)
    assert refused.status_code == 409 and "已拼团成功" in refused.content.decode()
    assert Order.objects.count() == 2
