"""The staff member's H5 shop, opened in WeChat: browse, cart, checkout, pay, order status.

Every page identifies the visitor by WeChat OAuth first. The signed token in the shop link
says which member (and which content or campaign) the visit and any order are credited to;
the session remembers the last link followed.
"""

from collections.abc import Callable
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.core.errors import SiyuError
from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.customers.models import Customer, CustomerIdentity, IdentityKind
from siyu.h5.pages import h5_problem, h5_sign_in, h5_tenant_or_404
from siyu.h5.services import h5_visitor
from siyu.promotions.services import coupon_order_place
from siyu.shop import selectors, services
from siyu.shop.models import Order, OrderStatus, Product, Sku


def _attribution_key(tenant: Tenant) -> str:
    return f"shop:link:{tenant.pk}"


def _attribution(request: HttpRequest, tenant: Tenant) -> services.Attribution:
    token = request.session.get(_attribution_key(tenant), "")
    if token:
        try:
            return services.staff_shop_attribution(token=token)
        except SiyuError:
            pass
    return services.Attribution(staff=None, src="")


def _follow(request: HttpRequest, tenant: Tenant, token: str) -> services.Attribution:
    attribution = services.staff_shop_attribution(token=token)
    request.session[_attribution_key(tenant)] = token
    return attribution


@require_GET
def shop_home(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    tenant = h5_tenant_or_404(slug)
    customer = h5_visitor(request, tenant)
    if customer is None:
        return h5_sign_in(request, slug)
    with tenant_context(tenant):
        try:
            attribution = _follow(request, tenant, token)
        except SiyuError as exc:
            return h5_problem(request, exc.message, exc.status)
        return render(
            request,
            "shop/h5_home.html",
            {
                "slug": slug,
                "token": token,
                "staff": attribution.staff,
                "products": selectors.products_on_sale(),
            },
        )


@require_GET
def product(request: HttpRequest, slug: str, token: str, product_id: int) -> HttpResponse:
    tenant = h5_tenant_or_404(slug)
    customer = h5_visitor(request, tenant)
    if customer is None:
        return h5_sign_in(request, slug)
    with tenant_context(tenant):
        try:
            attribution = _follow(request, tenant, token)
        except SiyuError as exc:
            return h5_problem(request, exc.message, exc.status)
        item = Product.objects.filter(pk=product_id, is_active=True).first()
        if item is None:
            return h5_problem(request, _("商品不存在或已下架"), 404)
        services.product_viewed(customer=customer, product=item, staff=attribution.staff)
        return render(
            request,
            "shop/h5_product.html",
            {
                "slug": slug,
                "token": token,
                "product": item,
                "skus": item.skus.filter(is_active=True),
                "staff": attribution.staff,
            },
        )


def _cart_context(slug: str, cart_obj: object) -> dict[str, object]:
    return {"slug": slug, "cart": cart_obj, **selectors.cart_summary(cart=cart_obj)}  # type: ignore[arg-type]


@require_http_methods(["GET", "POST"])
def cart(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = h5_tenant_or_404(slug)
    customer = h5_visitor(request, tenant)
    if customer is None:
        return h5_sign_in(request, slug)
    with tenant_context(tenant):
        attribution = _attribution(request, tenant)
        basket = services.cart_for(customer=customer, staff=attribution.staff, src=attribution.src)
        if request.method == "POST":
            try:
                sku = (
                    Sku.objects.select_related("product")
                    .filter(pk=int(request.POST.get("sku", "0")))
                    .first()
                )
                if sku is None:
                    return h5_problem(request, _("商品规格不存在"), 404)
                services.cart_set(
                    cart=basket, sku=sku, quantity=int(request.POST.get("quantity", "1"))
                )
            except ValueError:
                return h5_problem(request, _("数量无效"), 400)
            except SiyuError as exc:
                return h5_problem(request, exc.message, exc.status)
            return HttpResponseRedirect(reverse("shop_h5:cart", args=[slug]))
        return render(request, "shop/h5_cart.html", _cart_context(slug, basket))


def _openid(customer: Customer) -> str:
    identity = (
        CustomerIdentity.objects.filter(customer=customer, kind=IdentityKind.OPENID)
        .order_by("-pk")
        .first()
    )
    return identity.value if identity else ""


@require_POST
def checkout(request: HttpRequest, slug: str) -> HttpResponse:
    """Order the cart and go to pay (WeChat's cashier; the sandbox's in tests and the demo)."""
    tenant = h5_tenant_or_404(slug)
    customer = h5_visitor(request, tenant)
    if customer is None:
        return h5_sign_in(request, slug)
    with tenant_context(tenant):
        attribution = _attribution(request, tenant)
        basket = services.cart_for(customer=customer, staff=attribution.staff, src=attribution.src)
        try:
            # promotions: an optional coupon code, redeemed inside the order's transaction.
            order = coupon_order_place(
                code=request.POST.get("coupon", ""),
                customer=customer,
                subtotal_fen=services.cart_total(basket),
                place=lambda discount_fen: services.cart_checkout(
                    cart=basket, discount_fen=discount_fen
                ),
            )
        except SiyuError as exc:
            return h5_problem(request, exc.message, exc.status)
        return order_pay_response(request, slug, customer, order)


def order_pay_response(
    request: HttpRequest, slug: str, customer: Customer, order: Order
) -> HttpResponse:
    """Start paying ``order`` (tenant in context) and send the customer to the cashier; used by
    the checkout, an unpaid order's page and other apps' orders (e.g. a group-buy seat)."""
    try:
        start = services.payment_start(
            order=order,
            openid=_openid(customer),
            notify_url=request.build_absolute_uri(
                reverse("shop_hooks:payment_notify", args=[slug])
            ),
        )
    except SiyuError as exc:
        return h5_problem(request, exc.message, exc.status)
    back = request.build_absolute_uri(reverse("shop_h5:order", args=[slug, order.number]))
    if start.params.get("pay_url"):
        return HttpResponseRedirect(f"{start.params['pay_url']}?{urlencode({'redirect': back})}")
    return render(
        request, "shop/h5_pay.html", {"order": order, "params": start.params, "back": back}
    )


def _own_order(
    request: HttpRequest,
    slug: str,
    number: str,
    respond: Callable[[Customer, Order], HttpResponse],
) -> HttpResponse:
    """``respond`` for the visitor's own order ``number`` (tenant in context), after sign-in."""
    tenant = h5_tenant_or_404(slug)
    customer = h5_visitor(request, tenant)
    if customer is None:
        return h5_sign_in(request, slug)
    with tenant_context(tenant):
        order = Order.objects.filter(number=number, customer=customer).first()
        if order is None:
            return h5_problem(request, _("订单不存在"), 404)
        return respond(customer, order)


@require_POST
def order_pay(request: HttpRequest, slug: str, number: str) -> HttpResponse:
    """Pay the visitor's own unpaid order (left unpaid at the cashier, or a group-buy seat)."""

    def pay(customer: Customer, order: Order) -> HttpResponse:
        if order.status != OrderStatus.CREATED:
            return h5_problem(request, _("该订单无需支付"), 409)
        return order_pay_response(request, slug, customer, order)

    return _own_order(request, slug, number, pay)


@require_GET
def order_page(request: HttpRequest, slug: str, number: str) -> HttpResponse:
    def show(customer: Customer, order: Order) -> HttpResponse:
        context = {"order": order, "lines": order.lines.all(), "slug": slug}
        return render(request, "shop/h5_order.html", context)

    return _own_order(request, slug, number, show)
