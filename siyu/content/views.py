"""Console pages of 运营 → 内容库 and 互动雷达: the library with its folders, the item form,
an item's radar (numbers, forward chain, recent opens, my tracked link) and per-member radar.
Thin: parse, call, render."""

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, can
from siyu.console.decorators import console_page
from siyu.content import selectors, services
from siyu.content.models import ContentKind
from siyu.core.errors import InvalidInput


def _int_or_none(raw: str, field: str) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise InvalidInput(_("%(field)s 须为整数") % {"field": field})
    return int(raw)


def _price_fen(raw: str) -> int | None:
    """The form takes yuan with up to two decimals (12.5 → 1250 fen)."""
    raw = raw.strip()
    if not raw:
        return None
    whole, _dot, frac = raw.partition(".")
    if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 2)):
        raise InvalidInput(_("价格须为非负金额，最多两位小数"))
    return int(whole) * 100 + int(frac.ljust(2, "0") or 0)


@console_page(Action.CONTENT_SHARE)
def library(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        op = request.POST.get("op", "")
        if op == "folder_create":
            services.folder_create(
                actor=staff,
                name=request.POST.get("name", ""),
                parent_id=_int_or_none(request.POST.get("parent_id", ""), "parent_id"),
            )
            messages.success(request, _("文件夹已创建"))
        elif op == "folder_delete":
            folder_id = _int_or_none(request.POST.get("folder_id", ""), "folder_id")
            services.folder_delete(actor=staff, folder_id=folder_id or 0)
            messages.success(request, _("文件夹已删除"))
        elif op == "archive":
            item_id = _int_or_none(request.POST.get("item_id", ""), "item_id")
            services.item_archive(actor=staff, item_id=item_id or 0)
            messages.success(request, _("内容已归档"))
        else:
            raise InvalidInput(_("请求无效"))
        return redirect("console:content")
    folder_id = _int_or_none(request.GET.get("folder", ""), "folder")
    kind = request.GET.get("kind", "")
    items = selectors.items_list(
        actor=staff,
        folder_id=folder_id,
        tag=request.GET.get("tag", "")[:32],
        kind=kind if kind in ContentKind.values else "",
        query=request.GET.get("q", "")[:100],
    )[:200]
    context = {
        "items": [(item, services.item_missing(item)) for item in items],
        "folders": selectors.folder_tree(actor=staff),
        "folder_id": folder_id,
        "kinds": ContentKind.choices,
        "can_manage": can(staff, Action.CONTENT_MANAGE),
    }
    return render(request, "content/library.html", context)


def _item_fields(request: HttpRequest) -> dict[str, Any]:
    post = request.POST
    fields: dict[str, Any] = {
        "title": post.get("title", ""),
        "summary": post.get("summary", ""),
        "folder_id": _int_or_none(post.get("folder_id", ""), "folder_id"),
        "tags": [t for t in (s.strip() for s in post.get("tags", "").split(",")) if t],
        "body": post.get("body", ""),
        "url": post.get("url", ""),
        "price_fen": _price_fen(post.get("price", "")),
        "card_staff_id": _int_or_none(post.get("card_staff_id", ""), "card_staff_id"),
    }
    for name in ("file", "cover"):
        if name in request.FILES:
            fields[name] = request.FILES[name]
    return fields


@console_page(Action.CONTENT_MANAGE)
def item_form(request: HttpRequest, staff: StaffMember, item_id: int | None = None) -> HttpResponse:
    item = selectors.item_get(actor=staff, item_id=item_id) if item_id is not None else None
    if request.method == "POST":
        fields = _item_fields(request)
        if item is None:
            item = services.item_create(actor=staff, kind=request.POST.get("kind", ""), **fields)
            messages.success(request, _("内容已创建"))
        else:
            item = services.item_update(actor=staff, item_id=item.pk, **fields)
            messages.success(request, _("内容已保存"))
        return redirect("console:content_item", item_id=item.pk)
    context = {
        "item": item,
        "kinds": ContentKind.choices,
        "folders": selectors.folder_tree(actor=staff),
        "members": selectors.card_members(actor=staff),
        "tags": ", ".join(t.name for t in item.tags.all()) if item is not None else "",
        "price": (
            f"{item.price_fen // 100}.{item.price_fen % 100:02d}"
            if item is not None and item.price_fen is not None
            else ""
        ),
    }
    return render(request, "content/form.html", context)


@console_page(Action.CONTENT_SHARE)
def item_radar(request: HttpRequest, staff: StaffMember, item_id: int) -> HttpResponse:
    item = selectors.item_get(actor=staff, item_id=item_id)
    link_url = ""
    if request.method == "POST":
        op = request.POST.get("op", "")
        if op == "link":
            link = services.tracked_link_for_self(actor=staff, item_id=item.pk)
            link_url = services.link_url(link=link)
        elif op == "check_url":
            services.item_url_recheck(actor=staff, item_id=item.pk)
            messages.success(request, _("已重新检查链接，稍后刷新查看结果"))
            return redirect("console:content_item", item_id=item.pk)
        else:
            raise InvalidInput(_("请求无效"))
    context = {
        "item": item,
        "missing": services.item_missing(item),
        "stats": selectors.item_stats(actor=staff, item=item),
        "tree": selectors.forward_tree(actor=staff, item=item),
        "visits": selectors.recent_visits(actor=staff, item=item),
        "link_url": link_url,
        "can_manage": can(staff, Action.CONTENT_MANAGE),
    }
    return render(request, "content/radar.html", context)


@console_page(Action.CONTENT_SHARE)
def staff_radar(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    days = _int_or_none(request.GET.get("days", ""), "days") or 30
    if not 1 <= days <= 366:
        raise InvalidInput(_("天数须在 1 到 366 之间"))
    context = {"rows": selectors.staff_stats(actor=staff, days=days), "days": days}
    return render(request, "content/staff_radar.html", context)
