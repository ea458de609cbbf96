"""Console pages: account assets (管理 → 账号资产, 盘号) and team performance (数据 → 团队业绩).
Thin: parse, call the services, render; services say what was wrong."""

from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action, can, restrict
from siyu.audit.services import audit_record
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput
from siyu.imports.exports import csv_bytes
from siyu.team import selectors, services
from siyu.team.models import AssetStage, InventoryRun


def _int(value: str | None, what: str) -> int:
    if value is None or not value.strip().isdigit():
        raise InvalidInput(_("请填写%(what)s") % {"what": what})
    return int(value)


@console_page(Action.ASSETS_VIEW)
def assets(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    stage = request.GET.get("stage", "")
    if stage not in AssetStage.values:
        stage = ""
    rows = selectors.asset_list(actor=staff, stage=stage)
    successors = restrict(
        StaffMember.objects.filter(status=StaffStatus.ACTIVE),
        staff,
        Action.ASSETS_VIEW,
        owner_field="id",
    ).order_by("name")
    return render(
        request,
        "team/assets.html",
        {
            "rows": rows,
            "stage": stage,
            "stages": AssetStage.choices,
            "successors": successors,
            "can_manage": can(staff, Action.ASSETS_MANAGE),
            "open_run": InventoryRun.objects.filter(closed_at__isnull=True).first(),
        },
    )


@require_POST
@console_page(Action.ASSETS_MANAGE)
def asset_action(request: HttpRequest, staff: StaffMember, asset_id: int) -> HttpResponse:
    op = request.POST.get("op", "")
    note = request.POST.get("note", "")
    if op == "stage":
        services.asset_stage_set(
            actor=staff, asset_id=asset_id, stage=request.POST.get("stage", ""), note=note
        )
        messages.success(request, _("账号阶段已更新"))
    elif op == "holder":
        services.asset_update(actor=staff, asset_id=asset_id, holder=request.POST.get("holder", ""))
        messages.success(request, _("持有人已更新"))
    elif op == "hand_back":
        jobs = services.asset_hand_back(
            actor=staff,
            asset_id=asset_id,
            successor_id=_int(request.POST.get("successor"), _("接替成员")),
            note=note,
        )
        messages.success(request, _("已还号，发起 %(n)s 个继承任务") % {"n": len(jobs)})
    else:
        raise InvalidInput(_("未知的操作"))
    return redirect(reverse("console:team_asset", args=[asset_id]))


@console_page(Action.ASSETS_VIEW)
def asset_detail(request: HttpRequest, staff: StaffMember, asset_id: int) -> HttpResponse:
    asset = selectors.asset_detail(actor=staff, asset_id=asset_id)
    successors = restrict(
        StaffMember.objects.filter(status=StaffStatus.ACTIVE).exclude(pk=asset.staff_id),
        staff,
        Action.ASSETS_VIEW,
        owner_field="id",
    ).order_by("name")
    return render(
        request,
        "team/asset.html",
        {
            "asset": asset,
            "logs": asset.logs.select_related("actor").order_by("-at")[:50],
            "days": list(asset.days.order_by("-day")[:30]),
            "moves": [(s, AssetStage(s).label) for s in sorted(services.STAGE_MOVES[asset.stage])],
            "successors": successors,
            "can_manage": can(staff, Action.ASSETS_MANAGE),
        },
    )


@console_page(Action.ASSETS_VIEW)
def inventory(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        op = request.POST.get("op", "")
        if op == "start":
            started = services.inventory_start(actor=staff, name=request.POST.get("name", ""))
            return redirect(f"{reverse('console:team_inventory')}?run={started.pk}")
        run_id = _int(request.POST.get("run"), _("盘号"))
        if op == "check":
            services.inventory_check(
                actor=staff,
                item_id=_int(request.POST.get("item"), _("盘点项")),
                holder_confirmed=request.POST.get("holder_confirmed") == "on",
                friends_counted=_int(request.POST.get("friends_counted"), _("好友数")),
                data_backed_up=request.POST.get("data_backed_up") == "on",
                note=request.POST.get("note", ""),
            )
        elif op == "close":
            services.inventory_close(actor=staff, run_id=run_id)
            messages.success(request, _("盘号已结束"))
        else:
            raise InvalidInput(_("未知的操作"))
        return redirect(f"{reverse('console:team_inventory')}?run={run_id}")
    runs = selectors.inventory_runs(actor=staff)
    wanted = request.GET.get("run", "")
    run = runs.filter(pk=int(wanted)).first() if wanted.isdigit() else runs.first()
    items = selectors.inventory_items(actor=staff, run_id=run.pk) if run else []
    return render(
        request,
        "team/inventory.html",
        {
            "runs": runs[:20],
            "run": run,
            "items": items,
            "can_manage": can(staff, Action.ASSETS_MANAGE),
            "default_name": _("%(month)s 盘号") % {"month": timezone.localdate().strftime("%Y-%m")},
        },
    )


def _period(request: HttpRequest) -> tuple[date, date]:
    try:
        start, end = (
            date.fromisoformat(request.GET[key]) if request.GET.get(key) else None
            for key in ("start", "end")
        )
    except ValueError:
        raise InvalidInput(_("请填写有效的日期")) from None
    return selectors.period_clean(start, end)


@console_page(Action.PERFORMANCE_VIEW)
def performance(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        if request.POST.get("op") == "targets":
            services.quality_targets_set(
                actor=staff,
                task_on_time_pct=_int(request.POST.get("task_on_time_pct"), _("任务准时率")),
                tagged_pct=_int(request.POST.get("tagged_pct"), _("打标签率")),
                moments_per_day=float(_int(request.POST.get("moments_per_day"), _("朋友圈"))),
            )
        else:
            tiers = []
            for line in request.POST.get("tiers", "").splitlines():
                if line.strip():
                    parts = line.replace("，", ",").split(",")
                    if len(parts) != 2:
                        raise InvalidInput(_("每行一档：起点（元）, 比例（%）"))
                    try:
                        tiers.append(
                            {
                                "from_fen": round(float(parts[0]) * 100),
                                "rate_bp": round(float(parts[1]) * 100),
                            }
                        )
                    except ValueError:
                        raise InvalidInput(_("每行一档：起点（元）, 比例（%）")) from None
            services.commission_scheme_set(
                actor=staff, name=request.POST.get("name", ""), tiers=tiers
            )
        messages.success(request, _("已保存"))
        return redirect(request.get_full_path())
    start, end = _period(request)
    begin, until = selectors.period_bounds(start, end)
    result = selectors.performance(actor=staff, start=begin, end=until)
    chart = {
        "names": [r.staff.name for r in result["members"]],
        "gmv": [r.gmv_fen / 100 for r in result["members"]],
        "commission": [r.commission_fen / 100 for r in result["members"]],
    }
    return render(
        request,
        "team/performance.html",
        {
            **result,
            "start": start,
            "end": end,
            "chart": chart,
            "can_manage": can(staff, Action.PERFORMANCE_MANAGE),
        },
    )


def _yuan(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


@console_page(Action.PERFORMANCE_VIEW)
def performance_export(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    start, end = _period(request)
    begin, until = selectors.period_bounds(start, end)
    result = selectors.performance(actor=staff, start=begin, end=until)
    rows: list[list[Any]] = [
        [_("成员"), _("评级"), _("GMV（元）"), _("订单"), _("退款（元）"), _("提成（元）")]
        + [_("新增"), _("流失"), _("任务"), _("准时"), _("新客已打标签"), _("朋友圈")]
    ]
    for r in result["members"]:
        rows.append(
            [r.staff.name, r.grade, _yuan(r.gmv_fen), r.orders, _yuan(r.refunds_fen)]
            + [_yuan(r.commission_fen), r.adds, r.deletes, r.tasks_due, r.tasks_on_time]
            + [r.new_customers_tagged, r.moments]
        )
    audit_record(
        actor=staff,
        action="team.performance_export",
        details={
            "start": start.isoformat(),
            "end": end.isoformat(),
            "rows": len(result["members"]),
        },
    )
    response = HttpResponse(csv_bytes(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="performance-{start}-{end}.csv"'
    return response
