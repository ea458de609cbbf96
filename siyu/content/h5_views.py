"""The customer's page for a tracked piece of content, opened inside WeChat, and its beacon.

Order matters: the token is verified before anything else (a tampered or expired link never
bounces the visitor through WeChat and records nothing), then WeChat OAuth names the visitor
when the company has an official account, then the open is recorded.
"""

import json
import os
import secrets
from urllib.parse import urlsplit

from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from siyu.content import services
from siyu.content.models import ContentKind
from siyu.content.signing import LinkExpired, token_decode
from siyu.core.errors import InvalidInput
from siyu.core.tenancy import tenant_context
from siyu.h5.pages import h5_problem, h5_sign_in, h5_tenant
from siyu.h5.services import h5_visitor
from siyu.wecom.oauth import oauth_configured

BROWSER_KEY = "content:browser"
MAX_BEACON_BYTES = 1024


def _refused(request: HttpRequest, exc: InvalidInput | LinkExpired) -> HttpResponse:
    if isinstance(exc, LinkExpired):
        return h5_problem(request, _("链接已过期，请联系发送给您的顾问重新获取"), 410)
    return h5_problem(request, _("链接无效或已被修改，请从原消息重新打开"), 400)


@require_GET
def view(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    tenant = h5_tenant(slug)
    if tenant is None:
        return h5_problem(request, _("页面不存在"), 404)
    try:
        token_decode(tenant, token, now=timezone.now())
    except (InvalidInput, LinkExpired) as exc:
        return _refused(request, exc)
    customer = h5_visitor(request, tenant)
    if customer is None and oauth_configured(tenant):
        return h5_sign_in(request, slug)
    browser_key = request.session.setdefault(BROWSER_KEY, secrets.token_urlsafe(12))
    with tenant_context(tenant):
        try:
            opened = services.visit_open(
                token=token,
                customer=customer,
                browser_key=browser_key,
                user_agent=request.headers.get("User-Agent", ""),
            )
        except (InvalidInput, LinkExpired) as exc:
            return _refused(request, exc)
        visit = opened.visit
        item = visit.item
        context = {
            "item": item,
            "file_url": _media_url(slug, token, "file") if item.file else "",
            "cover_url": _media_url(slug, token, "cover") if item.cover else "",
            "kinds": ContentKind,
            "tags": list(item.tags.all()),
            "card": item.card_staff,
            "price_yuan": _yuan(item.price_fen),
            "sender": visit.sender,
            "share_path": urlsplit(opened.share_url).path,
            "beacon_url": reverse("content_h5:beacon", args=[slug]),
            "beacon_key": visit.beacon_key,
        }
        return render(request, "content/h5_item.html", context)


@csrf_exempt  # navigator.sendBeacon cannot send a CSRF token; the per-visit key authorises.
@require_POST
def beacon(request: HttpRequest, slug: str) -> HttpResponse:
    """Body: {"key": <beacon key>, "seconds": <cumulative read seconds>, "final": bool}."""
    tenant = h5_tenant(slug)
    if tenant is None:
        return _error("not_found", "no such page", 404)
    if len(request.body) > MAX_BEACON_BYTES:
        return _error("payload_too_large", "beacon body is too large", 413)
    try:
        data = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return _error("invalid_input", "body must be JSON", 400)
    if not isinstance(data, dict):
        return _error("invalid_input", "body must be a JSON object", 400)
    with tenant_context(tenant):
        try:
            services.visit_beacon(
                beacon_key=str(data.get("key") or ""),
                seconds=data.get("seconds"),
                final=data.get("final") is True,
            )
        except InvalidInput as exc:
            return _error(exc.code, exc.message, exc.status)
    return HttpResponse(status=204)


def _media_url(slug: str, token: str, part: str) -> str:
    return reverse("content_h5:media", args=[slug, token, part])


@require_GET
def media(request: HttpRequest, slug: str, token: str, part: str) -> HttpResponseBase:
    """The item's file or cover, reachable only through a valid link (no public media URLs).
    Documents download rather than render: an uploaded HTML file must not run on our domain."""
    tenant = h5_tenant(slug)
    if tenant is None or part not in ("file", "cover"):
        raise Http404("no such file")
    with tenant_context(tenant):
        try:
            item = services.item_for_token(token=token)
        except (InvalidInput, LinkExpired) as exc:
            return _refused(request, exc)
        stored = item.file if part == "file" else item.cover
        if not stored:
            raise Http404("no such file")
        download = part == "file" and item.kind == ContentKind.FILE
        response = FileResponse(
            stored.open("rb"),
            as_attachment=download,
            filename=os.path.basename(stored.name or ""),
        )
        response["Content-Security-Policy"] = "sandbox"
        return response


def _yuan(fen: int | None) -> str:
    return "" if fen is None else f"{fen // 100}.{fen % 100:02d}"


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"code": code, "message": message}, status=status)
