"""Console pages 数据 → 流失分析 / 流失预警 / 客户价值. Thin: parse, call a selector or service."""

from datetime import date
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput
from siyu.insights import selectors, services
from siyu.insights.api import period
from siyu.insights.models import ChurnDirection, KnownReason

PAGE_SIZE = 50


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise InvalidInput(_("日期格式应为 YYYY-MM-DD")) from None


@console_page(Action.INSIGHTS_VIEW)
def churn_page(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    try:
        start, end = period(_day(request.GET.get("start")), _day(request.GET.get("end")))
    except InvalidInput as exc:
        messages.error(request, exc.message)
        start, end = period(None, None)
    direction = request.GET.get("direction", "")
    if direction not in ChurnDirection.values:
        direction = ""
    report = selectors.loss_report(actor=staff, start=start, end=end)
    records = selectors.churn_records(
        actor=staff, start=start, end=end, direction=direction or None
    )
    page = Paginator(records, PAGE_SIZE).get_page(request.GET.get("page"))
    known = dict(KnownReason.choices)
    chart = {
        "staff": [row.label for row in report.by_staff[:15]],
        "by_customer": [row.by_customer for row in report.by_staff[:15]],
        "by_staff": [row.by_staff for row in report.by_staff[:15]],
        "reasons": [
            {"name": known.get(reason, reason) or _("未知"), "value": n}
            for reason, n in report.reasons.items()
        ],
    }
    context: dict[str, Any] = {
        "report": report,
        "start": start.date(),
        "end_day": date.fromordinal(end.date().toordinal() - 1),
        "direction": direction,
        "directions": ChurnDirection.choices,
        "page": page,
        "known": known,
        "chart": chart,
    }
    return render(request, "insights/churn.html", context)


@require_POST
@console_page(Action.INSIGHTS_VIEW)
def churn_reason(request: HttpRequest, staff: StaffMember, record_id: int) -> HttpResponse:
    services.churn_reason_set(
        actor=staff, record_id=record_id, reason=request.POST.get("reason", ""), source="console"
    )
    messages.success(request, _("已记录流失原因"))
    return redirect(request.headers.get("Referer") or "console:insights_churn")


@console_page(Action.INSIGHTS_VIEW)
def at_risk_page(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    page = Paginator(selectors.at_risk(actor=staff), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "model": selectors.value_model(), "threshold": services.AT_RISK_BELOW}
    return render(request, "insights/at_risk.html", context)


@console_page(Action.INSIGHTS_VIEW)
def value_page(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    summary = selectors.value_summary(actor=staff)
    chart = {
        "grid": [
            [f - 1, r - 1, summary.grid[r - 1][f - 1]] for r in range(1, 6) for f in range(1, 6)
        ],
        "segments": [{"name": name, "value": n} for name, n in summary.segments.items()],
        "clv_bins": [
            f"¥{low / 100:.0f}–{high / 100:.0f}" for low, high, _n in summary.clv_histogram
        ],
        "clv_counts": [n for _low, _high, n in summary.clv_histogram],
    }
    context = {"summary": summary, "chart": chart, "model": selectors.value_model()}
    return render(request, "insights/value.html", context)
