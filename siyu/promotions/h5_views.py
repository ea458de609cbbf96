"""The coupon claim page (领券页), opened by customers in WeChat: identify, show, claim."""

from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from siyu.core.errors import SiyuError
from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.h5.services import h5_visitor
from siyu.promotions import services
from siyu.promotions.models import Coupon, CouponTemplate


def _tenant(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug, is_active=True).first()
    if tenant is None:
        raise Http404("no such page")
    return tenant


@require_http_methods(["GET", "POST"])
def coupon_claim_page(request: HttpRequest, slug: str, template_id: int) -> HttpResponse:
    """GET shows the coupon and the visitor's copies; POST claims one (limits apply)."""
    tenant = _tenant(slug)
    customer = h5_visitor(request, tenant)
    if customer is None:
        start = reverse("h5:oauth_start", args=[slug])
        return HttpResponseRedirect(f"{start}?{urlencode({'next': request.path})}")
    with tenant_context(tenant):
        template = CouponTemplate.objects.filter(pk=template_id, claimable=True).first()
        if template is None:
            return render(request, "h5/problem.html", {"message": "优惠券不存在"}, status=404)
        error = ""
        status = 200
        if request.method == "POST":
            try:
                services.coupon_claim(template=template, customer=customer)
            except SiyuError as exc:
                error, status = exc.message, exc.status
            else:
                return HttpResponseRedirect(request.path)
        mine = Coupon.objects.filter(template=template, customer=customer).order_by("-pk")
        context = {"template": template, "coupons": mine, "error": error}
        return render(request, "promotions/h5_claim.html", context, status=status)
