"""Console pages of 获客 → 渠道活码: the list (pause, resume, delete, the default welcome
message, the quota), the create/edit form and the QR download. Thin: parse, call, render."""

from datetime import time
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action
from siyu.channels import selectors, services
from siyu.channels.models import CodeKind, CodeStatus
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput, SiyuError
from siyu.tags.selectors import tag_choices


def _ints(request: HttpRequest, name: str) -> list[int]:
    try:
        return [int(v) for v in request.POST.getlist(name) if v.strip()]
    except ValueError:
        raise InvalidInput(_("%(field)s 须为整数") % {"field": name}) from None


def _count(raw: str) -> int:
    if not raw.strip():
        return 0
    if not raw.strip().isdigit():
        raise InvalidInput(_("每日上限须为非负整数"))
    return int(raw)


def _time(raw: str) -> time | None:
    if not raw.strip():
        return None
    try:
        return time.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput(_("时间须写成 HH:MM")) from None


def _welcome(request: HttpRequest) -> dict[str, Any]:
    """The form's text, one optional link card and one optional image (the API takes all
    attachment types)."""
    post = request.POST
    attachments: list[dict[str, str]] = []
    if post.get("link_url", "").strip() or post.get("link_title", "").strip():
        link = {
            "type": "link",
            "title": post.get("link_title", ""),
            "url": post.get("link_url", ""),
        }
        for field in ("picurl", "desc"):
            if post.get(f"link_{field}", "").strip():
                link[field] = post[f"link_{field}"]
        attachments.append(link)
    if post.get("image_url", "").strip():
        attachments.append({"type": "image", "pic_url": post["image_url"]})
    return {"text": post.get("welcome_text", ""), "attachments": attachments}


@console_page(Action.CHANNELS_MANAGE)
def channel_list(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        op = request.POST.get("op", "")
        try:
            if op == "welcome_default":
                services.welcome_default_set(actor=staff, welcome=_welcome(request))
                messages.success(request, _("默认欢迎语已保存"))
            else:
                code_id = int(request.POST.get("code_id", "0") or 0)
                if op == "delete":
                    services.channel_code_delete(actor=staff, code_id=code_id)
                    messages.success(request, _("活码已删除"))
                elif op in (CodeStatus.ACTIVE, CodeStatus.PAUSED):
                    services.channel_code_set_status(actor=staff, code_id=code_id, status=op)
                    messages.success(request, _("状态已更新"))
        except (SiyuError, ValueError) as exc:
            messages.error(request, getattr(exc, "message", _("请求无效")))
        return redirect("console:channels")
    codes = selectors.channel_code_list(actor=staff, query=request.GET.get("q", "")[:30])
    default = selectors.welcome_default_get(actor=staff)
    context = {
        "codes": codes,
        "quota": selectors.contact_way_usage(actor=staff),
        "default": default,
        "default_link": next(
            (a for a in default.get("attachments", []) if a["type"] == "link"),
            {},
        ),
        "default_image": next(
            (a for a in default.get("attachments", []) if a["type"] == "image"),
            {},
        ),
    }
    return render(request, "channels/list.html", context)


@console_page(Action.CHANNELS_MANAGE)
def channel_form(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    raw_id = request.GET.get("code", "")
    code = (
        selectors.channel_code_get(actor=staff, code_id=int(raw_id)) if raw_id.isdigit() else None
    )
    if request.method == "POST":
        post = request.POST
        fields: dict[str, Any] = {
            "name": post.get("name", ""),
            "staff_ids": _ints(request, "staff_ids"),
            "backup_ids": _ints(request, "backup_ids"),
            "tag_ids": _ints(request, "tag_ids"),
            "welcome": _welcome(request),
            "skip_verify": post.get("skip_verify") == "on",
            "daily_cap": _count(post.get("daily_cap", "")),
            "work_start": _time(post.get("work_start", "")),
            "work_end": _time(post.get("work_end", "")),
            "relation_remark": post.get("relation_remark", ""),
            "relation_description": post.get("relation_description", ""),
            "group_chat_id": post.get("group_chat_id", ""),
        }
        if code is None:
            services.channel_code_create(actor=staff, kind=post.get("kind", ""), **fields)
            messages.success(request, _("活码已创建"))
        else:
            services.channel_code_update(actor=staff, code_id=code.pk, **fields)
            messages.success(request, _("活码已保存"))
        return redirect("console:channels")
    welcome = code.welcome if code is not None else {}
    members = list(code.members.all()) if code is not None else []
    context = {
        "code": code,
        "kinds": CodeKind.choices,
        "candidates": selectors.pool_candidates(actor=staff),
        "groups": selectors.group_choices(actor=staff),
        "tags": tag_choices(actor=staff),
        "primary_ids": {m.staff_id for m in members if not m.backup},
        "backup_ids": {m.staff_id for m in members if m.backup},
        "tag_ids": {t.pk for t in code.tags.all()} if code is not None else set(),
        "welcome_text": welcome.get("text", ""),
        "link": next((a for a in welcome.get("attachments", []) if a["type"] == "link"), {}),
        "image": next((a for a in welcome.get("attachments", []) if a["type"] == "image"), {}),
        "action": reverse("console:channel_form") + (f"?code={code.pk}" if code else ""),
    }
    return render(request, "channels/form.html", context)


@console_page(Action.CHANNELS_MANAGE)
def channel_qr(request: HttpRequest, staff: StaffMember, code_id: int) -> HttpResponse:
    content, content_type = services.channel_code_qr(actor=staff, code_id=code_id)
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="channel-{code_id}.png"'
    return response
