"""Console pages of 运营 → SOP: the list, the editor (a simple list of step rows) and one
SOP's page with its funnel and pause / resume. Each calls one service or selector."""

import json
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput, SiyuError
from siyu.core.events import event_types
from siyu.sop import selectors, services
from siyu.sop.models import (
    ActionType,
    ElseAction,
    Reentry,
    Sop,
    SopKind,
    TriggerKind,
)

STEP_ROWS = 6  # the editor's rows; the API takes up to 20 steps of up to 5 actions each


def _number(value: str, what: str, default: int = 0) -> int:
    value = value.strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(_("%(field)s 须为整数") % {"field": what}) from None


def _json(value: str, what: str) -> dict[str, Any]:
    if not value.strip():
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        raise InvalidInput(_("%(field)s 须为 JSON 对象") % {"field": what}) from None
    if not isinstance(parsed, dict):
        raise InvalidInput(_("%(field)s 须为 JSON 对象") % {"field": what})
    return parsed


def _action(kind: str, text: str, body: str) -> dict[str, Any]:
    """One row's action from its two text boxes (what they mean depends on the type)."""
    if kind in (ActionType.TASK, ActionType.MASS_SEND):
        return {"type": kind, "config": {"title": text, "body": body}}
    if kind == ActionType.NOTIFY:
        return {"type": kind, "config": {"text": text}}
    if kind == ActionType.STAGE:
        return {"type": kind, "config": {"stage": text.strip()}}
    if kind in (ActionType.TAG_ADD, ActionType.TAG_REMOVE):
        ids = [_number(part, _("标签 ID")) for part in text.replace("，", ",").split(",") if part]
        return {"type": kind, "config": {"tag_ids": ids}}
    return {"type": kind, "config": {"data": _json(body, _("Webhook 数据"))}}


def _fields(post: QueryDict) -> dict[str, Any]:
    trigger_kind = post.get("trigger_kind", "")
    trigger: dict[str, Any] = {}
    if trigger_kind == TriggerKind.EVENT:
        trigger = {
            "event_type": post.get("event_type", ""),
            "conditions": _json(post.get("conditions", ""), _("事件条件")),
        }
    elif trigger_kind in (TriggerKind.ADDED_DAYS, TriggerKind.SILENCE):
        trigger = {"days": _number(post.get("days", ""), _("天数"))}
    elif trigger_kind == TriggerKind.DATE:
        trigger = {"at": post.get("at", "")}
    elif trigger_kind == TriggerKind.WEEKLY:
        trigger = {
            "weekday": _number(post.get("weekday", ""), _("星期")),
            "time": post.get("time", ""),
        }
    steps = []
    for row in range(1, STEP_ROWS + 1):
        kind, condition = post.get(f"s{row}-type", ""), post.get(f"s{row}-condition", "").strip()
        if not kind and not condition:
            continue
        else_action = post.get(f"s{row}-else", ElseAction.SKIP)
        steps.append(
            {
                "delay_minutes": _number(post.get(f"s{row}-delay", ""), _("延迟")),
                "condition": condition,
                "else_action": else_action,
                "else_goto": _number(post.get(f"s{row}-goto", ""), _("跳转步骤"))
                if else_action == ElseAction.GOTO
                else None,
                "actions": [
                    _action(kind, post.get(f"s{row}-text", ""), post.get(f"s{row}-body", ""))
                ]
                if kind
                else [],
            }
        )
    return {
        "name": post.get("name", ""),
        "kind": post.get("kind", SopKind.CUSTOMER),
        "trigger_kind": trigger_kind,
        "trigger": trigger,
        "audience": post.get("audience", ""),
        "goal_event": post.get("goal_event", ""),
        "reentry": post.get("reentry", Reentry.ONCE),
        "reentry_interval_hours": _number(post.get("reentry_interval_hours", ""), _("间隔")),
        "steps": steps,
    }


def _rows(sop: Sop | None) -> list[dict[str, Any]]:
    """The editor's rows for an existing SOP (its first action per step) plus empty ones."""
    rows: list[dict[str, Any]] = []
    for step in sop.steps.prefetch_related("actions") if sop else []:
        action = step.actions.first()
        config = action.config if action else {}
        text = action.summary if action else ""
        body = config.get("body", "")
        if action is not None and action.type == ActionType.WEBHOOK:
            body = json.dumps(config.get("data", {}), ensure_ascii=False)
        rows.append(
            {
                "delay": step.delay_minutes,
                "condition": step.condition,
                "else": step.else_action,
                "goto": step.else_goto or "",
                "type": action.type if action else "",
                "text": text,
                "body": body,
            }
        )
    rows += [{"else": ElseAction.SKIP}] * (STEP_ROWS - len(rows))
    return [{"n": n, **row} for n, row in enumerate(rows[:STEP_ROWS], start=1)]


def _posted_rows(post: QueryDict) -> list[dict[str, Any]]:
    keys = ("delay", "condition", "else", "goto", "type", "text", "body")
    return [
        {"n": n, **{key: post.get(f"s{n}-{key}", "") for key in keys}}
        for n in range(1, STEP_ROWS + 1)
    ]


def _editor(
    request: HttpRequest, sop: Sop | None, error: str = "", status: int = 200
) -> HttpResponse:
    posted = request.method == "POST"
    return render(
        request,
        "sop/form.html",
        {
            "sop": sop,
            "values": request.POST if posted else None,
            "rows": _posted_rows(request.POST) if posted else _rows(sop),
            "error": error,
            "event_types": event_types(),
            "kinds": SopKind.choices,
            "trigger_kinds": TriggerKind.choices,
            "action_types": ActionType.choices,
            "else_actions": ElseAction.choices,
            "reentries": Reentry.choices,
            "weekdays": [
                _("周一"),
                _("周二"),
                _("周三"),
                _("周四"),
                _("周五"),
                _("周六"),
                _("周日"),
            ],
        },
        status=status,
    )


@console_page(Action.SOP_MANAGE)
def sop_list(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    return render(request, "sop/list.html", {"sops": selectors.sop_list(actor=staff)})


@console_page(Action.SOP_MANAGE)
def sop_new(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method != "POST":
        return _editor(request, None)
    try:
        sop = services.sop_create(actor=staff, **_fields(request.POST))
    except SiyuError as exc:
        # The form comes back filled in with the reason; nothing was saved.
        return _editor(request, None, exc.message, status=400)
    messages.success(request, _("已保存为草稿"))
    return redirect("console:sop", sop_id=sop.pk)


@console_page(Action.SOP_MANAGE)
def sop_edit(request: HttpRequest, staff: StaffMember, sop_id: int) -> HttpResponse:
    sop = selectors.sop_get(actor=staff, sop_id=sop_id)
    if request.method != "POST":
        return _editor(request, sop)
    try:
        services.sop_update(actor=staff, sop_id=sop_id, **_fields(request.POST))
    except SiyuError as exc:
        return _editor(request, sop, exc.message, status=400)
    messages.success(request, _("已保存"))
    return redirect("console:sop", sop_id=sop_id)


@console_page(Action.SOP_MANAGE)
def sop_detail(request: HttpRequest, staff: StaffMember, sop_id: int) -> HttpResponse:
    if request.method == "POST":
        op = request.POST.get("op", "")
        if op == "activate":
            services.sop_activate(actor=staff, sop_id=sop_id)
        elif op in ("pause", "resume"):
            services.sop_set_paused(actor=staff, sop_id=sop_id, paused=op == "pause")
        else:
            raise InvalidInput(_("未知操作"))
        messages.success(request, _("已更新"))
        return redirect("console:sop", sop_id=sop_id)
    sop = selectors.sop_get(actor=staff, sop_id=sop_id)
    funnel = selectors.sop_funnel(sop=sop)
    chart = {
        "labels": [_("进入")]
        + [_("第 %(n)s 步") % {"n": step["order"]} for step in funnel["steps"]]
        + [_("达成目标")],
        "values": [funnel["enrolled"]]
        + [step["reached"] for step in funnel["steps"]]
        + [funnel["converted"]],
    }
    return render(
        request,
        "sop/detail.html",
        {
            "sop": sop,
            "funnel": funnel,
            "chart": chart,
            "audience_count": selectors.sop_audience_count(sop=sop),
            "now": timezone.now(),
        },
    )
