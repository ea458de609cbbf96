"""Catalog, per-staff shops, carts, orders, payments, refunds and external orders.

Money is integer fen. Stock lives on the ``Sku`` and is only ever changed by conditional
``F()`` updates (``stock >= qty``) inside the order's transaction, backed by a check
constraint, so concurrent orders can never sell more than there is. An ``Order`` moves through
``ORDER_TRANSITIONS`` only; every payment notification is recorded once by its provider
transaction id.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.core.fields import EncryptedTextField
from siyu.core.models import TenantModel


class Product(TenantModel):
    name = models.CharField(_("名称"), max_length=100)
    description = models.TextField(_("描述"), blank=True, default="")
    # Absolute image URLs, the first is the cover.
    images = models.JSONField(_("图片"), default=list, blank=True)
    is_active = models.BooleanField(_("上架"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self) -> str:
        return self.name


class Sku(TenantModel):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="skus")
    name = models.CharField(_("规格"), max_length=64)
    code = models.CharField(_("编码"), max_length=64, blank=True, default="")
    price_fen = models.PositiveIntegerField(_("价格（分）"))
    stock = models.PositiveIntegerField(_("库存"), default=0)
    is_active = models.BooleanField(_("启用"), default=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(condition=Q(stock__gte=0), name="shop_sku_stock"),
            models.CheckConstraint(condition=Q(price_fen__gt=0), name="shop_sku_price"),
        ]

    def __str__(self) -> str:
        return f"{self.product.name} {self.name}"


class CartStatus(models.TextChoices):
    OPEN = "open", _("未下单")
    ORDERED = "ordered", _("已下单")
    ABANDONED = "abandoned", _("已放弃")


class Cart(TenantModel):
    """One customer's basket in one staff member's shop."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=CartStatus.choices, default=CartStatus.OPEN)
    src = models.CharField(max_length=64, blank=True, default="")
    # The order checkout made of it; if that order expires unpaid, the cart was abandoned.
    order = models.ForeignKey(
        "Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status", "updated_at"], name="shop_cart_due")]

    def __str__(self) -> str:
        return f"cart#{self.pk}"


class CartLine(TenantModel):
    cart = models.ForeignKey(Cart, on_delete=models.CASCADE, related_name="lines")
    sku = models.ForeignKey(Sku, on_delete=models.CASCADE, related_name="+")
    quantity = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cart", "sku"], name="shop_cart_line_once")]


class OrderStatus(models.TextChoices):
    CREATED = "created", _("待付款")
    PAID = "paid", _("已付款")
    SHIPPED = "shipped", _("已发货")
    COMPLETED = "completed", _("已完成")
    CANCELLED = "cancelled", _("已取消")
    PARTIALLY_REFUNDED = "partially_refunded", _("部分退款")
    REFUNDED = "refunded", _("已退款")


# The only moves an order may make; anything else is rejected by ``order_transition``.
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.CREATED: frozenset({OrderStatus.PAID, OrderStatus.CANCELLED}),
    OrderStatus.PAID: frozenset(
        {
            OrderStatus.SHIPPED,
            OrderStatus.COMPLETED,
            OrderStatus.PARTIALLY_REFUNDED,
            OrderStatus.REFUNDED,
        }
    ),
    OrderStatus.SHIPPED: frozenset(
        {OrderStatus.COMPLETED, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}
    ),
    OrderStatus.COMPLETED: frozenset({OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
    OrderStatus.PARTIALLY_REFUNDED: frozenset(
        {OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}
    ),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REFUNDED: frozenset(),
}

PAID_STATUSES = (
    OrderStatus.PAID,
    OrderStatus.SHIPPED,
    OrderStatus.COMPLETED,
    OrderStatus.PARTIALLY_REFUNDED,
    OrderStatus.REFUNDED,
)


class OrderSource(models.TextChoices):
    SHOP = "shop", _("商城")
    IMPORT = "import", _("导入")
    WEBHOOK = "webhook", _("外部推送")


class Order(TenantModel):
    number = models.CharField(_("订单号"), max_length=32)
    customer = models.ForeignKey(
        "customers.Customer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="orders",
    )
    staff = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        _("状态"), max_length=20, choices=OrderStatus.choices, default=OrderStatus.CREATED
    )
    total_fen = models.PositiveIntegerField(_("商品金额（分）"))
    discount_fen = models.PositiveIntegerField(_("优惠（分）"), default=0)
    paid_fen = models.PositiveIntegerField(_("实付（分）"), default=0)
    refunded_fen = models.PositiveIntegerField(_("已退（分）"), default=0)
    paid_at = models.DateTimeField(_("付款时间"), null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(
        _("来源"), max_length=16, choices=OrderSource.choices, default=OrderSource.SHOP
    )
    # The external shop's name for import/webhook orders ("youzan", "jd" …); "" for our shop.
    external_source = models.CharField(max_length=32, blank=True, default="")
    external_id = models.CharField(max_length=64, blank=True, default="")
    # Where the buyer came from: a content link or campaign ("content:12", "fission:3").
    channel = models.CharField(_("渠道"), max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number"], name="shop_order_number"),
            models.UniqueConstraint(
                fields=["tenant", "external_source", "external_id"],
                condition=~Q(external_id=""),
                name="shop_order_external_once",
            ),
            models.CheckConstraint(
                condition=Q(discount_fen__lte=models.F("total_fen")), name="shop_order_discount"
            ),
            models.CheckConstraint(
                condition=Q(refunded_fen__lte=models.F("paid_fen")), name="shop_order_refund"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "customer", "-created_at"], name="shop_order_cust"),
            models.Index(fields=["status", "expires_at"], name="shop_order_due"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def payable_fen(self) -> int:
        return self.total_fen - self.discount_fen


class OrderLine(TenantModel):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    # Null for external orders (their goods are not in our catalog).
    sku = models.ForeignKey(Sku, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    name = models.CharField(max_length=200)
    price_fen = models.PositiveIntegerField()
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["pk"]

    @property
    def amount_fen(self) -> int:
        return self.price_fen * self.quantity


class PaymentStatus(models.TextChoices):
    PENDING = "pending", _("待支付")
    SUCCEEDED = "succeeded", _("支付成功")
    CLOSED = "closed", _("已关闭")


class Payment(TenantModel):
    """One attempt to pay an order at the provider (out_trade_no is ours, transaction_id theirs)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="payments")
    provider = models.CharField(max_length=32)
    out_trade_no = models.CharField(max_length=32, unique=True)
    amount_fen = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING
    )
    prepay_id = models.CharField(max_length=128, blank=True, default="")
    transaction_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.out_trade_no


class RefundStatus(models.TextChoices):
    PROCESSING = "processing", _("退款中")
    SUCCEEDED = "succeeded", _("退款成功")
    FAILED = "failed", _("退款失败")


class Refund(TenantModel):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="refunds")
    payment = models.ForeignKey(
        Payment, null=True, blank=True, on_delete=models.SET_NULL, related_name="refunds"
    )
    out_refund_no = models.CharField(max_length=32, unique=True)
    amount_fen = models.PositiveIntegerField()
    reason = models.CharField(_("原因"), max_length=200, blank=True, default="")
    # Money returned for a payment that never counted on the order (it was paid twice, or
    # after it was cancelled); it leaves the order's paid/refunded amounts alone.
    is_surplus = models.BooleanField(default=False)
    status = models.CharField(
        max_length=16, choices=RefundStatus.choices, default=RefundStatus.PROCESSING
    )
    provider_refund_id = models.CharField(max_length=64, blank=True, default="")
    by = models.ForeignKey(
        "accounts.StaffMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_fen__gt=0), name="shop_refund_positive")
        ]


class PaymentAccount(TenantModel):
    """The tenant's merchant account (商户号) at the payment provider; one per tenant."""

    provider = models.CharField(_("支付渠道"), max_length=32, default="wechatpay")
    mchid = models.CharField(_("商户号"), max_length=32)
    appid = models.CharField(_("AppID"), max_length=32)
    api_v3_key = EncryptedTextField(_("APIv3 密钥"))
    api_base_url = models.URLField(_("支付 API 地址"), default="https://api.mch.weixin.qq.com/")
    is_active = models.BooleanField(_("启用"), default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="shop_payment_account")]

    def __str__(self) -> str:
        return self.mchid


class ExternalShop(TenantModel):
    """Another shop (有赞, 淘宝 …) whose orders enter Siyu by a signed webhook or an import."""

    key = models.SlugField(_("标识"), max_length=32)
    name = models.CharField(_("名称"), max_length=64)
    secret = EncryptedTextField(_("签名密钥"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="shop_external_key")]

    def __str__(self) -> str:
        return self.name
