"""Shop fixtures: acme's catalog, a paying customer owned by alice, and payments wired to the
sandbox's pay emulator."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from django.db import transaction
from django.utils import timezone

from siyu.core.tenancy import tenant_context
from siyu.customers.models import Customer, IdentityKind
from siyu.customers.services import identity_link, relation_added
from siyu.shop.models import PaymentAccount, Product, Sku
from siyu.testing.stories import Company

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse

    from siyu.sandbox.httpd import Sandbox

MCHID = "1900000109"
APPID = "wx_acme_mp"
API_V3_KEY = "acme-api-v3-key-0123456789abcdef"  # 32 characters


@dataclass
class Shop:
    company: Company
    product: Product
    tea: Sku
    cup: Sku
    customer: Customer  # alice's customer
    stranger: Customer  # bob's customer


def build_shop(company: Company) -> Shop:
    # One transaction: relation_added locks rows (transactional tests have no outer one).
    with tenant_context(company.tenant), transaction.atomic():
        product = Product.objects.create(name="龙井茶", images=["https://img.example/tea.png"])
        tea = Sku.objects.create(product=product, name="250g", price_fen=12800, stock=10)
        cup = Sku.objects.create(product=product, name="茶杯", price_fen=3900, stock=3)
        relation = relation_added(
            staff=company["alice"], external_userid="wm_shop_buyer", at=timezone.now(), source="api"
        )
        other = relation_added(
            staff=company["bob"], external_userid="wm_bob_buyer", at=timezone.now(), source="api"
        )
        assert relation is not None and other is not None
        identity_link(relation.customer, IdentityKind.OPENID.value, "o_buyer_openid")
        return Shop(company, product, tea, cup, relation.customer, other.customer)


def post_notification(headers: dict[str, str], body: bytes) -> "_MonkeyPatchedWSGIResponse":
    """Deliver a payment notification to acme's notify URL, as WeChat Pay would."""
    from django.test import Client

    extra = {k: v for k, v in headers.items() if k != "Content-Type"}
    return Client().post(
        "/shop/hooks/acme/pay/notify", data=body, content_type="application/json", headers=extra
    )


@pytest.fixture
def shop(acme: Company) -> Shop:
    return build_shop(acme)


@pytest.fixture
def pay_sandbox(shop: Shop, sandbox: "Sandbox") -> "Sandbox":
    """acme's merchant account at the sandbox's pay emulator."""
    from siyu.sandbox.client import SandboxControl

    with SandboxControl(sandbox.base_url) as control:
        control.add_pay_merchant(MCHID, APPID, API_V3_KEY)
    with tenant_context(shop.company.tenant):
        PaymentAccount.objects.create(
            mchid=MCHID, appid=APPID, api_v3_key=API_V3_KEY, api_base_url=sandbox.base_url + "/"
        )
    return sandbox
