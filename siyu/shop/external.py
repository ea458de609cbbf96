"""Orders from other shops (有赞, 淘宝 …): a signed inbound webhook and CSV/xlsx imports.

Both paths end in ``external_order_record``: matched to a customer by the buyer's identifiers
(unionid, phone, the shop's buyer id), idempotent on (shop, external id), and paid orders emit
``order.paid`` like our own, so they count wherever Siyu counts orders (lifecycle, dashboards,
CLV). Unmatched orders are kept without a customer and reported.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from pydantic import BaseModel, Field, ValidationError, field_validator

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require
from siyu.analytics.services import parse_yuan
from siyu.core.errors import InvalidInput, NotFound
from siyu.core.services import event_record
from siyu.customers.merging import phone_normalise
from siyu.customers.models import Customer, IdentityKind, RelationStatus, StaffRelation
from siyu.customers.services import customer_for_identity, identity_link
from siyu.imports.parsing import file_format_for, open_table
from siyu.shop.events import ORDER_CREATED
from siyu.shop.models import ExternalShop, Order, OrderLine, OrderSource, OrderStatus
from siyu.shop.services import _new_number, _order_paid, order_refund

MAX_IMPORT_ROWS = 5000


class Buyer(BaseModel):
    phone: str = Field(default="", max_length=32)
    unionid: str = Field(default="", max_length=128)
    buyer_id: str = Field(default="", max_length=64)


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    price_fen: int = Field(ge=0)
    quantity: int = Field(ge=1, le=100_000)


class ExternalOrder(BaseModel):
    external_id: str = Field(min_length=1, max_length=64)
    status: str = Field(pattern="^(created|paid|cancelled)$")
    total_fen: int = Field(ge=0)
    paid_fen: int = Field(default=0, ge=0)
    refunded_fen: int = Field(default=0, ge=0)
    paid_at: datetime | None = None
    buyer: Buyer = Field(default_factory=Buyer)
    staff_userid: str = Field(default="", max_length=64)
    items: list[Item] = Field(default_factory=list, max_length=200)

    @field_validator("paid_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and timezone.is_naive(value):
            return timezone.make_aware(value)
        return value

    def check(self) -> None:
        if self.paid_fen > self.total_fen:
            raise InvalidInput("paid_fen exceeds total_fen", code="amount_mismatch")
        if self.refunded_fen > self.paid_fen:
            raise InvalidInput("refunded_fen exceeds paid_fen", code="amount_mismatch")
        if self.status == "paid" and (
            self.paid_at is None or self.paid_fen == 0 and self.total_fen
        ):
            raise InvalidInput("a paid order needs paid_at and paid_fen")
        if self.items and sum(i.price_fen * i.quantity for i in self.items) < self.paid_fen:
            raise InvalidInput("items add up to less than was paid", code="amount_mismatch")


@dataclass
class Recorded:
    order: Order
    created: bool
    matched: bool


def _match(shop: ExternalShop, buyer: Buyer) -> Customer | None:
    """The customer the buyer's identifiers name; the others are linked to them for next time."""
    candidates: list[tuple[str, str]] = []
    if buyer.unionid:
        candidates.append((IdentityKind.UNIONID.value, buyer.unionid))
    if buyer.phone:
        # A malformed phone only means one fewer way to match.
        with contextlib.suppress(InvalidInput):
            candidates.append((IdentityKind.PHONE.value, phone_normalise(buyer.phone)))
    if buyer.buyer_id:
        candidates.append((IdentityKind.SHOP_BUYER.value, f"{shop.key}:{buyer.buyer_id}"))
    customer = next(
        (c for kind, value in candidates if (c := customer_for_identity(kind, value))), None
    )
    if customer is not None:
        for kind, value in candidates:
            identity_link(customer, kind, value)
    return customer


def _owner(customer: Customer | None, staff_userid: str) -> StaffMember | None:
    if staff_userid:
        staff = StaffMember.objects.filter(userid=staff_userid).first()
        if staff is not None:
            return staff
    if customer is None:
        return None
    relation = (
        StaffRelation.objects.filter(customer=customer, status=RelationStatus.ACTIVE)
        .select_related("staff")
        .order_by("-added_at")
        .first()
    )
    return relation.staff if relation else None


def external_order_record(*, shop: ExternalShop, data: ExternalOrder, source: str) -> Recorded:
    data.check()
    with transaction.atomic():
        # Locked: two pushes of the same refund must not both record the difference.
        existing = (
            Order.objects.select_for_update()
            .filter(external_source=shop.key, external_id=data.external_id)
            .first()
        )
        if existing is not None:
            # A later push of the same order may report more refunded: the difference is
            # recorded as a refund (external orders are refunded by their shop, no provider).
            more = data.refunded_fen - existing.refunded_fen
            if more > 0 and existing.paid_fen:
                order_refund(order=existing, amount_fen=more, reason="refunded in the shop")
                existing.refresh_from_db()
            return Recorded(existing, False, existing.customer_id is not None)
    customer = _match(shop, data.buyer)
    staff = _owner(customer, data.staff_userid)
    try:
        with transaction.atomic():
            order = Order.objects.create(
                number=_new_number("E"),
                customer=customer,
                staff=staff,
                total_fen=data.total_fen,
                discount_fen=data.total_fen - data.paid_fen if data.status == "paid" else 0,
                source=source,
                external_source=shop.key,
                external_id=data.external_id,
                channel=f"shop:{shop.key}",
            )
            OrderLine.objects.bulk_create(
                OrderLine(
                    tenant=order.tenant,
                    order=order,
                    name=item.name,
                    price_fen=item.price_fen,
                    quantity=item.quantity,
                )
                for item in data.items
            )
            event_record(
                type=ORDER_CREATED,
                source=source,
                customer_id=customer.pk if customer else None,
                payload={
                    "order_id": order.pk,
                    "total_fen": order.total_fen,
                    "staff_id": order.staff_id,
                },
            )
            if data.status == "paid":
                assert data.paid_at is not None  # noqa: S101 (checked above)
                _order_paid(
                    order=order, amount_fen=data.paid_fen, paid_at=data.paid_at, source=source
                )
            elif data.status == "cancelled":
                Order.objects.filter(pk=order.pk).update(
                    status=OrderStatus.CANCELLED, cancelled_at=timezone.now()
                )
    except IntegrityError:
        # The same order pushed twice at once: the first one recorded it.
        order = Order.objects.get(external_source=shop.key, external_id=data.external_id)
        return Recorded(order, False, order.customer_id is not None)
    if data.refunded_fen:
        order_refund(order=order, amount_fen=data.refunded_fen, reason="refunded in the shop")
        order.refresh_from_db()
    return Recorded(order, True, customer is not None)


# --- webhook ------------------------------------------------------------------------------


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """hex HMAC-SHA256 over ``"<timestamp>.<body>"``, sent as ``X-Siyu-Signature``."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def order_webhook_receive(*, shop_key: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    shop = ExternalShop.objects.filter(key=shop_key).first()
    if shop is None:
        raise NotFound("unknown shop")
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp, signature = lower.get("x-siyu-timestamp", ""), lower.get("x-siyu-signature", "")
    if not timestamp.isdigit() or not signature:
        raise InvalidInput("missing X-Siyu-Timestamp / X-Siyu-Signature", code="bad_signature")
    if abs(time.time() - int(timestamp)) > settings.SIYU_SHOP_SIGNATURE_MAX_AGE_SECONDS:
        raise InvalidInput("timestamp outside the replay window", code="stale")
    if not hmac.compare_digest(webhook_signature(shop.secret, timestamp, body), signature):
        raise InvalidInput("signature does not verify", code="bad_signature")
    try:
        data = ExternalOrder.model_validate(json.loads(body))
    except ValueError as exc:  # JSON and pydantic errors alike
        message = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else "invalid JSON"
        raise InvalidInput(f"invalid order: {message}") from exc
    recorded = external_order_record(shop=shop, data=data, source=OrderSource.WEBHOOK)
    return {
        "order_id": recorded.order.pk,
        "created": recorded.created,
        "matched": recorded.matched,
    }


# --- import -------------------------------------------------------------------------------

COLUMNS: dict[str, tuple[str, ...]] = {
    "external_id": ("订单号", "订单编号", "外部订单号", "order_id", "external_id"),
    "phone": ("手机号", "手机", "收货人手机", "买家手机", "phone", "mobile"),
    "unionid": ("unionid", "union_id"),
    "buyer_id": ("买家id", "买家账号", "会员id", "buyer_id"),
    "total": ("订单金额", "商品总价", "总金额", "total"),
    "paid": ("实付金额", "实付", "付款金额", "paid"),
    "refunded": ("退款金额", "已退款", "refunded"),
    "paid_at": ("付款时间", "支付时间", "paid_at"),
    "status": ("订单状态", "状态", "status"),
    "item": ("商品名称", "商品", "item"),
    "quantity": ("数量", "商品数量", "quantity"),
    "staff": ("员工账号", "导购", "staff_userid"),
}
STATUS_WORDS = {
    "已付款": "paid",
    "已支付": "paid",
    "交易成功": "paid",
    "已发货": "paid",
    "已完成": "paid",
    "paid": "paid",
    "待付款": "created",
    "created": "created",
    "已取消": "cancelled",
    "交易关闭": "cancelled",
    "cancelled": "cancelled",
}


def yuan_to_fen(raw: str) -> int:
    """A cell in yuan ("¥1,280.50"; empty is 0) as fen, exactly (the analytics' parser)."""
    text = raw.replace("¥", "").replace("￥", "").strip()
    return parse_yuan(text) if text else 0


@dataclass
class ImportReport:
    created: int = 0
    duplicates: int = 0
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def _row_order(cells: dict[str, str]) -> ExternalOrder:
    status = STATUS_WORDS.get(cells.get("status", "").strip().lower() or "paid")
    if status is None:
        raise InvalidInput(f"unknown status {cells['status']!r}")
    paid_at = (
        parse_datetime(cells.get("paid_at", "").replace("/", "-")) if cells.get("paid_at") else None
    )
    total = yuan_to_fen(cells.get("total") or cells.get("paid", ""))
    quantity = int(cells.get("quantity") or 1)
    data = {
        "external_id": cells.get("external_id", ""),
        "status": status,
        "total_fen": total,
        "paid_fen": yuan_to_fen(cells.get("paid", "")) if status == "paid" else 0,
        "refunded_fen": yuan_to_fen(cells.get("refunded", "")),
        "paid_at": paid_at,
        "buyer": {k: cells.get(k, "") for k in ("phone", "unionid", "buyer_id")},
        "staff_userid": cells.get("staff", ""),
        "items": [
            {"name": cells["item"], "price_fen": total // max(quantity, 1), "quantity": quantity}
        ]
        if cells.get("item")
        else [],
    }
    return ExternalOrder.model_validate(data)


def external_orders_import(
    *, actor: StaffMember, shop_key: str, name: str, file: IO[bytes]
) -> ImportReport:
    """Import a shop's order export (CSV or xlsx, amounts in yuan) synchronously; every row is
    either created, a duplicate, or reported with its row number."""
    require(actor, Action.ORDERS_IMPORT)
    shop = ExternalShop.objects.filter(key=shop_key).first()
    if shop is None:
        raise NotFound("unknown shop")
    aliases = {alias.lower(): target for target, names in COLUMNS.items() for alias in names}
    report = ImportReport()
    with open_table(file, file_format_for(name)) as table:
        columns = {
            i: aliases[h.strip().lower()]
            for i, h in enumerate(table.header)
            if h.strip().lower() in aliases
        }
        if "external_id" not in columns.values():
            raise InvalidInput("the file needs an 订单号 (order number) column")
        for count, (number, row) in enumerate(table.rows, start=1):
            if count > MAX_IMPORT_ROWS:
                raise InvalidInput(f"at most {MAX_IMPORT_ROWS} rows per file; split it")
            cells = {target: row[i].strip() for i, target in columns.items() if i < len(row)}
            try:
                recorded = external_order_record(
                    shop=shop, data=_row_order(cells), source=OrderSource.IMPORT
                )
            except (InvalidInput, ValidationError, ValueError) as exc:
                message = exc.message if isinstance(exc, InvalidInput) else str(exc).splitlines()[0]
                report.errors.append({"row": number, "message": message})
                continue
            if not recorded.created:
                report.duplicates += 1
                continue
            report.created += 1
            if not recorded.matched:
                report.unmatched.append(
                    {"row": number, "external_id": cells.get("external_id", "")}
                )
    return report
