"""Console pages for mass sends. Thin: parse the form, call services, render."""

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput
from siyu.masssend import selectors, services
from siyu.masssend.models import (
    AudienceKind,
    ExcludeReason,
    MassSendKind,
    MassSendStatus,
    RecipientStatus,
)
from siyu.segments.selectors import saved_segment_list
from siyu.tags.models import Tag
from siyu.wecom.client.errors import WeComError

LIVE = (MassSendStatus.SCHEDULED, MassSendStatus.SENDING, MassSendStatus.SENT)


def _ids(value: str) -> list[int]:
    return [int(v) for v in value.replace(",", " ").split() if v.isdigit()]


def _audience(request: HttpRequest, form: dict[str, Any]) -> dict[str, Any]:
    """The audience from the form; an uploaded CSV becomes customer ids (errors per row)."""
    kind = form["audience_kind"]
    if kind == AudienceKind.SEGMENT:
        return {"segment_id": int(form["segment_id"]) if form["segment_id"].isdigit() else None}
    if kind == AudienceKind.EXPRESSION:
        return {"expression": form["expression"]}
    if kind == AudienceKind.TAGS:
        return {"tag_ids": [int(t) for t in request.POST.getlist("tag_ids") if t.isdigit()]}
    upload = request.FILES.get("upload")
    if upload is not None:
        result = services.audience_upload_parse(data=upload.read())
        form["customer_ids"] = ",".join(str(i) for i in result.customer_ids)
        form["upload_errors"] = result.errors
    return {"customer_ids": _ids(form.get("customer_ids", ""))}


def _schedule(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(_("发送时间格式不正确")) from None
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


def _attachments(form: dict[str, Any]) -> list[dict[str, Any]]:
    attachments: list[dict[str, Any]] = []
    if form["image_url"]:
        attachments.append({"msgtype": "image", "image": {"pic_url": form["image_url"]}})
    if form["link_url"] or form["link_title"]:
        link = {"title": form["link_title"], "url": form["link_url"], "desc": form["link_desc"]}
        attachments.append({"msgtype": "link", "link": link})
    return attachments


FIELDS = (
    "kind",
    "name",
    "audience_kind",
    "segment_id",
    "expression",
    "customer_ids",
    "text",
    "image_url",
    "link_title",
    "link_url",
    "link_desc",
    "content_item_id",
    "scheduled_at",
)


@console_page(Action.MASS_SEND_MANAGE)
def mass_sends(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    status = request.GET.get("status", "")
    qs = selectors.mass_send_list(actor=staff, status=status if status in MassSendStatus else "")
    return render(
        request,
        "masssend/list.html",
        {
            "page": Paginator(qs, 50).get_page(request.GET.get("page")),
            "statuses": MassSendStatus.choices,
            "status": status,
        },
    )


@console_page(Action.MASS_SEND_MANAGE)
def mass_send_new(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    form: dict[str, Any] = {name: request.POST.get(name, "").strip() for name in FIELDS}
    form["kind"] = form["kind"] or MassSendKind.CUSTOMERS
    form["audience_kind"] = form["audience_kind"] or AudienceKind.SEGMENT
    form["tag_ids"] = [int(t) for t in request.POST.getlist("tag_ids") if t.isdigit()]
    context: dict[str, Any] = {
        "form": form,
        "kinds": MassSendKind.choices,
        "audience_kinds": AudienceKind.choices,
        "segments": saved_segment_list(actor=staff),
        "tags": Tag.objects.select_related("group").order_by("group__name", "name"),
        "reasons": dict(ExcludeReason.choices),
    }
    if request.method == "POST":
        # Bad input is shown on this page with the form kept (no redirect).
        try:
            audience = _audience(request, form)
            if request.POST.get("op") == "create":
                send = services.mass_send_create(
                    actor=staff,
                    kind=form["kind"],
                    name=form["name"],
                    audience_kind=form["audience_kind"],
                    audience=audience,
                    text=form["text"],
                    attachments=_attachments(form),
                    content_item_id=int(form["content_item_id"])
                    if form["content_item_id"].isdigit()
                    else None,
                    scheduled_at=_schedule(form["scheduled_at"]),
                )
                messages.success(request, _("群发已创建，员工确认发送后会自动更新进度。"))
                return redirect(reverse("console:masssend", args=[send.pk]))
            context["preview"] = services.mass_send_preview(
                actor=staff,
                kind=form["kind"],
                audience_kind=form["audience_kind"],
                audience=audience,
            )
        except InvalidInput as exc:
            context["error"] = exc.message
    return render(request, "masssend/new.html", context)


def _detail_context(staff: StaffMember, mass_send_id: int) -> dict[str, Any]:
    send = selectors.mass_send_get(actor=staff, mass_send_id=mass_send_id)
    return {
        "send": send,
        "counts": selectors.mass_send_counts(send=send),
        "progress": selectors.mass_send_progress(send=send),
        "live": send.status in LIVE,
        "statuses": dict(RecipientStatus.choices),
        "reasons": dict(ExcludeReason.choices),
    }


@console_page(Action.MASS_SEND_MANAGE)
def mass_send_detail(request: HttpRequest, staff: StaffMember, mass_send_id: int) -> HttpResponse:
    context = _detail_context(staff, mass_send_id)
    send = context["send"]
    if request.method == "POST":
        op = request.POST.get("op")
        try:
            if op == "cancel":
                services.mass_send_cancel(actor=staff, mass_send_id=send.pk)
                messages.success(request, _("群发已取消。"))
            elif op == "sync":
                services.mass_send_sync(mass_send_id=send.pk)
            elif op == "remind":
                n = services.mass_send_remind(actor=staff, mass_send_id=send.pk)
                messages.success(request, _("已提醒 %(n)s 个任务") % {"n": n})
        except WeComError as exc:
            messages.error(request, _("企业微信返回错误 %(code)s") % {"code": exc.errcode})
        return redirect(request.path)
    status = request.GET.get("status", "")
    recipients = selectors.mass_send_recipients(
        send=send, status=status if status in RecipientStatus else ""
    )
    context["page"] = Paginator(recipients, 100).get_page(request.GET.get("page"))
    context["status"] = status
    return render(request, "masssend/detail.html", context)


@console_page(Action.MASS_SEND_MANAGE)
def mass_send_progress(request: HttpRequest, staff: StaffMember, mass_send_id: int) -> HttpResponse:
    """The live part of the detail page, polled by HTMX while the send is under way."""
    return render(request, "masssend/_progress.html", _detail_context(staff, mass_send_id))
