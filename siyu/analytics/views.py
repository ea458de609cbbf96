"""Console page 数据 → 渠道分析. Thin: parse the request, call one selector or service."""

from dataclasses import dataclass
from datetime import date, timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, can
from siyu.analytics import exports, selectors, services, sources
from siyu.analytics.api import download, kind_filter
from siyu.analytics.selectors import Report
from siyu.analytics.sources import SourceKey
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput

CHART_SOURCES = 10  # lines in the chart; the table lists every source


@dataclass(frozen=True)
class Filters:
    start: date
    end: date
    kind: str | None
    sources: list[SourceKey] | None


def _filters(params: QueryDict) -> Filters:
    """The page's filters from the query string; raises InvalidInput on a malformed one."""
    try:
        end = date.fromisoformat(str(params["end"])) if params.get("end") else None
        start = date.fromisoformat(str(params["start"])) if params.get("start") else None
    except ValueError:
        raise InvalidInput(_("日期格式应为 YYYY-MM-DD")) from None
    end = end or timezone.localdate()
    start = start or end - timedelta(days=29)
    kind = str(params.get("kind", ""))
    if kind not in {"", "-", *sources.kinds()}:
        raise InvalidInput(_("未知的来源类型"))
    try:
        picked = [sources.parse_source(text) for text in params.getlist("source")[:20]]
    except ValueError:
        raise InvalidInput(_("来源格式应为 类型:编号，例如 ch:42")) from None
    return Filters(start, end, kind_filter(kind), picked or None)


@console_page(Action.ANALYTICS_VIEW)
def channels_page(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    try:
        filters = _filters(request.GET)
    except InvalidInput as exc:
        messages.error(request, exc.message)
        filters = _filters(QueryDict())
    report = selectors.source_report(
        actor=staff,
        start=filters.start,
        end=filters.end,
        kind=filters.kind,
        sources=filters.sources,
    )
    can_spend = can(staff, Action.ANALYTICS_SPEND)
    context = {
        "report": report,
        "chart": _chart(report),
        "kinds": sources.kinds(),
        "kind": request.GET.get("kind", ""),
        "picked": request.GET.getlist("source"),
        "can_spend": can_spend,
        "spends": selectors.spend_list(actor=staff)[:50] if can_spend else [],
        "spend_kinds": {k: v for k, v in sources.kinds().items() if k},
        "query": request.GET.urlencode(),
    }
    return render(request, "analytics/channels.html", context)


def _chart(report: Report) -> dict[str, object]:
    rows = report.rows[:CHART_SOURCES]
    return {
        "days": [str(day) for day in report.days],
        "series": [
            {
                "name": row.label,
                "adds": [line.counts.adds for line in report.daily[row.source]],
                "net": [line.net_adds for line in report.daily[row.source]],
                "deletes": [line.counts.deletes for line in report.daily[row.source]],
            }
            for row in rows
        ],
    }


@console_page(Action.ANALYTICS_VIEW)
def channels_export(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    filters = _filters(request.GET)
    file = exports.report_export(
        actor=staff,
        start=filters.start,
        end=filters.end,
        kind=filters.kind,
        sources=filters.sources,
        file_format=str(request.GET.get("format", "csv")),
    )
    return download(file)


@require_POST
@console_page(Action.ANALYTICS_SPEND)
def spend_create(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    try:
        kind, source_id = sources.parse_source(request.POST.get("source", "").strip())
        start = date.fromisoformat(request.POST.get("start", ""))
        end = date.fromisoformat(request.POST.get("end", "") or request.POST.get("start", ""))
    except ValueError:
        raise InvalidInput(_("请填写来源（如 ch:42）和有效的日期")) from None
    services.spend_create(
        actor=staff,
        source_kind=kind,
        source_id=source_id,
        start=start,
        end=end,
        amount_fen=services.parse_yuan(request.POST.get("amount", "")),
        note=request.POST.get("note", "")[:200],
    )
    messages.success(request, _("已记录花费"))
    return redirect("console:analytics_channels")
