"""The REST API: one NinjaAPI, one router per app, one error format.

Every error body is ``{"code": ..., "message": ...}`` (plus ``errors`` for field problems), with
the status code that fits: 400 bad input, 401 no or bad credentials, 403 not allowed, 404 missing
(or not visible), 409 conflict, 413 body too large, 422 schema violations.
"""

import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from siyu.api.auth import StaffSessionAuth, TokenAuth
from siyu.core.errors import SiyuError

logger = logging.getLogger(__name__)

api = NinjaAPI(
    title="Siyu API",
    version="1",
    description="Siyu (私域) SCRM. Authenticate with `Authorization: Bearer <token>` "
    "(tokens are created under 设置 → API 令牌) or a console session with CSRF.",
    urls_namespace="api",
    auth=[TokenAuth(), StaffSessionAuth()],
)


def _error(
    request: HttpRequest, status: int, code: str, message: str, **extra: Any
) -> HttpResponse:
    return api.create_response(request, {"code": code, "message": message, **extra}, status=status)


@api.exception_handler(SiyuError)
def _siyu_error(request: HttpRequest, exc: SiyuError) -> HttpResponse:
    extra = {"details": exc.details} if exc.details is not None else {}
    return _error(request, exc.status, exc.code, exc.message, **extra)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "message": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors
    ]
    first = errors[0] if errors else {"loc": [], "message": "invalid request"}
    where = ".".join(part for part in first["loc"] if part not in {"body", "query", "payload"})
    message = f"{where}: {first['message']}" if where else str(first["message"])
    return _error(request, 422, "invalid_request", message, errors=errors)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _error(
        request, 401, "unauthenticated", "missing or invalid credentials (Bearer token or session)"
    )


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    codes = {400: "bad_request", 403: "permission_denied", 404: "not_found", 405: "not_allowed"}
    return _error(request, exc.status_code, codes.get(exc.status_code, "http_error"), str(exc))


@api.exception_handler(RequestDataTooBig)
def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return _error(request, 413, "payload_too_large", "request body is too large")


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not_found", "not found")


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("unhandled API error on %s", request.path)
    return _error(request, 500, "internal_error", "internal error; it has been logged")


def _register_routers() -> None:
    from siyu.accounts.api import router as accounts_router
    from siyu.analytics.api import router as analytics_router
    from siyu.audit.api import router as audit_router
    from siyu.channels.api import router as channels_router
    from siyu.content.api import router as content_router
    from siyu.customers.api import lifecycle_router
    from siyu.customers.api import router as customers_router
    from siyu.dashboards.api import router as dashboards_router
    from siyu.fission.api import router as fission_router
    from siyu.imports.api import export_router
    from siyu.imports.api import router as imports_router
    from siyu.insights.api import router as insights_router
    from siyu.masssend.api import router as masssend_router
    from siyu.promotions.api import router as promotions_router
    from siyu.segments.api import router as segments_router
    from siyu.shop.api import router as shop_router
    from siyu.sop.api import router as sop_router
    from siyu.system.api import router as events_router
    from siyu.tags.api import router as tags_router
    from siyu.team.api import router as team_router
    from siyu.transfers.api import router as transfers_router
    from siyu.webhooks.api import router as webhooks_router
    from siyu.wecom.api import router as wecom_router
    from siyu.workspace.api import router as workspace_router

    api.add_router("/org", accounts_router)
    api.add_router("/audit", audit_router)
    api.add_router("/segments", segments_router)
    api.add_router("/customers", customers_router)
    api.add_router("/lifecycle", lifecycle_router)
    api.add_router("/events", events_router)
    api.add_router("/webhooks", webhooks_router)
    api.add_router("/wecom", wecom_router)
    api.add_router("/transfers", transfers_router)
    api.add_router("/team", team_router)
    api.add_router("/tags", tags_router)
    api.add_router("/imports", imports_router)
    api.add_router("/exports", export_router)
    api.add_router("/fission", fission_router)
    api.add_router("/channels", channels_router)
    api.add_router("/content", content_router)
    api.add_router("/analytics", analytics_router)
    api.add_router("/shop", shop_router)
    api.add_router("/insights", insights_router)
    api.add_router("/dashboards", dashboards_router)
    api.add_router("/workspace", workspace_router)
    api.add_router("/sops", sop_router)
    api.add_router("/promotions", promotions_router)
    api.add_router("/masssends", masssend_router)


_register_routers()
