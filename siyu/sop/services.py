"""Writing SOP definitions: validated create / update, activate, pause, resume.

Everything that could make a journey misbehave is refused here with a clear error, before a
single customer is enrolled: unknown event types, tags or stages, segment expressions that do
not bind, schedules in the past, branches that jump backwards (a cycle in the step graph) and
SOPs whose own actions would re-trigger them with no re-entry limit (an endless loop).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, time, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, require
from siyu.audit.services import audit_record
from siyu.content.models import ContentItem
from siyu.core.errors import Conflict, InvalidInput, NotFound
from siyu.core.events import get_event_type
from siyu.core.models import Event
from siyu.customers.lifecycle import stage_order
from siyu.segments.compiler import bind
from siyu.sop import events
from siyu.sop.models import (
    ActionType,
    ElseAction,
    Enrollment,
    Reentry,
    Sop,
    SopAction,
    SopKind,
    SopStatus,
    SopStep,
    TriggerKind,
)
from siyu.tags.models import Tag

NAME_MAX = 64
STEPS_MAX = 20
ACTIONS_MAX = 5
DELAY_MAX_MINUTES = 366 * 24 * 60
ADDED_DAYS_MAX = 3650
SILENCE_DAYS_MAX = 365
INTERVAL_MAX_HOURS = 366 * 24
CONDITIONS_MAX = 5
WEBHOOK_DATA_MAX = 2000
_CONDITION_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_TASK_LIKE = {ActionType.TASK, ActionType.MASS_SEND}
_CUSTOMER_ONLY_ACTIONS = {ActionType.TAG_ADD, ActionType.TAG_REMOVE, ActionType.STAGE}
_GROUP_TRIGGERS = {TriggerKind.DATE, TriggerKind.WEEKLY}


# --- validation ------------------------------------------------------------------------------


def _int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(
            _("%(what)s 须为 %(low)s 到 %(high)s 之间的整数")
            % {"what": what, "low": low, "high": high}
        )
    return value


def _text(value: object, what: str, high: int, *, required: bool = True) -> str:
    text = str(value or "").strip()
    if (required and not text) or len(text) > high:
        raise InvalidInput(_("%(what)s 须为 1–%(high)s 个字符") % {"what": what, "high": high})
    return text


def _event_type(name: object) -> str:
    try:
        return get_event_type(str(name)).name
    except ValueError:
        raise InvalidInput(_("未知的事件类型：%(type)s") % {"type": name}) from None


def _conditions(conditions: object) -> dict[str, str | int | bool]:
    if conditions is None:
        return {}
    if not isinstance(conditions, dict) or len(conditions) > CONDITIONS_MAX:
        raise InvalidInput(_("事件条件须为最多 %(max)s 个“字段=值”") % {"max": CONDITIONS_MAX})
    clean: dict[str, str | int | bool] = {}
    for key, value in conditions.items():
        if not isinstance(key, str) or not _CONDITION_KEY.match(key):
            raise InvalidInput(_("条件字段名无效：%(key)s") % {"key": key})
        if not isinstance(value, str | int | bool) or (isinstance(value, str) and len(value) > 200):
            raise InvalidInput(
                _("条件值须为文本（最多 200 字）、整数或布尔值：%(key)s") % {"key": key}
            )
        clean[key] = value
    return clean


def local_datetime(value: object) -> datetime:
    """An ISO datetime from outside; a naive one is read in the server's time zone."""
    parsed = parse_datetime(str(value)) if value else None
    if parsed is None:
        raise InvalidInput(_("时间格式无效，应为 2026-12-01T09:00"))
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def _trigger(kind: str, trigger_kind: str, trigger: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The clean trigger definition and the event type it listens to ("" for time triggers)."""
    if trigger_kind not in TriggerKind.values:
        raise InvalidInput(_("未知的触发方式：%(kind)s") % {"kind": trigger_kind})
    if kind == SopKind.GROUP and trigger_kind not in _GROUP_TRIGGERS:
        raise InvalidInput(_("群 SOP 只能按指定时间或每周触发"))
    if not isinstance(trigger, dict):
        raise InvalidInput(_("触发条件格式无效"))
    if trigger_kind == TriggerKind.EVENT:
        event = _event_type(trigger.get("event_type"))
        return event, {"event_type": event, "conditions": _conditions(trigger.get("conditions"))}
    if trigger_kind == TriggerKind.ADDED_DAYS:
        return "", {"days": _int(trigger.get("days"), _("天数"), 1, ADDED_DAYS_MAX)}
    if trigger_kind == TriggerKind.SILENCE:
        return "", {"days": _int(trigger.get("days"), _("沉默天数"), 1, SILENCE_DAYS_MAX)}
    if trigger_kind == TriggerKind.DATE:
        return "", {"at": local_datetime(trigger.get("at")).isoformat()}
    weekday = _int(trigger.get("weekday"), _("星期"), 0, 6)
    at = str(trigger.get("time", ""))
    if not _TIME.match(at):
        raise InvalidInput(_("时间须写成 HH:MM"))
    return "", {"weekday": weekday, "time": at}


def _segment(expression: object, kind: str, what: str) -> str:
    text = str(expression or "").strip()
    if not text:
        return ""
    if kind == SopKind.GROUP:
        raise InvalidInput(_("群 SOP 不支持%(what)s") % {"what": what})
    bind(text)  # raises SegmentError (an InvalidInput) with the position of the problem
    return text


def _action(kind: str, raw: object) -> tuple[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise InvalidInput(_("动作格式无效"))
    action_type = str(raw.get("type", ""))
    if action_type not in ActionType.values:
        raise InvalidInput(_("未知的动作类型：%(type)s") % {"type": action_type})
    config = raw.get("config") or {}
    if not isinstance(config, dict):
        raise InvalidInput(_("动作配置格式无效"))
    if kind == SopKind.GROUP and action_type in _CUSTOMER_ONLY_ACTIONS:
        raise InvalidInput(_("群 SOP 不能打标签或变更阶段"))
    if action_type in _TASK_LIKE:
        clean: dict[str, Any] = {
            "title": _text(config.get("title"), _("任务标题"), 200),
            "body": _text(config.get("body"), _("发送内容"), 2000, required=False),
            "due_hours": _int(config.get("due_hours", 24), _("完成时限（小时）"), 1, 720),
        }
        item = config.get("content_item_id")
        if item not in (None, ""):
            item_id = _int(item, _("内容"), 1, 2**62)
            if not ContentItem.objects.filter(pk=item_id).exists():
                raise NotFound(_("内容不存在"))
            clean["content_item_id"] = item_id
        return action_type, clean
    if action_type in (ActionType.TAG_ADD, ActionType.TAG_REMOVE):
        ids = config.get("tag_ids")
        if not isinstance(ids, list) or not ids or len(ids) > 20:
            raise InvalidInput(_("请选择 1–20 个标签"))
        tag_ids = sorted({_int(i, _("标签"), 1, 2**62) for i in ids})
        if Tag.objects.filter(pk__in=tag_ids).count() != len(tag_ids):
            raise NotFound(_("标签不存在"))
        return action_type, {"tag_ids": tag_ids}
    if action_type == ActionType.STAGE:
        stage = str(config.get("stage", ""))
        if stage not in stage_order():
            raise InvalidInput(_("未知的生命周期阶段：%(stage)s") % {"stage": stage})
        return action_type, {"stage": stage}
    if action_type == ActionType.NOTIFY:
        return action_type, {"text": _text(config.get("text"), _("提醒内容"), 500)}
    data = config.get("data") or {}
    if not isinstance(data, dict) or len(json.dumps(data, ensure_ascii=False)) > WEBHOOK_DATA_MAX:
        raise InvalidInput(_("Webhook 数据须为 JSON 对象，最多 2000 字符"))
    return action_type, {"data": data}


def _steps(kind: str, steps: object) -> list[dict[str, Any]]:
    if not isinstance(steps, list) or not 1 <= len(steps) <= STEPS_MAX:
        raise InvalidInput(_("SOP 须有 1–%(max)s 个步骤") % {"max": STEPS_MAX})
    clean = []
    for order, raw in enumerate(steps, start=1):
        if not isinstance(raw, dict):
            raise InvalidInput(_("步骤格式无效"))
        step: dict[str, Any] = {
            "order": order,
            "delay_minutes": _int(
                raw.get("delay_minutes", 0), _("延迟（分钟）"), 0, DELAY_MAX_MINUTES
            ),
            "condition": _segment(raw.get("condition"), kind, _("步骤条件")),
            "else_action": str(raw.get("else_action") or ElseAction.SKIP),
            "else_goto": None,
        }
        if step["else_action"] not in ElseAction.values:
            raise InvalidInput(_("未知的分支方式：%(v)s") % {"v": step["else_action"]})
        if step["else_action"] == ElseAction.GOTO:
            target = raw.get("else_goto")
            # Forward jumps only: the step graph stays acyclic, so every enrolment ends.
            if isinstance(target, bool) or not isinstance(target, int) or target <= order:
                raise InvalidInput(
                    _("第 %(n)s 步只能跳到后面的步骤（向前跳转会形成循环）") % {"n": order}
                )
            if target > len(steps):
                raise InvalidInput(_("第 %(n)s 步跳转的目标步骤不存在") % {"n": order})
            step["else_goto"] = target
        actions = raw.get("actions") or []
        if not isinstance(actions, list) or len(actions) > ACTIONS_MAX:
            raise InvalidInput(_("每个步骤最多 %(max)s 个动作") % {"max": ACTIONS_MAX})
        step["actions"] = [_action(kind, action) for action in actions]
        if sum(1 for action_type, _c in step["actions"] if action_type in _TASK_LIKE) > 1:
            raise InvalidInput(_("每个步骤最多一个员工任务或群发任务"))
        clean.append(step)
    return clean


def _definition(fields: dict[str, Any]) -> dict[str, Any]:
    kind = str(fields.get("kind") or SopKind.CUSTOMER)
    if kind not in SopKind.values:
        raise InvalidInput(_("未知的 SOP 类型：%(kind)s") % {"kind": kind})
    trigger_event, trigger = _trigger(
        kind, str(fields.get("trigger_kind", "")), fields.get("trigger") or {}
    )
    reentry = str(fields.get("reentry") or Reentry.ONCE)
    if reentry not in Reentry.values:
        raise InvalidInput(_("未知的再次进入规则：%(v)s") % {"v": reentry})
    interval = _int(
        fields.get("reentry_interval_hours", 0), _("再次进入间隔（小时）"), 0, INTERVAL_MAX_HOURS
    )
    if fields.get("trigger_kind") == TriggerKind.WEEKLY and reentry == Reentry.ONCE:
        raise InvalidInput(_("每周触发的 SOP 每周都会再次进入，请选择“完成后可再次进入”"))
    goal = str(fields.get("goal_event") or "")
    if goal:
        if kind == SopKind.GROUP:
            raise InvalidInput(_("群 SOP 不支持目标事件"))
        goal = _event_type(goal)
    return {
        "name": _text(fields.get("name"), _("名称"), NAME_MAX),
        "kind": kind,
        "trigger_kind": fields["trigger_kind"],
        "trigger_event": trigger_event,
        "trigger": trigger,
        "audience": _segment(fields.get("audience"), kind, _("目标人群")),
        "goal_event": goal,
        "reentry": reentry,
        "reentry_interval_hours": interval if reentry == Reentry.AFTER_COMPLETION else 0,
        "steps": _steps(kind, fields.get("steps")),
    }


# --- loops between SOPs ----------------------------------------------------------------------


def _produces(sop: Sop, actions: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict]]:
    """The events running ``sop`` can write, with the payload facts known in advance."""
    out: list[tuple[str, dict[str, Any]]] = [
        (events.SOP_ENROLLED, {"sop_id": sop.pk}),
        (events.SOP_STEP_REACHED, {"sop_id": sop.pk}),
    ]
    if sop.goal_event:
        out.append((events.SOP_CONVERTED, {"sop_id": sop.pk}))
    for action_type, config in actions:
        if action_type == ActionType.TAG_ADD:
            out.append(("customer.tags_changed", {"added_ids": config["tag_ids"]}))
        elif action_type == ActionType.TAG_REMOVE:
            out.append(("customer.tags_changed", {"removed_ids": config["tag_ids"]}))
        elif action_type == ActionType.STAGE:
            out.append(("customer.stage_changed", {"to": config["stage"]}))
        elif action_type == ActionType.WEBHOOK:
            out.append((events.SOP_WEBHOOK, {"sop_id": sop.pk}))
    return out


def _may_trigger(produced: tuple[str, dict[str, Any]], sop: Sop) -> bool:
    """Could the produced event enrol into ``sop``? Unknown payload keys count as a match."""
    event_type, facts = produced
    if sop.trigger_kind != TriggerKind.EVENT or sop.trigger_event != event_type:
        return False
    for key, wanted in sop.trigger.get("conditions", {}).items():
        if key not in facts:
            continue
        known = facts[key]
        if (wanted not in known) if isinstance(known, list) else (known != wanted):
            return False
    return True


def _unlimited(sop: Sop) -> bool:
    return sop.reentry == Reentry.AFTER_COMPLETION and sop.reentry_interval_hours == 0


def _check_loops(sop: Sop) -> None:
    """Refuse ``sop`` if it sits on a cycle of SOPs (itself included) that re-enrol with no
    limit: each would re-trigger the next for ever. "Once" or a minimum interval breaks it."""
    if not _unlimited(sop):
        return
    others = [s for s in Sop.objects.filter(status=SopStatus.ACTIVE).exclude(pk=sop.pk)]
    nodes = [sop] + [s for s in others if _unlimited(s)]
    produced = {
        node.pk: _produces(
            node,
            [(a.type, a.config) for a in SopAction.objects.filter(step__sop=node)],
        )
        for node in nodes
    }
    seen: set[int] = set()
    stack = [sop]
    while stack:
        node = stack.pop()
        for target in nodes:
            if any(_may_trigger(item, target) for item in produced[node.pk]):
                if target.pk == sop.pk:
                    raise InvalidInput(
                        _(
                            "SOP 的动作会再次触发它自己（经由“%(via)s”），会无限循环；"
                            "请把再次进入规则设为“只进入一次”或设置最小间隔"
                        )
                        % {"via": node.name}
                    )
                if target.pk not in seen:
                    seen.add(target.pk)
                    stack.append(target)


# --- writes ----------------------------------------------------------------------------------


def _save_steps(sop: Sop, steps: list[dict[str, Any]]) -> None:
    SopStep.objects.filter(sop=sop).delete()
    for raw in steps:
        step = SopStep.objects.create(
            sop=sop,
            order=raw["order"],
            delay_minutes=raw["delay_minutes"],
            condition=raw["condition"],
            else_action=raw["else_action"],
            else_goto=raw["else_goto"],
        )
        SopAction.objects.bulk_create(
            SopAction(tenant=sop.tenant, step=step, order=i, type=t, config=c)
            for i, (t, c) in enumerate(raw["actions"])
        )


def sop_create(*, actor: StaffMember, **fields: Any) -> Sop:
    """Create a draft SOP. ``fields``: name, kind, trigger_kind, trigger, audience, goal_event,
    reentry, reentry_interval_hours, steps ([{delay_minutes, condition, else_action,
    else_goto, actions: [{type, config}]}])."""
    require(actor, Action.SOP_MANAGE)
    clean = _definition(fields)
    steps = clean.pop("steps")
    with transaction.atomic():
        sop = Sop.objects.create(created_by=actor, **clean)
        _save_steps(sop, steps)
        audit_record(actor=actor, action="sop.create", target=sop, details={"name": sop.name})
    return sop


def _get(sop_id: int, *, lock: bool = False) -> Sop:
    rows = Sop.objects.select_for_update() if lock else Sop.objects.all()
    sop = rows.filter(pk=sop_id).first()
    if sop is None:
        raise NotFound(_("SOP 不存在"))
    return sop


def sop_update(*, actor: StaffMember, sop_id: int, **fields: Any) -> Sop:
    """Replace the definition. Once anyone has been enrolled the trigger and steps are frozen
    (enrolments point at the steps): only the name, audience and goal may change."""
    require(actor, Action.SOP_MANAGE)
    with transaction.atomic():
        sop = _get(sop_id, lock=True)
        clean = _definition(fields)
        steps = clean.pop("steps")
        if Enrollment.objects.filter(sop=sop).exists():
            frozen = ("kind", "trigger_kind", "trigger_event", "trigger")
            if any(getattr(sop, f) != clean[f] for f in frozen) or _step_shape(sop) != steps:
                raise Conflict(_("已有客户进入此 SOP，触发方式和步骤不能再修改；请新建一个 SOP"))
        for field, value in clean.items():
            setattr(sop, field, value)
        sop.save()
        if not Enrollment.objects.filter(sop=sop).exists():
            _save_steps(sop, steps)
        if sop.status == SopStatus.ACTIVE:
            _check_loops(sop)  # after the save: it reads the new actions
        audit_record(actor=actor, action="sop.update", target=sop, details={"name": sop.name})
    return sop


def _step_shape(sop: Sop) -> list[dict[str, Any]]:
    return [
        {
            "order": step.order,
            "delay_minutes": step.delay_minutes,
            "condition": step.condition,
            "else_action": step.else_action,
            "else_goto": step.else_goto,
            "actions": [(a.type, a.config) for a in step.actions.all()],
        }
        for step in sop.steps.prefetch_related("actions")
    ]


def _start_cursor(sop: Sop, now: datetime) -> None:
    """Where a time trigger starts on first activation: from now on, never the past."""
    days = sop.trigger.get("days", 0)
    if sop.trigger_kind == TriggerKind.ADDED_DAYS:
        # Customers whose N-th day comes after activation.
        sop.cursor_at, sop.cursor_id = now - timedelta(days=days), 0
    elif sop.trigger_kind == TriggerKind.SILENCE:
        # Customers whose last activity is after (now − N days), so they fall silent from now.
        last = (
            Event.objects.filter(recorded_at__lte=now - timedelta(days=days))
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
        sop.cursor_id = last or 0
    elif sop.trigger_kind == TriggerKind.WEEKLY:
        # The cycle already begun is not run: the first run is the next occurrence.
        sop.cycle_key, sop.cycle_done = weekly_cycle(sop.trigger, now), True


def weekly_cycle(trigger: dict[str, Any], now: datetime) -> str:
    """The key (local date) of the latest weekly occurrence at or before ``now``."""
    local = timezone.localtime(now)
    hour, minute = (int(part) for part in trigger["time"].split(":"))
    day = local.date() - timedelta(days=(local.weekday() - trigger["weekday"]) % 7)
    start = timezone.make_aware(datetime.combine(day, time(hour, minute)))
    if start > now:
        day -= timedelta(days=7)
    return day.isoformat()


def sop_activate(*, actor: StaffMember, sop_id: int) -> Sop:
    """Start a draft SOP. A one-off date must lie in the future and its audience must match
    someone; a loop without a re-entry limit is refused."""
    require(actor, Action.SOP_MANAGE)
    from siyu.sop.selectors import sop_audience_count

    now = timezone.now()
    with transaction.atomic():
        sop = _get(sop_id, lock=True)
        if sop.status != SopStatus.DRAFT:
            raise Conflict(_("只有草稿状态的 SOP 可以启动"))
        if not sop.steps.exists():
            raise InvalidInput(_("SOP 至少需要一个步骤"))
        if sop.trigger_kind == TriggerKind.DATE:
            if local_datetime(sop.trigger["at"]) <= now:
                raise InvalidInput(_("指定的触发时间已经过去"))
            if sop_audience_count(sop=sop) == 0:
                raise InvalidInput(_("目标人群当前没有任何客户，启动后不会有人进入"))
        _check_loops(sop)
        _start_cursor(sop, now)
        sop.status, sop.activated_at = SopStatus.ACTIVE, now
        sop.save()
        audit_record(actor=actor, action="sop.activate", target=sop, details={})
    return sop


def sop_set_paused(*, actor: StaffMember, sop_id: int, paused: bool) -> Sop:
    """Pause: nobody is enrolled and no step runs. Resume: overdue steps run at once and time
    triggers catch up from where they stopped."""
    require(actor, Action.SOP_MANAGE)
    source, target = (
        (SopStatus.ACTIVE, SopStatus.PAUSED) if paused else (SopStatus.PAUSED, SopStatus.ACTIVE)
    )
    with transaction.atomic():
        sop = _get(sop_id, lock=True)
        if sop.status != source:
            raise Conflict(_("SOP 当前状态不能执行此操作"))
        if target == SopStatus.ACTIVE:
            _check_loops(sop)
        sop.status = target
        sop.save(update_fields=["status", "updated_at"])
        audit_record(
            actor=actor, action="sop.pause" if paused else "sop.resume", target=sop, details={}
        )
    return sop
