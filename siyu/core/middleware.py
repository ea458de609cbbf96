"""Sets the tenant context for console requests from the signed-in staff member."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from siyu.core.request_context import reset_client_ip, set_client_ip
from siyu.core.tenancy import reset_current_tenant, set_current_tenant


class TenantMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from siyu.accounts.selectors import staff_for_user

        staff = staff_for_user(request.user) if request.user.is_authenticated else None
        request.staff = staff  # type: ignore[attr-defined]
        token = set_current_tenant(staff.tenant if staff is not None else None)
        # REMOTE_ADDR is the proxy's address behind a reverse proxy; SECURE_PROXY_SSL_HEADER's
        # setting also says X-Forwarded-For can be trusted.
        ip = request.META.get("REMOTE_ADDR")
        if settings.SECURE_PROXY_SSL_HEADER and request.META.get("HTTP_X_FORWARDED_FOR"):
            ip = request.META["HTTP_X_FORWARDED_FOR"].split(",")[0].strip()
        ip_token = set_client_ip(ip)
        try:
            return self.get_response(request)
        finally:
            reset_client_ip(ip_token)
            reset_current_tenant(token)
