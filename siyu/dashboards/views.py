"""Console pages 数据 → 经营看板 and 目标. Thin: parse the request, call selectors or services."""

from datetime import date

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.accounts.models import Department, StaffMember
from siyu.accounts.permissions import Action, can, restrict
from siyu.analytics import sources
from siyu.analytics.api import download
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput
from siyu.dashboards import exports, goals, selectors, services
from siyu.dashboards.api import panel_out
from siyu.dashboards.metrics import METRICS
from siyu.dashboards.models import PdcaPhase, TargetKind
from siyu.dashboards.selectors import Filters


def _filters(params: QueryDict) -> Filters:
    return selectors.parse_filters(
        start=params.get("start"),
        end=params.get("end"),
        department=params.get("department"),
        channel=params.get("channel"),
    )


@console_page(Action.DASHBOARD_VIEW)
def dashboard_page(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    """The dashboard of the member's role, in their data scope."""
    try:
        filters = _filters(request.GET)
    except InvalidInput as exc:
        messages.error(request, exc.message)
        filters = _filters(QueryDict())
    kind = selectors.dashboard_kind(staff)
    grain = "month" if request.GET.get("grain") == "month" else "week"
    found = [
        selectors.panel(staff, key, filters, grain=grain) for key in selectors.ROLE_PANELS[kind]
    ]
    # The charts read the raw rows; the tables show them as people read them (yuan, %).
    panels = [{**panel_out(p), "shown_rows": p.shown_rows} for p in found]
    context = {
        "kind": kind,
        "panels": panels,
        "filters": filters,
        "grain": grain,
        "channel": request.GET.get("channel", ""),
        "departments": Department.objects.all() if kind != "staff" else [],
        "kinds": sources.kinds(),
        "goals": [goals.goal_status(g) for g in goals.goal_list(actor=staff)[:20]]
        if kind != "staff"
        else [],
        "query": request.GET.urlencode(),
    }
    return render(request, "dashboards/dashboard.html", context)


@console_page(Action.DASHBOARD_VIEW)
def dashboard_export(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    key = str(request.GET.get("panel", ""))
    file = exports.panel_export(
        actor=staff,
        key=key,
        filters=_filters(request.GET),
        file_format=str(request.GET.get("format", "csv")),
        grain=str(request.GET.get("grain", "")),
    )
    return download(file)


@console_page(Action.DASHBOARD_VIEW)
def goals_page(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    can_manage = can(staff, Action.GOALS_MANAGE)
    context = {
        "goals": [goals.goal_status(g) for g in goals.goal_list(actor=staff)[:100]],
        "can_manage": can_manage,
        "metrics": METRICS,
        "target_kinds": TargetKind.choices,
        "phases": PdcaPhase.choices,
        "departments": Department.objects.all() if can_manage else [],
        "owners": restrict(StaffMember.objects.all(), staff, Action.ORG_VIEW, owner_field="id")
        if can_manage
        else [],
    }
    return render(request, "dashboards/goals.html", context)


@require_POST
@console_page(Action.GOALS_MANAGE)
def goal_create(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    post = request.POST
    try:
        start = date.fromisoformat(post.get("start", ""))
        deadline = date.fromisoformat(post.get("deadline", ""))
        target_value = float(post.get("target_value", ""))
        owner_id = int(post.get("owner", ""))
        department_id = int(post["department"]) if post.get("department") else None
        window_days = int(post.get("window_days") or 30)
    except ValueError:
        raise InvalidInput(_("请填写有效的日期、目标值和负责人")) from None
    services.goal_create(
        actor=staff,
        name=post.get("name", ""),
        metric=post.get("metric", ""),
        target_kind=post.get("target_kind", ""),
        target_value=target_value,
        start=start,
        deadline=deadline,
        owner_id=owner_id,
        department_id=department_id,
        window_days=window_days,
    )
    messages.success(request, _("已创建目标"))
    return redirect("console:goals")


@require_POST
@console_page(Action.DASHBOARD_VIEW)
def goal_log(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    goal_id = request.POST.get("goal", "")
    if not goal_id.isdigit():
        raise InvalidInput(_("目标不存在"))
    goal = goals.goal_get(actor=staff, goal_id=int(goal_id))
    services.goal_log_add(
        actor=staff,
        goal=goal,
        phase=request.POST.get("phase", ""),
        note=request.POST.get("note", ""),
    )
    messages.success(request, _("已记录"))
    return redirect("console:goals")
