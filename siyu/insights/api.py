"""/api/v1/insights: churn (loss rates, deletions, reasons), the at-risk list, customer value."""

from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from django.http import HttpRequest
from django.utils import timezone
from ninja import Query, Router, Schema
from pydantic import Field

from siyu.accounts.permissions import Action, access_customer, require
from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.core.errors import InvalidInput, NotFound
from siyu.insights import selectors, services
from siyu.insights.models import CustomerScore
from siyu.insights.selectors import LossRow

router = Router(tags=["insights"])
MAX_DAYS = 366


class PeriodQuery(Schema):
    start: date | None = Field(None, description="first local day; default 29 days before end")
    end: date | None = Field(None, description="last local day (inclusive); default today")


def period(start: date | None, end: date | None) -> tuple[datetime, datetime]:
    """[start, end] local days as an aware [from, to) range; at most a year."""
    end = end or timezone.localdate()
    start = start or end - timedelta(days=29)
    if start > end or (end - start).days >= MAX_DAYS:
        raise InvalidInput("start must not be after end, and the period at most 366 days")
    zone = timezone.get_current_timezone()
    return (
        datetime.combine(start, time(), tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time(), tzinfo=zone),
    )


class LossOut(Schema):
    key: str = Field(..., description="staff id, or source kind:id ('-' = no source)")
    label: str
    base: int = Field(..., description="relations that existed during the period")
    by_customer: int = Field(..., description="customer deleted the member")
    by_staff: int = Field(..., description="member deleted the customer")
    rate: float | None = Field(..., description="(by_customer + by_staff) / base")
    customer_rate: float | None = Field(..., description="by_customer / base")


class LossReportOut(Schema):
    start: datetime
    end: datetime
    total: LossOut
    by_staff: list[LossOut]
    by_source: list[LossOut]
    reasons: dict[str, int] = Field(..., description="reason (written, else known code) → count")


def _loss(row: LossRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "label": row.label,
        "base": row.base,
        "by_customer": row.by_customer,
        "by_staff": row.by_staff,
        "rate": row.rate,
        "customer_rate": row.customer_rate,
    }


@router.get("/churn", response=LossReportOut, summary="Loss rates per member and per source")
def churn_report(request: HttpRequest, params: Query[PeriodQuery]) -> dict[str, Any]:
    start, end = period(params.start, params.end)
    report = selectors.loss_report(actor=actor(request), start=start, end=end)
    return {
        "start": report.start,
        "end": report.end,
        "total": _loss(report.total),
        "by_staff": [_loss(row) for row in report.by_staff],
        "by_source": [_loss(row) for row in report.by_source],
        "reasons": report.reasons,
    }


class ChurnRecordOut(Schema):
    id: int
    customer_id: int
    customer_name: str
    staff_id: int | None
    direction: Literal["customer", "staff"]
    source: str = Field(..., description="kind:id of the ended relation's source, '-' = none")
    deleted_at: datetime
    known_reason: str
    reason: str
    paid_fen: int

    @staticmethod
    def resolve_customer_name(obj: Any) -> str:
        return str(obj.customer.name)

    @staticmethod
    def resolve_source(obj: Any) -> str:
        return f"{obj.source_kind}:{obj.source_id}" if obj.source_kind else "-"


class ChurnRecordPage(PageOut):
    items: list[ChurnRecordOut]


class RecordsQuery(PeriodQuery, PageParams):
    direction: Literal["customer", "staff"] | None = None


@router.get("/churn/records", response=ChurnRecordPage, summary="Deletions, latest first")
def churn_records(request: HttpRequest, params: Query[RecordsQuery]) -> object:
    start, end = period(params.start, params.end)
    rows = selectors.churn_records(
        actor=actor(request), start=start, end=end, direction=params.direction
    )
    return paginate(rows, params)


class ReasonIn(StrictIn):
    reason: str = Field(..., min_length=1, max_length=200)


@router.post(
    "/churn/records/{churn_record_id}/reason",
    response=ChurnRecordOut,
    summary="Record why they left",
)
def churn_reason(request: HttpRequest, churn_record_id: int, payload: ReasonIn) -> object:
    return services.churn_reason_set(
        actor=actor(request), record_id=churn_record_id, reason=payload.reason, source="api"
    )


class ScoreOut(Schema):
    customer_id: int
    customer_name: str
    purchases: int
    paid_fen: int
    last_paid_at: datetime | None
    p_alive: float | None = Field(..., description="BG/NBD P(alive); null: never bought")
    p_engaged: float = Field(..., description="P(interacts in the next 30 days)")
    p_active: float
    expected_purchases: float | None = Field(..., description="in the next 30 days")
    clv_fen: int | None = Field(..., description="12 months, discounted 1 % a month")
    rfm_r: int | None
    rfm_f: int | None
    rfm_m: int | None
    segment: str
    expected_repurchase_at: datetime | None
    at_risk: bool
    at_risk_since: datetime | None
    scored_at: datetime

    @staticmethod
    def resolve_customer_name(obj: Any) -> str:
        return str(obj.customer.name)


class ScorePage(PageOut):
    items: list[ScoreOut]


@router.get("/at-risk", response=ScorePage, summary="Valuable customers likely to be lost")
def at_risk(request: HttpRequest, params: Query[PageParams]) -> object:
    return paginate(selectors.at_risk(actor=actor(request)), params)


class HistogramBin(Schema):
    from_fen: int
    to_fen: int
    customers: int


class ValueOut(Schema):
    buyers: int
    rfm_grid: list[list[int]] = Field(..., description="[recency score - 1][frequency score - 1]")
    segments: dict[str, int]
    clv_histogram: list[HistogramBin]
    top: list[ScoreOut]


@router.get("/value", response=ValueOut, summary="RFM grid, segments, CLV distribution")
def value(request: HttpRequest) -> dict[str, Any]:
    summary = selectors.value_summary(actor=actor(request))
    return {
        "buyers": summary.buyers,
        "rfm_grid": summary.grid,
        "segments": summary.segments,
        "clv_histogram": [
            {"from_fen": low, "to_fen": high, "customers": n}
            for low, high, n in summary.clv_histogram
        ],
        "top": summary.top,
    }


@router.get("/customers/{customer_id}", response=ScoreOut, summary="One customer's scores")
def customer_score(request: HttpRequest, customer_id: int) -> CustomerScore:
    staff = actor(request)
    customer = access_customer(staff, customer_id, Action.INSIGHTS_VIEW)
    score = CustomerScore.objects.filter(customer=customer).select_related("customer").first()
    if score is None:
        raise NotFound("this customer has not been scored yet")
    return score


class ModelOut(Schema):
    r: float | None
    alpha: float | None
    a: float | None
    b: float | None
    bgnbd_log_likelihood: float | None
    p: float | None
    q: float | None
    gamma: float | None
    gamma_gamma_log_likelihood: float | None
    customers: int
    buyers: int
    repeat_buyers: int
    half_life_days: float
    engagement_log_loss: float | None
    fit_error: str
    fitted_at: datetime


@router.get("/model", response=ModelOut, summary="The tenant's fitted parameters (days)")
def model(request: HttpRequest) -> object:
    require(actor(request), Action.INSIGHTS_VIEW)
    found = selectors.value_model()
    if found is None:
        raise NotFound("the models have not been fitted yet")
    return found
