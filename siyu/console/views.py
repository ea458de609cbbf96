"""Console pages. Thin: parse the request, call one service or selector, render."""

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.accounts import selectors as org_selectors
from siyu.accounts import services as org_services
from siyu.accounts.models import DataScope, Role, StaffMember
from siyu.accounts.permissions import Action, can, effective_scope
from siyu.audit.selectors import audit_list
from siyu.console.decorators import console_page
from siyu.core.events import event_types
from siyu.core.services import event_delivery_retry
from siyu.system import selectors as system_selectors
from siyu.webhooks import selectors as webhook_selectors
from siyu.webhooks import services as webhook_services
from siyu.wecom import services as wecom_services

PAGE_SIZE = 50


def _page(request: HttpRequest, queryset: object) -> object:
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))  # type: ignore[arg-type]


class LoginView(auth_views.LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True


@console_page(Action.WORKSPACE_USE)
def home(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    context: dict[str, object] = {
        "staff_count": org_selectors.staff_list(actor=staff).count(),
        "scope": effective_scope(staff),
    }
    if can(staff, Action.EVENTS_VIEW):
        context["health"] = system_selectors.event_health(actor=staff)
    return render(request, "console/home.html", context)


@console_page(Action.ORG_VIEW)
def org(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    query = request.GET.get("q", "")[:64]
    dept = request.GET.get("department")
    department_id = int(dept) if dept and dept.isdigit() else None
    members = org_selectors.staff_list(actor=staff, query=query, department_id=department_id)
    return render(
        request,
        "console/org.html",
        {
            "page": _page(request, members.prefetch_related("departments")),
            "departments": org_selectors.department_list(actor=staff),
            "query": query,
            "department_id": department_id,
            "roles": Role.choices,
            "scopes": DataScope.choices,
            "can_manage": can(staff, Action.ORG_MANAGE),
        },
    )


@require_POST
@console_page(Action.ORG_MANAGE)
def org_permissions(request: HttpRequest, staff: StaffMember, member_id: int) -> HttpResponse:
    member = org_services.staff_set_role(
        actor=staff,
        member_id=member_id,
        role=request.POST.get("role", ""),
        data_scope=request.POST.get("data_scope", ""),
    )
    messages.success(request, _("已更新 %(name)s 的权限") % {"name": member.name})
    return redirect("console:org")


@console_page(Action.SETTINGS_MANAGE)
def wecom(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    check = None
    if request.method == "POST":
        if request.POST.get("action") == "check":
            check = wecom_services.wecom_connection_check(actor=staff)
        else:
            changes = {
                field: request.POST[field].strip()
                for field in (
                    "corp_id",
                    "agent_id",
                    "wecom_base_url",
                    "contact_secret",
                    "app_secret",
                    "wechat_appid",
                    "wechat_secret",
                    "wechat_oauth_url",
                    "wechat_api_base_url",
                )
                if request.POST.get(field, "").strip()
            }
            wecom_services.wecom_settings_update(actor=staff, **changes)
            messages.success(request, _("已保存"))
            return redirect("console:wecom")
    return render(
        request,
        "console/wecom.html",
        {"settings": wecom_services.wecom_settings(actor=staff), "check": check},
    )


@console_page(Action.AUDIT_VIEW)
def audit(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    action = request.GET.get("action", "")[:64]
    entries = audit_list(actor=staff, action=action)
    return render(
        request, "console/audit.html", {"page": _page(request, entries), "action": action}
    )


@console_page(Action.EVENTS_VIEW)
def events(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    return render(
        request,
        "console/events.html",
        {
            "health": system_selectors.event_health(actor=staff),
            "page": _page(request, system_selectors.delivery_list(actor=staff, status="dead")),
            "recent": system_selectors.event_list(actor=staff)[:20],
            "can_retry": can(staff, Action.EVENTS_RETRY),
        },
    )


@require_POST
@console_page(Action.EVENTS_RETRY)
def events_retry(request: HttpRequest, staff: StaffMember, delivery_id: int) -> HttpResponse:
    event_delivery_retry(delivery_id=delivery_id)
    messages.success(request, _("已重新排队"))
    return redirect("console:events")


@console_page(Action.WEBHOOKS_MANAGE)
def webhooks(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        endpoint = webhook_services.webhook_endpoint_create(
            actor=staff,
            url=request.POST.get("url", ""),
            event_types=request.POST.getlist("event_types"),
            description=request.POST.get("description", ""),
        )
        messages.success(
            request,
            _("已创建。签名密钥只显示这一次：%(secret)s") % {"secret": endpoint.secret},
        )
        return redirect("console:webhooks")
    return render(
        request,
        "console/webhooks.html",
        {
            "endpoints": webhook_selectors.webhook_endpoint_list(actor=staff),
            "deliveries": webhook_selectors.webhook_delivery_list(actor=staff)[:50],
            "event_types": [t for t in event_types() if t.webhook],
        },
    )


@require_POST
@console_page(Action.WEBHOOKS_MANAGE)
def webhook_toggle(request: HttpRequest, staff: StaffMember, endpoint_id: int) -> HttpResponse:
    webhook_services.webhook_endpoint_update(
        actor=staff, endpoint_id=endpoint_id, is_active=request.POST.get("active") == "1"
    )
    return redirect("console:webhooks")


@require_POST
@console_page(Action.WEBHOOKS_MANAGE)
def webhook_delete(request: HttpRequest, staff: StaffMember, endpoint_id: int) -> HttpResponse:
    webhook_services.webhook_endpoint_delete(actor=staff, endpoint_id=endpoint_id)
    messages.success(request, _("已删除"))
    return redirect("console:webhooks")


@console_page(Action.TOKENS_MANAGE)
def tokens(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    created = None
    if request.method == "POST":
        created = org_services.api_token_create(actor=staff, name=request.POST.get("name", ""))
    return render(
        request,
        "console/tokens.html",
        {"tokens": org_selectors.api_token_list(actor=staff), "created": created},
    )


@require_POST
@console_page(Action.TOKENS_MANAGE)
def token_revoke(request: HttpRequest, staff: StaffMember, token_id: int) -> HttpResponse:
    org_services.api_token_revoke(actor=staff, token_id=token_id)
    messages.success(request, _("令牌已吊销"))
    return redirect("console:tokens")
