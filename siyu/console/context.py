from django.conf import settings
from django.http import HttpRequest

from siyu.console.nav import nav_for


def console(request: HttpRequest) -> dict[str, object]:
    staff = getattr(request, "staff", None)
    return {
        "staff": staff,
        "tenant": staff.tenant if staff is not None else None,
        "nav": nav_for(staff, request.path) if staff is not None else [],
        "demo_mode": settings.SIYU_DEMO,
    }
