"""Console pages for 转化 → 优惠券 / 拼团 / 分销佣金. Forms post back to their page; a refusal
comes back as a message and nothing changes."""

from datetime import date, datetime
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, access_customer, can
from siyu.console.decorators import console_page
from siyu.core.errors import InvalidInput, NotFound
from siyu.promotions import selectors, services
from siyu.promotions.models import CouponKind, CouponSource, SharerKind, TeamStatus
from siyu.shop.models import Sku

PAGE_SIZE = 100
RULE_TIER_ROWS = 3


def _int(raw: str | None, what: str, *, default: int | None = None) -> int:
    text = (raw or "").strip()
    if not text and default is not None:
        return default
    if not text.isdigit():
        raise InvalidInput(_("%(what)s 须为非负整数") % {"what": what})
    return int(text)


def _fen(raw: str | None, what: str) -> int:
    """Yuan as typed ("12.5") to fen, refusing more than two decimals."""
    text = (raw or "").strip() or "0"
    whole, _dot, cents = text.partition(".")
    if not whole.isdigit() or (cents and (not cents.isdigit() or len(cents) > 2)):
        raise InvalidInput(_("%(what)s 须为金额（元，最多两位小数）") % {"what": what})
    return int(whole) * 100 + int(cents.ljust(2, "0") or 0)


def _when(raw: str | None, what: str) -> datetime | None:
    text = (raw or "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(_("请填写%(what)s") % {"what": what}) from exc
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def _page(request: HttpRequest, rows: Any) -> Any:
    return Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))


def _optional_int(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() else None


# --- coupons -------------------------------------------------------------------------------


@console_page(Action.PROMOTIONS_MANAGE)
def coupon_templates(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        post = request.POST
        kind = post.get("kind", "")
        valid_days = post.get("valid_days", "").strip()
        services.coupon_template_create(
            actor=staff,
            name=post.get("name", ""),
            kind=kind,
            amount_off_fen=_fen(post.get("amount_off"), _("减免金额"))
            if kind == CouponKind.AMOUNT
            else 0,
            percent_off=_int(post.get("percent_off"), _("减免比例"), default=0)
            if kind == CouponKind.PERCENT
            else 0,
            max_off_fen=_fen(post.get("max_off"), _("最高减免"))
            if kind == CouponKind.PERCENT
            else 0,
            min_spend_fen=_fen(post.get("min_spend"), _("使用门槛")),
            valid_from=_when(post.get("valid_from"), _("生效时间")),
            valid_until=_when(post.get("valid_until"), _("失效时间")),
            valid_days=_int(valid_days, _("领取后有效天数")) if valid_days else None,
            total_stock=_int(post.get("total_stock"), _("发行总量")),
            per_customer_limit=_int(post.get("per_customer_limit"), _("每人限领"), default=1),
            claimable=post.get("claimable") == "1",
        )
        messages.success(request, _("优惠券已创建"))
        return redirect(request.path)
    context = {
        "page": _page(request, selectors.coupon_templates(staff=staff)),
        "kinds": CouponKind.choices,
        "slug": staff.tenant.slug,
    }
    return render(request, "promotions/coupon_templates.html", context)


@console_page(Action.PROMOTIONS_MANAGE)
def coupon_grants(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    template_id = _optional_int(request.GET.get("template") or request.POST.get("template"))
    if request.method == "POST":
        if template_id is None:
            raise InvalidInput(_("请选择优惠券"))
        template = selectors.access_coupon_template(staff, template_id)
        customer = access_customer(staff, _int(request.POST.get("customer_id"), _("客户 ID")))
        services.coupon_issue(
            template=template,
            customer=customer,
            source=CouponSource.OPERATOR,
            issued_by=staff,
            event_source="console",
        )
        messages.success(request, _("已发放给 %(who)s") % {"who": customer})
        return redirect(f"{request.path}?template={template.pk}")
    rows = selectors.coupons(staff=staff, template_id=template_id)
    context = {
        "page": _page(request, rows),
        "templates": selectors.coupon_templates(staff=staff),
        "template_id": template_id,
        "now": timezone.now(),
    }
    return render(request, "promotions/coupon_grants.html", context)


@console_page(Action.PROMOTIONS_MANAGE)
def coupon_redemptions(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    template_id = _optional_int(request.GET.get("template"))
    rows = selectors.redemptions(staff=staff, template_id=template_id)
    return render(request, "promotions/coupon_redemptions.html", {"page": _page(request, rows)})


# --- group-buy -----------------------------------------------------------------------------


@console_page(Action.PROMOTIONS_MANAGE)
def groupbuys(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        post = request.POST
        sku = Sku.objects.filter(pk=_int(post.get("sku_id"), _("商品规格"))).first()
        if sku is None:
            raise InvalidInput(_("商品规格不存在"))
        starts_at = _when(post.get("starts_at"), _("开始时间"))
        ends_at = _when(post.get("ends_at"), _("结束时间"))
        if starts_at is None or ends_at is None:
            raise InvalidInput(_("请填写活动时间"))
        services.groupbuy_campaign_create(
            actor=staff,
            name=post.get("name", ""),
            sku=sku,
            group_size=_int(post.get("group_size"), _("成团人数")),
            time_limit_minutes=_int(post.get("time_limit_minutes"), _("成团时限")),
            group_price_fen=_fen(post.get("group_price"), _("拼团价")),
            starts_at=starts_at,
            ends_at=ends_at,
        )
        messages.success(request, _("拼团活动已创建"))
        return redirect(request.path)
    context = {
        "page": _page(request, selectors.groupbuy_campaigns(staff=staff).order_by("-pk")),
        "skus": Sku.objects.filter(is_active=True).select_related("product"),
        "now": timezone.now(),
    }
    return render(request, "promotions/groupbuys.html", context)


@console_page(Action.PROMOTIONS_MANAGE)
def groupbuy_teams(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    campaign_id = _optional_int(request.GET.get("campaign"))
    campaigns = selectors.groupbuy_campaigns(staff=staff).order_by("-pk")
    campaign = campaigns.filter(pk=campaign_id).first() if campaign_id else campaigns.first()
    if campaign_id and campaign is None:
        raise NotFound("group-buy campaign not found")
    teams = selectors.groupbuy_teams(campaign=campaign) if campaign else []
    context = {
        "campaigns": campaigns,
        "campaign": campaign,
        "page": _page(request, teams),
        "statuses": dict(TeamStatus.choices),
    }
    return render(request, "promotions/groupbuy_teams.html", context)


# --- distribution --------------------------------------------------------------------------


def _period(raw: str | None) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(f"{raw}-01")
    except ValueError as exc:
        raise InvalidInput(_("月份格式为 YYYY-MM")) from exc


@console_page(Action.COMMISSIONS_VIEW)
def commissions(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    raw = request.GET.get("period", "")
    try:
        period = _period(raw)
    except InvalidInput as exc:
        messages.error(request, exc.message)
        period = None
    context = {
        "period": raw if period else "",
        "statements": selectors.commission_statements(staff=staff, period=period),
        "page": _page(request, selectors.commission_entries(staff=staff, period=period)),
        "manager": can(staff, Action.PROMOTIONS_MANAGE),
    }
    return render(request, "promotions/commissions.html", context)


@console_page(Action.PROMOTIONS_MANAGE)
def commission_rules(request: HttpRequest, staff: StaffMember) -> HttpResponse:
    if request.method == "POST":
        post = request.POST
        tiers = [
            {
                "min_sales_fen": _fen(post.get(f"tier{row}_min_sales"), _("阶梯门槛")),
                "rate_bp": _int(post.get(f"tier{row}_rate_bp"), _("阶梯佣金比例")),
            }
            for row in range(RULE_TIER_ROWS)
            if post.get(f"tier{row}_min_sales", "").strip()
        ]
        services.commission_rule_set(
            sharer_kind=post.get("sharer_kind", ""),
            rate_bp=_int(post.get("rate_bp"), _("基础佣金比例")),
            tiers=tiers,
            is_active=post.get("is_active") == "1",
        )
        messages.success(request, _("佣金规则已保存"))
        return redirect(request.path)
    rules = {rule.sharer_kind: rule for rule in selectors.commission_rules()}
    context = {
        "kinds": [(kind, label, rules.get(kind)) for kind, label in SharerKind.choices],
        "tier_rows": range(RULE_TIER_ROWS),
    }
    return render(request, "promotions/commission_rules.html", context)
