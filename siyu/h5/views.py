"""H5 entry points opened inside WeChat by customers (no console login)."""

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_GET

from siyu.core.errors import InvalidInput
from siyu.h5 import services
from siyu.h5.pages import h5_problem, h5_tenant
from siyu.wecom.client.errors import WeComError


@require_GET
def oauth_start(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = h5_tenant(slug)
    if tenant is None:
        return h5_problem(request, "页面不存在", 404)
    callback = request.build_absolute_uri(reverse("h5:oauth_callback", args=[slug]))
    try:
        target = services.oauth_begin(
            request, tenant, callback_url=callback, next_url=request.GET.get("next", "/")
        )
    except InvalidInput as exc:
        return h5_problem(request, exc.message, 400)
    return HttpResponseRedirect(target)


@require_GET
def oauth_callback(request: HttpRequest, slug: str) -> HttpResponse:
    tenant = h5_tenant(slug)
    if tenant is None:
        return h5_problem(request, "页面不存在", 404)
    try:
        next_url = services.oauth_complete(
            request, tenant, code=request.GET.get("code", ""), state=request.GET.get("state", "")
        )
    except InvalidInput as exc:
        return h5_problem(request, exc.message, 400)
    except WeComError as exc:
        # An expired or reused code (40029, 40163) or WeChat unreachable: ask to reopen.
        return h5_problem(request, f"微信授权失败（{exc.errcode}），请重新打开页面", 502)
    return HttpResponseRedirect(next_url)
