"""The shop's API and console: data scope on orders, refunds, links, settings."""

import json
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from siyu.core.tenancy import tenant_context
from siyu.shop import services
from siyu.shop.models import Order, PaymentAccount
from siyu.shop.payments import PaymentNotice
from siyu.shop.tests.conftest import API_V3_KEY, APPID, MCHID, Shop

if TYPE_CHECKING:
    from siyu.sandbox.httpd import Sandbox


def _orders(shop: Shop) -> tuple[Order, Order]:
    with tenant_context(shop.company.tenant):
        mine = services.order_create(customer=shop.customer, staff=None, lines=[(shop.tea, 1)])
        bobs = services.order_create(
            customer=shop.stranger, staff=shop.company["bob"], lines=[(shop.cup, 1)]
        )
    return mine, bobs


def test_staff_see_the_orders_of_their_customers_managers_their_department(
    shop: Shop, login: Any
) -> None:
    mine, bobs = _orders(shop)
    alice = login.token(shop.company["alice"])
    listed = alice.get("/api/v1/shop/orders").json()
    assert [o["id"] for o in listed["items"]] == [mine.pk]
    assert alice.get(f"/api/v1/shop/orders/{bobs.pk}").status_code == 404
    manager = login.token(shop.company["manager"]).get("/api/v1/shop/orders").json()
    assert {o["id"] for o in manager["items"]} == {mine.pk, bobs.pk}
    page = login.session(shop.company["alice"]).get("/convert/orders/")
    assert mine.number in page.content.decode()
    assert bobs.number not in page.content.decode()


def test_refunds_through_the_api_check_amounts(
    shop: Shop, pay_sandbox: "Sandbox", login: Any
) -> None:
    with tenant_context(shop.company.tenant):
        order = services.order_create(customer=shop.customer, staff=None, lines=[(shop.tea, 1)])
        start = services.payment_start(order=order, openid="o", notify_url="http://127.0.0.1:9/")
        paid = pay_sandbox.pay.pay(start.payment.prepay_id)
        services.payment_settle(
            notice=PaymentNotice(
                out_trade_no=paid["out_trade_no"],
                transaction_id=paid["transaction_id"],
                trade_state="SUCCESS",
                amount_fen=12800,
                paid_at=timezone.now(),
            )
        )
    admin = login.token(shop.company["admin"])
    url = f"/api/v1/shop/orders/{order.pk}/refund"
    too_much = admin.post(url, json.dumps({"amount_fen": 12801}), content_type="application/json")
    assert too_much.status_code == 400
    assert too_much.json()["code"] == "refund_too_large"
    negative = admin.post(url, json.dumps({"amount_fen": -1}), content_type="application/json")
    assert negative.status_code == 422
    done = admin.post(url, json.dumps({"amount_fen": 2800}), content_type="application/json")
    assert done.status_code == 201, done.content
    detail = admin.get(f"/api/v1/shop/orders/{order.pk}").json()
    assert (detail["status"], detail["refunded_fen"]) == ("partially_refunded", 2800)
    # The console's refund form takes yuan.
    console = login.session(shop.company["admin"])
    console.post(f"/convert/orders/{order.pk}/refund/", {"amount": "100.00", "reason": "退货"})
    with tenant_context(shop.company.tenant):
        order.refresh_from_db()
        assert (order.status, order.refunded_fen) == ("refunded", 12800)


def test_links_credit_the_member_and_settings_never_show_the_key(shop: Shop, login: Any) -> None:
    links = login.token(shop.company["alice"]).get("/api/v1/shop/links?src=content:3").json()
    assert [link["product_id"] for link in links] == [None, shop.product.pk]
    token = links[1]["url"].split("/shop/s/")[1].split("/")[0]
    with tenant_context(shop.company.tenant):
        attribution = services.staff_shop_attribution(token=token)
    assert (attribution.staff, attribution.src) == (shop.company["alice"], "content:3")

    admin = login.token(shop.company["admin"])
    body = {"mchid": MCHID, "appid": APPID, "api_v3_key": API_V3_KEY}
    saved = admin.put("/api/v1/shop/payment-settings", json.dumps(body), "application/json")
    assert saved.status_code == 200, saved.content
    assert API_V3_KEY not in saved.content.decode()
    assert saved.json()["notify_url"].endswith("/shop/hooks/acme/pay/notify")
    short = admin.put(
        "/api/v1/shop/payment-settings",
        json.dumps({**body, "mchid": "12ab5678"}),
        "application/json",
    )
    assert short.status_code == 400
    with tenant_context(shop.company.tenant):
        assert PaymentAccount.objects.get().api_v3_key == API_V3_KEY
    page = login.session(shop.company["admin"]).get("/settings/shop/")
    assert page.status_code == 200
    assert API_V3_KEY not in page.content.decode()


def test_console_catalog_edits_stock_and_prices_in_yuan(shop: Shop, login: Any) -> None:
    console = login.session(shop.company["ops"])
    url = f"/convert/products/{shop.product.pk}/"
    console.post(url, {"form": "sku", "sku_id": shop.cup.pk, "name": "茶杯", "price": "45.50"})
    console.post(url, {"form": "stock", "sku_id": shop.cup.pk, "delta": "-3"})
    refused = console.post(url, {"form": "stock", "sku_id": shop.cup.pk, "delta": "-1"})
    assert refused.status_code == 302
    with tenant_context(shop.company.tenant):
        shop.cup.refresh_from_db()
        assert (shop.cup.price_fen, shop.cup.stock) == (4550, 0)
    assert "¥45.50" in console.get(url).content.decode()
