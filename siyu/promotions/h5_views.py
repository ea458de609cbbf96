"""Customer pages opened in WeChat: the coupon claim page (领券页) and group-buys (拼团):
identify the visitor, show, act; paying goes through the shop's cashier."""

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from siyu.core.errors import SiyuError
from siyu.core.models import Tenant
from siyu.core.tenancy import tenant_context
from siyu.customers.models import Customer
from siyu.h5.pages import h5_problem, h5_sign_in, h5_tenant_or_404
from siyu.h5.services import h5_visitor
from siyu.promotions import services
from siyu.promotions.models import (
    Coupon,
    CouponTemplate,
    GroupBuyCampaign,
    GroupBuyTeam,
    MemberStatus,
    TeamStatus,
)
from siyu.shop.h5_views import order_pay_response


def _visitor(request: HttpRequest, slug: str) -> tuple[Tenant, Customer | None]:
    tenant = h5_tenant_or_404(slug)
    return tenant, h5_visitor(request, tenant)


@require_http_methods(["GET", "POST"])
def coupon_claim_page(request: HttpRequest, slug: str, template_id: int) -> HttpResponse:
    """GET shows the coupon and the visitor's copies; POST claims one (limits apply)."""
    tenant, customer = _visitor(request, slug)
    if customer is None:
        return h5_sign_in(request, slug)
    with tenant_context(tenant):
        template = CouponTemplate.objects.filter(pk=template_id, claimable=True).first()
        if template is None:
            return render(request, "h5/problem.html", {"message": "优惠券不存在"}, status=404)
        error = ""
        status = 200
        if request.method == "POST":
            try:
                services.coupon_claim(template=template, customer=customer)
            except SiyuError as exc:
                error, status = exc.message, exc.status
            else:
                return HttpResponseRedirect(request.path)
        mine = Coupon.objects.filter(template=template, customer=customer).order_by("-pk")
        context = {"template": template, "coupons": mine, "error": error}
        return render(request, "promotions/h5_claim.html", context, status=status)


def _team_context(team: GroupBuyTeam, customer: Customer) -> dict[str, object]:
    members = team.members.filter(status__in=[MemberStatus.PENDING, MemberStatus.PAID])
    mine = members.filter(customer=customer).select_related("order").first()
    open_seat = (
        team.status == TeamStatus.FORMING
        and team.expires_at > timezone.now()
        and team.seats_taken < team.size
    )
    return {"team": team, "members": members, "mine": mine, "can_join": open_seat and not mine}


@require_http_methods(["GET", "POST"])
def groupbuy_page(request: HttpRequest, slug: str, campaign_id: int) -> HttpResponse:
    """GET: the group-buy, its forming teams (seats and time left); POST: open a team as its
    leader and pay for the seat."""
    tenant, customer = _visitor(request, slug)
    if customer is None:
        return h5_sign_in(request, slug)
    with tenant_context(tenant):
        campaign = GroupBuyCampaign.objects.filter(pk=campaign_id, is_active=True).first()
        if campaign is None:
            return h5_problem(request, _("拼团活动不存在"), 404)
        if request.method == "POST":
            try:
                member = services.team_open(campaign=campaign, customer=customer)
            except SiyuError as exc:
                return h5_problem(request, exc.message, exc.status)
            return order_pay_response(request, slug, customer, member.order)
        teams = GroupBuyTeam.objects.filter(
            campaign=campaign, status=TeamStatus.FORMING, expires_at__gt=timezone.now()
        ).order_by("expires_at")[:20]
        return render(
            request,
            "promotions/h5_groupbuy.html",
            {"campaign": campaign, "teams": teams, "slug": slug},
        )


@require_http_methods(["GET", "POST"])
def groupbuy_team_page(request: HttpRequest, slug: str, team_id: int) -> HttpResponse:
    """A team's page, the link the leader shares: who is in, what is left; POST joins and pays.
    A succeeded, failed, expired or full team refuses with the reason."""
    tenant, customer = _visitor(request, slug)
    if customer is None:
        return h5_sign_in(request, slug)
    with tenant_context(tenant):
        team = GroupBuyTeam.objects.select_related("campaign").filter(pk=team_id).first()
        if team is None:
            return h5_problem(request, _("该团不存在"), 404)
        if request.method == "POST":
            try:
                member = services.team_join(team=team, customer=customer)
            except SiyuError as exc:
                return h5_problem(request, exc.message, exc.status)
            return order_pay_response(request, slug, customer, member.order)
        context = {**_team_context(team, customer), "slug": slug}
        return render(request, "promotions/h5_groupbuy_team.html", context)
