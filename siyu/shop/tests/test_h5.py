"""The staff member's H5 shop: WeChat OAuth, signed attribution, cart, checkout, pay."""

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
from django.test import Client

from siyu.core.models import Event
from siyu.core.tenancy import tenant_context
from siyu.customers.models import IdentityKind
from siyu.customers.services import identity_link
from siyu.sandbox.client import SandboxControl
from siyu.sandbox.pay import notification_for
from siyu.shop import services
from siyu.shop.models import Cart, CartStatus, Order, OrderStatus, Payment
from siyu.shop.tests.conftest import MCHID, Shop, post_notification

if TYPE_CHECKING:
    from siyu.sandbox.httpd import Sandbox

MP_APPID, MP_SECRET = "wx_acme_h5", "acme-h5-secret"


def _open(client: Client, path: str) -> Any:
    """Open an H5 page inside "WeChat": through OAuth on first sight, then the page itself."""
    response = client.get(path)
    if response.status_code != 302 or "/oauth/start" not in response["Location"]:
        return response
    start = client.get(response["Location"])
    authorize = httpx.get(start["Location"].split("#")[0], follow_redirects=False)
    back = urlsplit(authorize.headers["location"])
    done = client.get(back.path, parse_qs(back.query))
    assert done.status_code == 302, done.content
    return client.get(done["Location"])


def _wechat(shop: Shop, sandbox: "Sandbox") -> None:
    tenant = shop.company.tenant
    tenant.wechat_appid, tenant.wechat_secret = MP_APPID, MP_SECRET
    tenant.wechat_oauth_url = sandbox.base_url + "/connect/oauth2/authorize"
    tenant.wechat_api_base_url = sandbox.base_url + "/"
    tenant.save()
    with SandboxControl(sandbox.base_url) as control:
        control.register_wechat_app(MP_APPID, MP_SECRET)
        control.set_visitor(MP_APPID, unionid="u-buyer", name="买家")
    with tenant_context(tenant):
        identity_link(shop.customer, IdentityKind.UNIONID.value, "u-buyer")


def test_staff_link_credits_views_and_orders_to_the_member(
    shop: Shop, pay_sandbox: "Sandbox"
) -> None:
    _wechat(shop, pay_sandbox)
    alice = shop.company["alice"]
    with tenant_context(shop.company.tenant):
        token = services.staff_shop_token(staff=alice, src="content:12")
    client = Client()
    page = _open(client, f"/h5/acme/shop/s/{token}/p/{shop.product.pk}/")
    assert page.status_code == 200, page.content
    assert "龙井茶" in page.content.decode()
    client.get(f"/h5/acme/shop/s/{token}/p/{shop.product.pk}/")  # a refresh is the same view
    with tenant_context(shop.company.tenant):
        viewed = Event.objects.get(type="shop.product_viewed")
        assert viewed.customer_id == shop.customer.pk
        assert viewed.payload == {
            "product_id": shop.product.pk,
            "name": "龙井茶",
            "staff_id": alice.pk,
        }

    assert (
        client.post("/h5/acme/shop/cart/", {"sku": shop.tea.pk, "quantity": 2}).status_code == 302
    )
    cart = client.get("/h5/acme/shop/cart/")
    assert "¥256.00" in cart.content.decode()
    assert (
        client.post("/h5/acme/shop/cart/", {"sku": shop.tea.pk, "quantity": -1}).status_code == 400
    )

    checkout = client.post("/h5/acme/shop/checkout/")
    assert checkout.status_code == 302
    assert checkout["Location"].startswith(pay_sandbox.base_url + "/sandbox/pay/checkout/")
    with tenant_context(shop.company.tenant):
        order = Order.objects.get()
        assert (order.customer_id, order.staff_id, order.channel) == (
            shop.customer.pk,
            alice.pk,
            "content:12",
        )
        assert Cart.objects.get().status == CartStatus.ORDERED
        payment = Payment.objects.get(order=order)
    # The customer confirms on the (sandbox) cashier page, which sends them back.
    paid = httpx.post(checkout["Location"], follow_redirects=False)
    assert paid.status_code == 302
    txn = pay_sandbox.pay.transactions[payment.out_trade_no]
    headers, body = notification_for(pay_sandbox.pay.merchants[MCHID], txn)
    notified = post_notification(headers, body)
    assert notified.status_code == 204
    status_page = client.get(urlsplit(paid.headers["location"]).path)
    assert "已付款" in status_page.content.decode()
    with tenant_context(shop.company.tenant):
        assert Order.objects.get().status == OrderStatus.PAID


def test_a_forged_or_foreign_shop_link_is_refused(
    shop: Shop, globex: Any, sandbox: "Sandbox"
) -> None:
    _wechat(shop, sandbox)
    with tenant_context(globex.tenant):
        foreign = services.staff_shop_token(staff=globex["dave"])
    with tenant_context(shop.company.tenant):
        token = services.staff_shop_token(staff=shop.company["alice"])
    client = Client()
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert _open(client, f"/h5/acme/shop/s/{forged}/").status_code == 404
    assert client.get(f"/h5/acme/shop/s/{foreign}/").status_code == 404
    assert client.get(f"/h5/acme/shop/s/{token}/").status_code == 200
