"""Console pages of 管理 → 标签: the taxonomy editor, auto-tag rules and the quality report.

Each page takes its form posts itself (an ``op`` field says which), calls one service and
redirects back; a refusal (bad name, WeCom said no) becomes a message and changes nothing.
"""

import json
from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput, SiyuError
from siyu.core.events import event_types
from siyu.tags import selectors, services
from siyu.tags.models import MASS_SEND_TAG_SIZE


def _int(request: HttpRequest, name: str, default: int | None = None) -> int:
    raw = request.POST.get(name, "").strip()
    if not raw and default is not None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(_("%(field)s 须为整数") % {"field": name}) from None


def _lines(text: str) -> list[str]:
    return [part.strip() for part in text.replace("，", ",").replace(",", "\n").splitlines()]


def _conditions(text: str) -> dict[str, object]:
    """``key=value`` per line; numbers and true/false keep their JSON type."""
    parsed: dict[str, object] = {}
    for line in filter(None, (line.strip() for line in text.splitlines())):
        key, sep, value = line.partition("=")
        if not sep:
            raise InvalidInput(_("条件须写成 字段=值：%(line)s") % {"line": line})
        try:
            typed = json.loads(value.strip())
        except ValueError:
            typed = value.strip()
        parsed[key.strip()] = typed if isinstance(typed, bool | int) else value.strip()
    return parsed


def _run(request: HttpRequest, change: Callable[[], object], done: str) -> None:
    try:
        change()
    except SiyuError as exc:
        # Conflicts (duplicate names, the 3000-tag cap) and WeCom outages included.
        messages.error(request, exc.message)
    else:
        messages.success(request, done)


@console_page(Action.TAGS_MANAGE)
def taxonomy(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        op = request.POST.get("op", "")
        post = request.POST
        ops: dict[str, Callable[[], object]] = {
            "create_group": lambda: services.tag_group_create(
                actor=staff,
                name=post.get("name", ""),
                tags=[t for t in _lines(post.get("tags", "")) if t],
                order=_int(request, "order", 0),
                required=post.get("required") == "1",
                mass_send=post.get("mass_send") == "1",
            ),
            "update_group": lambda: services.tag_group_update(
                actor=staff,
                group_id=_int(request, "group_id"),
                name=post.get("name", ""),
                order=_int(request, "order"),
                required=post.get("required") == "1",
                mass_send=post.get("mass_send") == "1",
            ),
            "delete_group": lambda: services.tag_group_delete(
                actor=staff, group_id=_int(request, "group_id")
            ),
            "create_tag": lambda: services.tag_create(
                actor=staff,
                group_id=_int(request, "group_id"),
                name=post.get("name", ""),
                order=_int(request, "order", 0),
            ),
            "update_tag": lambda: services.tag_update(
                actor=staff,
                tag_id=_int(request, "tag_id"),
                name=post.get("name", ""),
                order=_int(request, "order"),
            ),
            "delete_tag": lambda: services.tag_delete(actor=staff, tag_id=_int(request, "tag_id")),
        }
        if op not in ops:
            raise InvalidInput(_("未知操作"))
        _run(request, ops[op], _("已保存，并已同步到企业微信"))
        return redirect("console:tags")
    return render(
        request,
        "tags/taxonomy.html",
        {"groups": selectors.taxonomy(actor=staff), "mass_send_size": MASS_SEND_TAG_SIZE},
    )


@console_page(Action.TAGS_MANAGE)
def rules(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        op = request.POST.get("op", "")
        post = request.POST
        ops: dict[str, Callable[[], object]] = {
            "create": lambda: services.tag_rule_create(
                actor=staff,
                name=post.get("name", ""),
                event_type=post.get("event_type", ""),
                tag_id=_int(request, "tag_id"),
                threshold=_int(request, "threshold", 1),
                window_days=_int(request, "window_days", 7),
                conditions=_conditions(post.get("conditions", "")),
            ),
            "toggle": lambda: services.tag_rule_update(
                actor=staff, rule_id=_int(request, "rule_id"), enabled=post.get("enabled") == "1"
            ),
            "delete": lambda: services.tag_rule_delete(
                actor=staff, rule_id=_int(request, "rule_id")
            ),
        }
        if op not in ops:
            raise InvalidInput(_("未知操作"))
        _run(request, ops[op], _("已保存"))
        return redirect("console:tag_rules")
    return render(
        request,
        "tags/rules.html",
        {
            "rules": selectors.tag_rule_list(actor=staff),
            "event_types": event_types(),
            "tags": selectors.tag_choices(actor=staff),
        },
    )


@console_page(Action.TAGS_QUALITY)
def quality(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    report = selectors.tag_compliance(actor=staff)
    rows = [
        {
            "member": row,
            "missing": [row.missing.get(group.pk, 0) for group in report.groups],
            "percent": None if row.share is None else round(row.share * 100, 1),
        }
        for row in report.members
    ]
    return render(request, "tags/quality.html", {"groups": report.groups, "rows": rows})
