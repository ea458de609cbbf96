"""Console pages for 获客 → 裂变活动: list, create, detail (funnel, referral tree, participants)."""

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember, StaffStatus
from siyu.accounts.permissions import Action
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput, SiyuError
from siyu.fission import selectors, services
from siyu.fission.models import CampaignKind, RewardKind
from siyu.fission.poster import LAYOUT_KEYS
from siyu.promotions.selectors import coupon_template_choices
from siyu.tags.selectors import tag_choices

PAGE_SIZE = 100
TIER_ROWS = 3


def _int(raw: str | None, what: str) -> int:
    text = (raw or "").strip()
    if not text.lstrip("-").isdigit():
        raise InvalidInput(_("%(what)s 须为整数") % {"what": what})
    return int(text)


def _when(raw: str | None, what: str) -> datetime:
    try:
        value = datetime.fromisoformat((raw or "").strip())
    except ValueError as exc:
        raise InvalidInput(_("请填写%(what)s") % {"what": what}) from exc
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def _form_tiers(post: Any) -> list[dict[str, Any]]:
    tiers = []
    for row in range(TIER_ROWS):
        if not post.get(f"tier{row}_threshold", "").strip():
            continue
        stock_raw = post.get(f"tier{row}_stock", "").strip()
        template_raw = post.get(f"tier{row}_coupon_template", "").strip()
        tiers.append(
            {
                "threshold": _int(post.get(f"tier{row}_threshold"), _("邀请人数")),
                "kind": post.get(f"tier{row}_kind", ""),
                "payload": post.get(f"tier{row}_payload", ""),
                "stock": _int(stock_raw, _("库存")) if stock_raw else None,
                # promotions: a coupon tier may hand out a real coupon of this template.
                "coupon_template_id": _int(template_raw, _("优惠券模板")) if template_raw else None,
            }
        )
    return tiers


def _form_groups(text: str) -> list[dict[str, Any]]:
    """One group per line: ``chat_id,capacity[,name]``."""
    groups = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2:
            raise InvalidInput(_("客户群每行填写：群ID,容量[,群名]"))
        groups.append(
            {
                "chat_id": parts[0],
                "capacity": _int(parts[1], _("群容量")),
                "name": parts[2] if len(parts) > 2 else "",
            }
        )
    return groups


def _form_layout(post: Any) -> dict[str, Any] | None:
    if not any(post.get(f"{key}_x", "").strip() for key in LAYOUT_KEYS):
        return None
    return {
        key: {
            "x": _int(post.get(f"{key}_x"), key),
            "y": _int(post.get(f"{key}_y"), key),
            "size": _int(post.get(f"{key}_size"), key),
        }
        for key in LAYOUT_KEYS
    }


@console_page(Action.FISSION_MANAGE)
def campaign_list(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    campaigns = selectors.campaign_list(actor=staff)
    page = Paginator(campaigns, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "fission/campaigns.html", {"page": page, "now": timezone.now()})


@console_page(Action.FISSION_MANAGE)
def campaign_new(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        post = request.POST
        artwork = request.FILES.get("artwork")
        try:
            campaign = services.campaign_create(
                actor=staff,
                kind=post.get("kind", ""),
                name=post.get("name", ""),
                description=post.get("description", "").strip(),
                starts_at=_when(post.get("starts_at"), _("开始时间")),
                ends_at=_when(post.get("ends_at"), _("结束时间")),
                staff_ids=[_int(v, _("承接成员")) for v in post.getlist("staff_ids")],
                tiers=_form_tiers(post),
                tag_ids=[_int(v, _("标签")) for v in post.getlist("tag_ids")],
                delete_window_hours=_int(post.get("delete_window_hours", "72"), _("回收窗口")),
                group_chats=_form_groups(post.get("group_chats", "")),
                artwork=artwork.read() if artwork is not None else None,
                artwork_name=(artwork.name if artwork is not None else None) or "art.png",
                layout=_form_layout(post),
            )
        except SiyuError as exc:
            # Nothing was created; show the form again with what they typed.
            messages.error(request, exc.message)
        else:
            messages.success(request, _("活动已创建"))
            return redirect(reverse("console:fission_campaign", args=[campaign.pk]))
    context = {
        "members": StaffMember.objects.filter(status=StaffStatus.ACTIVE).order_by("name"),
        "tags": tag_choices(actor=staff),
        "kinds": CampaignKind.choices,
        "reward_kinds": RewardKind.choices,
        "coupon_templates": coupon_template_choices(),
        "tier_rows": range(TIER_ROWS),
        "layout_keys": LAYOUT_KEYS,
        "form": request.POST,
    }
    return render(request, "fission/campaign_new.html", context)


@console_page(Action.FISSION_MANAGE)
def campaign_detail(request: HttpRequest, staff: StaffMember, campaign_id: int) -> HttpResponse:
    campaign = selectors.campaign_get(actor=staff, campaign_id=campaign_id)
    if request.method == "POST":
        # Edit what may change while it runs; a refusal comes back as a message, unchanged.
        post = request.POST
        services.campaign_update(
            campaign=campaign,
            name=post.get("name"),
            description=post.get("description"),
            ends_at=_when(post.get("ends_at"), _("结束时间")) if post.get("ends_at") else None,
            delete_window_hours=_int(post.get("delete_window_hours"), _("回收窗口"))
            if post.get("delete_window_hours")
            else None,
        )
        messages.success(request, _("活动已更新"))
        return redirect(request.path)
    participants = selectors.participant_list(campaign=campaign)
    context = {
        "campaign": campaign,
        "funnel": selectors.campaign_funnel(campaign=campaign),
        "tree": selectors.referral_tree(campaign=campaign),
        "page": Paginator(participants, PAGE_SIZE).get_page(request.GET.get("page")),
        "h5_url": request.build_absolute_uri(
            reverse("fission_h5:campaign", args=[campaign.tenant.slug, campaign.pk])
        ),
    }
    return render(request, "fission/campaign_detail.html", context)
