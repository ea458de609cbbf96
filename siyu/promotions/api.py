"""/api/v1/promotions: coupon templates, coupons and redemptions; group-buy campaigns and
teams; commission rules, ledger and statements."""

from datetime import date, datetime
from typing import Literal

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from siyu.accounts.models import StaffMember
from siyu.accounts.permissions import Action, access_customer, require
from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.core.errors import InvalidInput, NotFound
from siyu.promotions import selectors, services
from siyu.promotions.models import Coupon, CouponSource
from siyu.shop.models import Sku

router = Router(tags=["promotions"])

MAX_FEN = 100_000_000


def _manager(request: HttpRequest) -> StaffMember:
    return require(actor(request), Action.PROMOTIONS_MANAGE)


# --- coupons -------------------------------------------------------------------------------


class TemplateIn(StrictIn):
    name: str = Field(min_length=1, max_length=64)
    kind: Literal["amount", "percent"]
    amount_off_fen: int = Field(0, ge=0, le=MAX_FEN)
    percent_off: int = Field(0, ge=0, le=100)
    max_off_fen: int = Field(0, ge=0, le=MAX_FEN)
    min_spend_fen: int = Field(0, ge=0, le=MAX_FEN)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    valid_days: int | None = Field(None, ge=1, le=3650)
    total_stock: int = Field(ge=1, le=10_000_000)
    per_customer_limit: int = Field(1, ge=1, le=100)
    claimable: bool = False


class TemplatePatch(StrictIn):
    name: str | None = Field(None, min_length=1, max_length=64)
    total_stock: int | None = Field(None, ge=1, le=10_000_000)
    claimable: bool | None = None
    is_active: bool | None = None


class TemplateOut(Schema):
    id: int
    name: str
    kind: str
    amount_off_fen: int
    percent_off: int
    max_off_fen: int
    min_spend_fen: int
    valid_from: datetime | None
    valid_until: datetime | None
    valid_days: int | None
    total_stock: int
    issued: int
    per_customer_limit: int
    claimable: bool
    is_active: bool
    created_at: datetime


class TemplatePage(PageOut):
    items: list[TemplateOut]


class IssueIn(StrictIn):
    customer_id: int


class CouponOut(Schema):
    id: int
    template_id: int
    customer_id: int
    code: str
    source: str
    status: str
    expired: bool
    valid_from: datetime
    valid_until: datetime
    issued_at: datetime

    @staticmethod
    def resolve_expired(obj: Coupon) -> bool:
        return selectors.coupon_is_expired(obj)


class CouponPage(PageOut):
    items: list[CouponOut]


class RedemptionOut(Schema):
    id: int
    coupon_id: int
    order_id: int
    customer_id: int
    discount_fen: int
    status: str
    created_at: datetime
    settled_at: datetime | None


class RedemptionPage(PageOut):
    items: list[RedemptionOut]


@router.get("/coupon-templates", response=TemplatePage)
def list_templates(request: HttpRequest, params: Query[PageParams]) -> object:
    return paginate(selectors.coupon_templates(staff=actor(request)), params)


@router.post("/coupon-templates", response={201: TemplateOut})
def create_template(request: HttpRequest, payload: TemplateIn) -> Status[object]:
    template = services.coupon_template_create(actor=_manager(request), **payload.model_dump())
    return Status(201, template)


@router.get("/coupon-templates/{template_id}", response=TemplateOut)
def get_template(request: HttpRequest, template_id: int) -> object:
    return selectors.access_coupon_template(actor(request), template_id)


@router.patch("/coupon-templates/{template_id}", response=TemplateOut)
def update_template(request: HttpRequest, template_id: int, payload: TemplatePatch) -> object:
    template = selectors.access_coupon_template(actor(request), template_id)
    return services.coupon_template_update(
        template=template, **payload.model_dump(exclude_unset=True)
    )


@router.post("/coupon-templates/{template_id}/issue", response={201: CouponOut})
def issue_coupon(request: HttpRequest, template_id: int, payload: IssueIn) -> Status[object]:
    """Issue one coupon to a customer the caller may see (per-customer limit and stock hold)."""
    staff = actor(request)
    template = selectors.access_coupon_template(staff, template_id)
    customer = access_customer(staff, payload.customer_id)
    coupon = services.coupon_issue(
        template=template,
        customer=customer,
        source=CouponSource.OPERATOR,
        issued_by=staff,
        event_source="api",
    )
    return Status(201, coupon)


@router.get("/coupons", response=CouponPage)
def list_coupons(
    request: HttpRequest,
    params: Query[PageParams],
    template_id: int | None = None,
    customer_id: int | None = None,
    status: Literal["available", "reserved", "used", "void"] | None = None,
) -> object:
    rows = selectors.coupons(
        staff=actor(request), template_id=template_id, customer_id=customer_id, status=status
    )
    return paginate(rows, params)


@router.post("/coupons/{coupon_id}/void", response=CouponOut)
def void_coupon(request: HttpRequest, coupon_id: int) -> object:
    coupon = selectors.coupons(staff=actor(request)).filter(pk=coupon_id).first()
    if coupon is None:
        raise NotFound("coupon not found")
    return services.coupon_void(coupon=coupon)


@router.get("/redemptions", response=RedemptionPage)
def list_redemptions(
    request: HttpRequest, params: Query[PageParams], template_id: int | None = None
) -> object:
    return paginate(selectors.redemptions(staff=actor(request), template_id=template_id), params)


# --- group-buy -----------------------------------------------------------------------------


class GroupBuyIn(StrictIn):
    name: str = Field(min_length=1, max_length=64)
    sku_id: int
    group_size: int = Field(ge=2, le=50)
    time_limit_minutes: int = Field(ge=5, le=7 * 24 * 60)
    group_price_fen: int = Field(ge=1, le=MAX_FEN)
    starts_at: datetime
    ends_at: datetime


class GroupBuyOut(Schema):
    id: int
    name: str
    sku_id: int
    group_size: int
    time_limit_minutes: int
    group_price_fen: int
    starts_at: datetime
    ends_at: datetime
    is_active: bool
    created_at: datetime


class GroupBuyPage(PageOut):
    items: list[GroupBuyOut]


class MemberOut(Schema):
    customer_id: int
    order_id: int
    is_leader: bool
    status: str
    refunded_fen: int
    paid_at: datetime | None


class TeamOut(Schema):
    id: int
    leader_id: int
    size: int
    status: str
    seats_taken: int
    paid_count: int
    expires_at: datetime
    closed_at: datetime | None
    members: list[MemberOut]

    @staticmethod
    def resolve_members(obj: object) -> object:
        return obj.members.all()  # type: ignore[attr-defined]


class TeamPage(PageOut):
    items: list[TeamOut]


@router.get("/groupbuys", response=GroupBuyPage)
def list_groupbuys(request: HttpRequest, params: Query[PageParams]) -> object:
    return paginate(selectors.groupbuy_campaigns(staff=actor(request)).order_by("-pk"), params)


@router.post("/groupbuys", response={201: GroupBuyOut})
def create_groupbuy(request: HttpRequest, payload: GroupBuyIn) -> Status[object]:
    staff = _manager(request)
    sku = Sku.objects.filter(pk=payload.sku_id).first()
    if sku is None:
        raise NotFound("sku not found")
    campaign = services.groupbuy_campaign_create(
        actor=staff, sku=sku, **payload.model_dump(exclude={"sku_id"})
    )
    return Status(201, campaign)


@router.get("/groupbuys/{groupbuy_id}", response=GroupBuyOut)
def get_groupbuy(request: HttpRequest, groupbuy_id: int) -> object:
    return selectors.access_groupbuy_campaign(actor(request), groupbuy_id)


@router.get("/groupbuys/{groupbuy_id}/teams", response=TeamPage)
def list_teams(request: HttpRequest, groupbuy_id: int, params: Query[PageParams]) -> object:
    campaign = selectors.access_groupbuy_campaign(actor(request), groupbuy_id)
    return paginate(selectors.groupbuy_teams(campaign=campaign), params)


# --- distribution --------------------------------------------------------------------------


class TierIn(StrictIn):
    min_sales_fen: int = Field(ge=1, le=10**12)
    rate_bp: int = Field(ge=0, le=10000)


class RuleIn(StrictIn):
    sharer_kind: Literal["staff", "agent"]
    rate_bp: int = Field(ge=0, le=10000)
    tiers: list[TierIn] = Field(default_factory=list, max_length=10)
    is_active: bool = True


class TierOut(Schema):
    min_sales_fen: int
    rate_bp: int


class RuleOut(Schema):
    sharer_kind: str
    rate_bp: int
    is_active: bool
    tiers: list[TierOut]

    @staticmethod
    def resolve_tiers(obj: object) -> object:
        return obj.tiers.all()  # type: ignore[attr-defined]


class EntryOut(Schema):
    id: int
    order_id: int
    kind: str
    sharer_kind: str
    staff_id: int | None
    agent_id: int | None
    base_fen: int
    amount_fen: int
    period: date | None
    at: datetime

    @staticmethod
    def resolve_order_id(obj: object) -> int:
        return obj.commission.order_id  # type: ignore[attr-defined]


class EntryPage(PageOut):
    items: list[EntryOut]


class StatementOut(Schema):
    period: date | None
    sharer_kind: str
    staff_id: int | None
    agent_id: int | None
    name: str
    accrued_fen: int
    reversed_fen: int
    net_fen: int
    orders: int


class SharerLinkIn(StrictIn):
    customer_id: int


class SharerLinkOut(Schema):
    customer_id: int
    code: str
    channel: str

    @staticmethod
    def resolve_channel(obj: object) -> str:
        return f"sharer:{obj.code}"  # type: ignore[attr-defined]


@router.get("/commission-rules", response=list[RuleOut])
def list_rules(request: HttpRequest) -> object:
    _manager(request)
    return selectors.commission_rules()


@router.put("/commission-rules", response=RuleOut)
def set_rule(request: HttpRequest, payload: RuleIn) -> object:
    _manager(request)
    return services.commission_rule_set(
        sharer_kind=payload.sharer_kind,
        rate_bp=payload.rate_bp,
        tiers=[tier.model_dump() for tier in payload.tiers],
        is_active=payload.is_active,
    )


@router.post("/sharer-links", response={201: SharerLinkOut})
def create_sharer_link(request: HttpRequest, payload: SharerLinkIn) -> Status[object]:
    """Make a customer an agent (代理): orders through the returned channel earn them the agent
    commission. Idempotent: a customer has one link."""
    staff = _manager(request)
    customer = access_customer(staff, payload.customer_id)
    return Status(201, services.sharer_link_ensure(customer=customer))


def _month(raw: str | None) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(f"{raw}-01")
    except ValueError:
        raise InvalidInput("period must be a month, YYYY-MM", code="invalid_period") from None


@router.get("/commissions", response=EntryPage)
def list_commissions(
    request: HttpRequest,
    params: Query[PageParams],
    period: str | None = None,
    staff_id: int | None = None,
) -> object:
    """The commission ledger: staff see their own (managers their department), promotion
    managers everyone's including customer agents'."""
    rows = selectors.commission_entries(
        staff=actor(request), period=_month(period), staff_id=staff_id
    )
    return paginate(rows, params)


@router.get("/commissions/statements", response=list[StatementOut])
def list_statements(request: HttpRequest, period: str | None = None) -> object:
    return selectors.commission_statements(staff=actor(request), period=_month(period))
