"""/api/v1/shop: catalog and stock, orders (in the data scope) with refunds, the members' shop
links, payment settings and external shops (webhook secret, order imports)."""

from datetime import datetime
from typing import IO, cast

from django.http import HttpRequest
from ninja import File, Query, Router, Schema, Status, UploadedFile
from pydantic import Field

from siyu.accounts.permissions import Action, can, require
from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.core.errors import InvalidInput, NotFound
from siyu.shop import external, selectors, services
from siyu.shop.models import ExternalShop, PaymentAccount, Product, Sku

router = Router(tags=["shop"])


class SkuOut(Schema):
    id: int
    name: str
    code: str
    price_fen: int
    stock: int
    is_active: bool


class ProductOut(Schema):
    id: int
    name: str
    description: str
    images: list[str]
    is_active: bool
    skus: list[SkuOut]

    @staticmethod
    def resolve_skus(obj: Product) -> object:
        return obj.skus.all()


class ProductPage(PageOut):
    items: list[ProductOut]


class ProductIn(StrictIn):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=2000)
    images: list[str] = Field(default_factory=list, max_length=9)
    is_active: bool = True


class SkuIn(StrictIn):
    name: str = Field(min_length=1, max_length=64)
    price_fen: int = Field(gt=0, le=100_000_000)
    code: str = Field("", max_length=64)
    is_active: bool = True


class StockIn(StrictIn):
    delta: int = Field(ge=-1_000_000, le=1_000_000)


class OrderLineOut(Schema):
    name: str
    price_fen: int
    quantity: int


class OrderOut(Schema):
    id: int
    number: str
    status: str
    customer_id: int | None
    staff_id: int | None
    total_fen: int
    discount_fen: int
    payable_fen: int
    paid_fen: int
    refunded_fen: int
    paid_at: datetime | None
    source: str
    external_source: str
    external_id: str
    channel: str
    created_at: datetime


class RefundOut(Schema):
    id: int
    amount_fen: int
    reason: str
    status: str
    is_surplus: bool
    created_at: datetime


class OrderDetailOut(OrderOut):
    lines: list[OrderLineOut]
    refunds: list[RefundOut]

    @staticmethod
    def resolve_lines(obj: object) -> object:
        return obj.lines.all()  # type: ignore[attr-defined]

    @staticmethod
    def resolve_refunds(obj: object) -> object:
        return obj.refunds.all()  # type: ignore[attr-defined]


class OrderPage(PageOut):
    items: list[OrderOut]


class OrderFilter(PageParams):
    status: str = Field("", max_length=20)
    source: str = Field("", max_length=16)
    customer_id: int | None = None


class RefundIn(StrictIn):
    amount_fen: int = Field(gt=0, le=100_000_000)
    reason: str = Field("", max_length=200)


class LinkOut(Schema):
    product_id: int | None
    name: str
    url: str


class PaymentSettingsIn(StrictIn):
    mchid: str = Field(min_length=8, max_length=12)
    appid: str = Field(min_length=3, max_length=32)
    api_v3_key: str = Field(min_length=32, max_length=32)
    api_base_url: str = Field("https://api.mch.weixin.qq.com/", max_length=200)


class PaymentSettingsOut(Schema):
    configured: bool
    mchid: str
    appid: str
    api_base_url: str
    notify_url: str


class ExternalShopIn(StrictIn):
    key: str = Field(min_length=2, max_length=32)
    name: str = Field(min_length=1, max_length=64)


class ExternalShopOut(Schema):
    key: str
    name: str
    webhook_url: str
    secret: str = ""  # only in the answer that created it


class ImportReportOut(Schema):
    created: int
    duplicates: int
    unmatched: list[dict[str, object]]
    errors: list[dict[str, object]]


def _product(request: HttpRequest, product_id: int) -> Product:
    require(actor(request), Action.SHOP_MANAGE)
    product = Product.objects.filter(pk=product_id).first()
    if product is None:
        raise NotFound("product not found")
    return product


def _sku(request: HttpRequest, sku_id: int) -> Sku:
    require(actor(request), Action.SHOP_MANAGE)
    sku = Sku.objects.select_related("product").filter(pk=sku_id).first()
    if sku is None:
        raise NotFound("SKU not found")
    return sku


@router.get("/products", response=ProductPage)
def list_products(request: HttpRequest, params: Query[PageParams]) -> object:
    """Everyone sees the catalog (to share products); managers also see what is off sale."""
    member = actor(request)
    require(member, Action.ORDERS_VIEW)
    products = Product.objects.prefetch_related("skus")
    if not can(member, Action.SHOP_MANAGE):
        products = products.filter(is_active=True)
    return paginate(products, params)


@router.post("/products", response={201: ProductOut})
def create_product(request: HttpRequest, payload: ProductIn) -> Status[object]:
    return Status(201, services.product_save(actor=actor(request), **payload.model_dump()))


@router.put("/products/{product_id}", response=ProductOut)
def update_product(request: HttpRequest, product_id: int, payload: ProductIn) -> object:
    product = _product(request, product_id)
    return services.product_save(actor=actor(request), product=product, **payload.model_dump())


@router.post("/products/{product_id}/skus", response={201: SkuOut})
def create_sku(request: HttpRequest, product_id: int, payload: SkuIn) -> Status[object]:
    product = _product(request, product_id)
    return Status(
        201, services.sku_save(actor=actor(request), product=product, **payload.model_dump())
    )


@router.put("/skus/{sku_id}", response=SkuOut)
def update_sku(request: HttpRequest, sku_id: int, payload: SkuIn) -> object:
    sku = _sku(request, sku_id)
    return services.sku_save(
        actor=actor(request), product=sku.product, sku=sku, **payload.model_dump()
    )


@router.post("/skus/{sku_id}/stock", response=SkuOut)
def adjust_stock(request: HttpRequest, sku_id: int, payload: StockIn) -> object:
    """Add (positive) or take out (negative) stock; never below zero."""
    return services.stock_adjust(
        actor=actor(request), sku=_sku(request, sku_id), delta=payload.delta
    )


@router.get("/orders", response=OrderPage)
def list_orders(request: HttpRequest, params: Query[OrderFilter]) -> object:
    """Orders credited to members in your scope or placed by customers you serve."""
    orders = selectors.order_list(
        actor=actor(request),
        status=params.status,
        source=params.source,
        customer_id=params.customer_id,
    )
    return paginate(orders, params)


@router.get("/orders/{order_id}", response=OrderDetailOut)
def get_order(request: HttpRequest, order_id: int) -> object:
    return selectors.order_get(actor=actor(request), order_id=order_id)


@router.post("/orders/{order_id}/refund", response={201: RefundOut})
def refund_order(request: HttpRequest, order_id: int, payload: RefundIn) -> Status[object]:
    """Refund part or all of what was paid (never more than is left)."""
    member = actor(request)
    order = selectors.order_get(actor=member, order_id=order_id, action=Action.ORDERS_REFUND)
    refund = services.order_refund(
        order=order, amount_fen=payload.amount_fen, reason=payload.reason, by=member
    )
    return Status(201, refund)


@router.post("/orders/{order_id}/cancel", response=OrderOut)
def cancel_order(request: HttpRequest, order_id: int) -> object:
    """Cancel an unpaid order; its stock goes back."""
    member = actor(request)
    order = selectors.order_get(actor=member, order_id=order_id, action=Action.ORDERS_REFUND)
    return services.order_cancel(order=order, source="api")


@router.get("/links", response=list[LinkOut])
def my_links(request: HttpRequest, src: str = "") -> object:
    """Your own shop link and a link for every product, crediting you (and ``src``)."""
    member = actor(request)
    require(member, Action.ORDERS_VIEW)
    links: list[dict[str, object]] = [
        {"product_id": None, "name": "", "url": services.staff_shop_url(staff=member, src=src)}
    ]
    for product in selectors.products_on_sale():
        url = services.staff_shop_url(staff=member, product=product, src=src)
        links.append({"product_id": product.pk, "name": product.name, "url": url})
    return links


def _settings_out(account: PaymentAccount | None) -> dict[str, object]:
    return {
        "configured": account is not None,
        "mchid": account.mchid if account else "",
        "appid": account.appid if account else "",
        "api_base_url": account.api_base_url if account else "",
        "notify_url": services.payment_notify_url(),
    }


@router.get("/payment-settings", response=PaymentSettingsOut)
def get_payment_settings(request: HttpRequest) -> object:
    require(actor(request), Action.SHOP_MANAGE)
    return _settings_out(PaymentAccount.objects.first())


@router.put("/payment-settings", response=PaymentSettingsOut)
def put_payment_settings(request: HttpRequest, payload: PaymentSettingsIn) -> object:
    """The merchant account (商户号); the API v3 key is stored encrypted and never shown."""
    account = services.payment_account_configure(actor=actor(request), **payload.model_dump())
    return _settings_out(account)


def _shop_out(shop: ExternalShop, secret: str = "") -> dict[str, object]:
    return {
        "key": shop.key,
        "name": shop.name,
        "webhook_url": services.order_webhook_url(shop=shop),
        "secret": secret,
    }


@router.get("/external-shops", response=list[ExternalShopOut])
def list_external_shops(request: HttpRequest) -> object:
    require(actor(request), Action.SHOP_MANAGE)
    return [_shop_out(shop) for shop in ExternalShop.objects.order_by("key")]


@router.post("/external-shops", response={201: ExternalShopOut})
def create_external_shop(request: HttpRequest, payload: ExternalShopIn) -> Status[object]:
    """Register another shop; the answer carries its webhook secret, shown this once."""
    shop, secret = services.external_shop_create(actor=actor(request), **payload.model_dump())
    return Status(201, _shop_out(shop, secret))


@router.post("/external-shops/{shop_key}/import", response=ImportReportOut)
def import_orders(
    request: HttpRequest, shop_key: str, file: File[UploadedFile | None] = None
) -> object:
    """Import the shop's order export (CSV or xlsx, amounts in yuan); unmatched rows and rows
    with errors are reported by row number."""
    member = actor(request)
    require(member, Action.ORDERS_IMPORT)
    if file is None:
        raise InvalidInput("file: upload a CSV or xlsx export")
    return external.external_orders_import(
        actor=member, shop_key=shop_key, name=file.name or "orders.csv", file=cast(IO[bytes], file)
    )
