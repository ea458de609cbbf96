"""API authenticators. Each resolves the acting staff member and sets the tenant context."""

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.services import api_token_authenticate
from siyu.core.tenancy import set_current_tenant


def _bind(request: HttpRequest, staff: StaffMember | None) -> StaffMember | None:
    if staff is None or staff.status != StaffStatus.ACTIVE:
        return None
    request.staff = staff  # type: ignore[attr-defined]
    # Reset at the end of the request by TenantMiddleware, which wraps every request.
    set_current_tenant(staff.tenant)
    return staff


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Any:
        return _bind(request, api_token_authenticate(token))


class StaffSessionAuth(SessionAuth):
    """The console's session, with Django's CSRF check (ninja's APIKeyCookie does it)."""

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        if not request.user.is_authenticated:
            return None
        return _bind(request, getattr(request, "staff", None))


def actor(request: HttpRequest) -> StaffMember:
    """The authenticated staff member of an API request (auth guarantees one)."""
    staff: StaffMember = request.staff  # type: ignore[attr-defined]
    return staff
