"""Endpoints other systems POST to: the payment provider's notifications and other shops'
order webhooks. No session, no CSRF: each request proves itself by its signature."""

import logging

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from siyu.core.errors import SiyuError
from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.shop import external, services

logger = logging.getLogger(__name__)

MAX_BODY = 256 * 1024


def _tenant(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug, is_active=True).first()
    if tenant is None:
        raise Http404("no such company")
    return tenant


@csrf_exempt
@require_POST
def payment_notify(request: HttpRequest, slug: str) -> HttpResponse:
    """WeChat Pay's notify_url: 204 when handled (or already handled), otherwise 4xx/5xx with
    ``{"code": "FAIL", "message": …}`` so the provider retries."""
    tenant = _tenant(slug)
    if len(request.body) > MAX_BODY:
        return JsonResponse({"code": "FAIL", "message": "body too large"}, status=413)
    with tenant_context(tenant):
        try:
            services.payment_notified(headers=dict(request.headers), body=request.body)
        except SiyuError as exc:
            logger.warning("payment notification refused (%s): %s", exc.code, exc.message)
            status = 401 if exc.code in {"bad_signature", "stale"} else exc.status
            return JsonResponse({"code": "FAIL", "message": exc.message}, status=status)
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def order_webhook(request: HttpRequest, slug: str, shop_key: str) -> HttpResponse:
    """Another shop pushes an order (or its update); signed with the shop's secret."""
    tenant = _tenant(slug)
    if len(request.body) > MAX_BODY:
        return JsonResponse({"code": "payload_too_large", "message": "body too large"}, status=413)
    with tenant_context(tenant):
        try:
            result = external.order_webhook_receive(
                shop_key=shop_key, headers=dict(request.headers), body=request.body
            )
        except SiyuError as exc:
            return JsonResponse({"code": exc.code, "message": exc.message}, status=exc.status)
    return JsonResponse(result)
