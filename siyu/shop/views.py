"""Console pages for 转化 → 商城: products and stock, orders (refunds), my shop links, and the
shop settings (payment account, external shops and their order imports)."""

from typing import IO, cast

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, can
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput, NotFound
from siyu.shop import external, selectors, services
from siyu.shop.models import ExternalShop, OrderStatus, PaymentAccount, Product, Sku

PAGE_SIZE = 50


def _int(raw: str | None, what: str) -> int:
    text = (raw or "").strip()
    if not text.lstrip("-").isdigit():
        raise InvalidInput(_("%(what)s 须为整数") % {"what": what})
    return int(text)


@console_page(Action.SHOP_MANAGE)
def products(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        product = services.product_save(
            actor=staff,
            name=request.POST.get("name", ""),
            description=request.POST.get("description", ""),
            images=[u for u in request.POST.get("images", "").split() if u],
        )
        messages.success(request, _("商品已创建"))
        return redirect(reverse("console:shop_product", args=[product.pk]))
    items = Product.objects.prefetch_related("skus")
    return render(request, "shop/products.html", {"products": items})


@console_page(Action.SHOP_MANAGE)
def product(request: HttpRequest, staff: StaffMember, product_id: int) -> HttpResponse:
    item = Product.objects.filter(pk=product_id).first()
    if item is None:
        raise NotFound("product not found")
    if request.method == "POST":
        form = request.POST.get("form", "")
        if form == "product":
            services.product_save(
                actor=staff,
                product=item,
                name=request.POST.get("name", ""),
                description=request.POST.get("description", ""),
                images=[u for u in request.POST.get("images", "").split() if u],
                is_active=request.POST.get("is_active") == "1",
            )
        elif form == "sku":
            sku_id = request.POST.get("sku_id", "")
            sku = (
                Sku.objects.filter(product=item, pk=_int(sku_id, "SKU")).first() if sku_id else None
            )
            services.sku_save(
                actor=staff,
                product=item,
                sku=sku,
                name=request.POST.get("name", ""),
                price_fen=external.yuan_to_fen(request.POST.get("price", "")),
                code=request.POST.get("code", ""),
                is_active=request.POST.get("is_active", "1") == "1",
            )
        elif form == "stock":
            sku = Sku.objects.filter(
                product=item, pk=_int(request.POST.get("sku_id"), "SKU")
            ).first()
            if sku is None:
                raise NotFound("SKU not found")
            services.stock_adjust(
                actor=staff, sku=sku, delta=_int(request.POST.get("delta"), _("库存变化"))
            )
        else:
            raise InvalidInput(_("未知的表单"))
        messages.success(request, _("已保存"))
        return redirect(request.path)
    return render(request, "shop/product.html", {"product": item, "skus": item.skus.all()})


@console_page(Action.ORDERS_VIEW)
def orders(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    status = request.GET.get("status", "")
    if status not in OrderStatus.values:
        status = ""
    page = Paginator(selectors.order_list(actor=staff, status=status), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "shop/orders.html",
        {"page": page, "status": status, "statuses": OrderStatus.choices},
    )


@console_page(Action.ORDERS_VIEW)
def order(request: HttpRequest, staff: StaffMember, order_id: int) -> HttpResponse:
    item = selectors.order_get(actor=staff, order_id=order_id)
    return render(
        request,
        "shop/order.html",
        {
            "order": item,
            "lines": item.lines.all(),
            "refunds": item.refunds.all(),
            "can_refund": can(staff, Action.ORDERS_REFUND),
        },
    )


@require_POST
@console_page(Action.ORDERS_REFUND)
def order_refund(request: HttpRequest, staff: StaffMember, order_id: int) -> HttpResponse:
    item = selectors.order_get(actor=staff, order_id=order_id, action=Action.ORDERS_REFUND)
    if request.POST.get("form") == "cancel":
        services.order_cancel(order=item)
        messages.success(request, _("订单已取消，库存已退回"))
    else:
        services.order_refund(
            order=item,
            amount_fen=external.yuan_to_fen(request.POST.get("amount", "")),
            reason=request.POST.get("reason", ""),
            by=staff,
        )
        messages.success(request, _("退款已提交"))
    return redirect(reverse("console:shop_order", args=[item.pk]))


@console_page(Action.ORDERS_VIEW)
def links(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    src = request.GET.get("src", "").strip()
    try:
        home = services.staff_shop_url(staff=staff, src=src)
    except InvalidInput as exc:
        messages.error(request, exc.message)
        src, home = "", services.staff_shop_url(staff=staff)
    rows = [
        (p, services.staff_shop_url(staff=staff, product=p, src=src))
        for p in selectors.products_on_sale()
    ]
    return render(request, "shop/links.html", {"home": home, "rows": rows, "src": src})


@console_page(Action.SHOP_MANAGE)
def shop_settings(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    secret = ""
    if request.method == "POST":
        if request.POST.get("form") == "payment":
            services.payment_account_configure(
                actor=staff,
                mchid=request.POST.get("mchid", "").strip(),
                appid=request.POST.get("appid", "").strip(),
                api_v3_key=request.POST.get("api_v3_key", "").strip(),
                api_base_url=request.POST.get("api_base_url", "").strip(),
            )
            messages.success(request, _("支付设置已保存"))
            return redirect(request.path)
        _shop, secret = services.external_shop_create(
            actor=staff, key=request.POST.get("key", "").strip(), name=request.POST.get("name", "")
        )
        messages.success(request, _("外部店铺已添加，请立即复制签名密钥，它只显示这一次"))
    shops = [
        (shop, services.order_webhook_url(shop=shop))
        for shop in ExternalShop.objects.order_by("key")
    ]
    return render(
        request,
        "shop/settings.html",
        {
            "account": PaymentAccount.objects.first(),
            "notify_url": services.payment_notify_url(),
            "shops": shops,
            "secret": secret,
            "can_import": can(staff, Action.ORDERS_IMPORT),
        },
    )


@require_POST
@console_page(Action.ORDERS_IMPORT)
def order_import(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    upload = request.FILES.get("file")
    if upload is None:
        raise InvalidInput(_("请选择要导入的订单文件（CSV 或 Excel）"))
    report = external.external_orders_import(
        actor=staff,
        shop_key=request.POST.get("shop", ""),
        name=upload.name or "",
        file=cast(IO[bytes], upload),
    )
    return render(request, "shop/import_report.html", {"report": report})
