"""External orders: the signed inbound webhook and CSV imports, matched by identifiers."""

import io
import json
import time
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from siyu.core.errors import InvalidInput
from siyu.core.models import Event
from siyu.core.tenancy import tenant_context
from siyu.customers.models import CustomerIdentity, IdentityKind
from siyu.customers.services import identity_link
from siyu.shop import external, services
from siyu.shop.models import Order, OrderSource, OrderStatus
from siyu.shop.tests.conftest import Shop


def _shop_with_secret(shop: Shop) -> str:
    with tenant_context(shop.company.tenant):
        identity_link(shop.customer, IdentityKind.PHONE.value, "13800138000")
        _external, secret = services.external_shop_create(
            actor=shop.company["admin"], key="youzan", name="有赞"
        )
    return secret


def _push(
    secret: str, body: dict, *, at: int | None = None, signature: str = ""
) -> tuple[int, dict]:
    raw = json.dumps(body).encode()
    stamp = str(at or int(time.time()))
    response = Client().post(
        "/shop/hooks/acme/orders/youzan",
        data=raw,
        content_type="application/json",
        HTTP_X_SIYU_TIMESTAMP=stamp,
        HTTP_X_SIYU_SIGNATURE=signature or external.webhook_signature(secret, stamp, raw),
    )
    return response.status_code, response.json()


ORDER = {
    "external_id": "YZ-1001",
    "status": "paid",
    "total_fen": 19900,
    "paid_fen": 18900,
    "paid_at": "2026-11-20T10:00:00+08:00",
    "buyer": {"phone": "+86 138-0013-8000", "buyer_id": "b77"},
    "items": [{"name": "礼盒", "price_fen": 19900, "quantity": 1}],
}


def test_signed_webhook_records_a_matched_paid_order_once(shop: Shop) -> None:
    secret = _shop_with_secret(shop)
    status, body = _push(secret, ORDER)
    assert status == 200, body
    assert (body["created"], body["matched"]) == (True, True)
    assert _push(secret, ORDER)[1] == {**body, "created": False}
    # The shop refunds part of it later and pushes the order again.
    assert _push(secret, {**ORDER, "refunded_fen": 900})[1]["created"] is False
    assert _push(secret, {**ORDER, "refunded_fen": 900})[0] == 200
    with tenant_context(shop.company.tenant):
        order = Order.objects.get(external_id="YZ-1001")
        assert (order.source, order.status, order.paid_fen, order.customer_id) == (
            OrderSource.WEBHOOK,
            OrderStatus.PARTIALLY_REFUNDED,
            18900,
            shop.customer.pk,
        )
        assert order.staff_id == shop.company["alice"].pk  # the customer's owner
        assert order.refunded_fen == 900
        assert Event.objects.filter(type="order.refunded").count() == 1
        paid = Event.objects.get(type="order.paid")
        assert (paid.customer_id, paid.payload["paid_orders"]) == (shop.customer.pk, 1)
        # The buyer id now names the customer too, for the next order.
        assert CustomerIdentity.objects.get(kind="shop_buyer").customer_id == shop.customer.pk


def test_bad_signatures_replays_and_amounts_are_refused(shop: Shop) -> None:
    secret = _shop_with_secret(shop)
    assert _push(secret, ORDER, signature="0" * 64) == (
        400,
        {"code": "bad_signature", "message": "signature does not verify"},
    )
    assert _push(secret, ORDER, at=int(time.time()) - 3600)[1]["code"] == "stale"
    assert _push("wrong-secret", ORDER)[0] == 400
    assert _push(secret, {**ORDER, "paid_fen": 20000})[1]["code"] == "amount_mismatch"
    assert _push(secret, {**ORDER, "total_fen": -1})[0] == 400
    assert _push(secret, {**ORDER, "status": "shipped-ish"})[0] == 400
    with tenant_context(shop.company.tenant):
        assert not Order.objects.exists()


def test_csv_import_reports_unmatched_duplicates_and_bad_rows(shop: Shop) -> None:
    _shop_with_secret(shop)
    csv = (
        "订单号,手机号,订单金额,实付金额,付款时间,订单状态,商品名称,数量\n"
        "T1,13800138000,99.00,89.50,2026-11-01 10:00:00,交易成功,茶叶,1\n"
        "T2,13900000000,10,10,2026-11-02 10:00:00,交易成功,茶杯,2\n"
        "T1,13800138000,99.00,89.50,2026-11-01 10:00:00,交易成功,茶叶,1\n"
        "T3,13800138000,-5,0,,待付款,茶叶,1\n"
        "T4,13800138000,1.005,1,2026-11-02 10:00:00,交易成功,茶叶,1\n"
    )
    with tenant_context(shop.company.tenant):
        report = external.external_orders_import(
            actor=shop.company["ops"],
            shop_key="youzan",
            name="orders.csv",
            file=io.BytesIO(csv.encode()),
        )
        assert (report.created, report.duplicates) == (2, 1)
        assert report.unmatched == [{"row": 3, "external_id": "T2"}]
        assert [e["row"] for e in report.errors] == [5, 6]
        matched = Order.objects.get(external_id="T1")
        assert (matched.customer_id, matched.paid_fen, matched.total_fen) == (
            shop.customer.pk,
            8950,
            9900,
        )
        assert Order.objects.get(external_id="T2").customer_id is None
        with pytest.raises(InvalidInput):
            external.external_orders_import(
                actor=shop.company["ops"],
                shop_key="youzan",
                name="x.csv",
                file=io.BytesIO(b"a,b\n1,2\n"),
            )


def test_yuan_amounts_are_exact() -> None:
    assert external.yuan_to_fen("¥1,280.50") == 128050
    assert external.yuan_to_fen("0.1") == 10
    for bad in ("-1", "1.005", "abc"):
        with pytest.raises(InvalidInput):
            external.yuan_to_fen(bad)


def test_console_import_shows_the_report(shop: Shop, login: Any) -> None:
    _shop_with_secret(shop)
    upload = SimpleUploadedFile(
        "orders.csv", "订单号,买家ID,实付金额,付款时间\nX9,nobody,12.5,2026-11-03 09:00\n".encode()
    )
    page = login.session(shop.company["ops"]).post(
        "/settings/shop/import/", {"shop": "youzan", "file": upload}
    )
    assert page.status_code == 200
    html = page.content.decode()
    assert "新增 1 笔" in html and "未匹配到客户" in html
    with tenant_context(shop.company.tenant):
        order = Order.objects.get(external_id="X9")
        assert (order.source, order.paid_fen, order.customer_id) == ("import", 1250, None)
