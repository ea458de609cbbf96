"""/api/v1/analytics: the channel report, its export, and spend entries."""

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Query, Router, Schema, Status
from pydantic import Field

from siyu.analytics import exports, selectors, services
from siyu.analytics.selectors import Line, Report
from siyu.analytics.sources import SourceKey, parse_source
from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate

router = Router(tags=["analytics"])

# kind:id as in a WeCom state (ch:42, fx:7), or "-" for adds without a Siyu state.
SourceText = Annotated[str, Field(pattern=r"^(-|[a-z]{1,4}:[A-Za-z0-9_-]{1,30})$")]


class ReportQuery(Schema):
    start: date | None = Field(None, description="first local day; default 29 days before end")
    end: date | None = Field(None, description="last local day (inclusive); default today")
    kind: str | None = Field(
        None, pattern=r"^(-|[a-z]{0,4})$", description="only this kind: ch, fx, … ('-' = no state)"
    )
    source: list[SourceText] = Field(
        default_factory=list,
        max_length=20,
        description="compare only these sources: kind:id (e.g. ch:42), '-' for no source",
    )

    def range(self) -> tuple[date, date]:
        end = self.end or timezone.localdate()
        return self.start or end - timedelta(days=29), end

    def kind_filter(self) -> str | None:
        return kind_filter(self.kind)

    def sources(self) -> list[SourceKey] | None:
        return [parse_source(item) for item in self.source] or None


class ExportIn(StrictIn):
    start: date
    end: date
    kind: str | None = Field(None, pattern=r"^(-|[a-z]{0,4})$")
    source: list[SourceText] = Field(default_factory=list, max_length=20)
    format: Literal["csv", "xlsx"] = "csv"


def kind_filter(kind: str | None) -> str | None:
    """None or "" = every kind; "-" = the adds without a Siyu state."""
    if not kind:
        return None
    return "" if kind == "-" else kind


class LineOut(Schema):
    source: str = Field(..., description="kind:id, or '-' for adds without a Siyu state")
    kind: str
    label: str
    day: date | None
    scans: int | None = Field(..., description="null: WeCom reports no scans for this source")
    adds: int
    deletes: int
    net_adds: int
    cohort: int = Field(..., description="customers added (relations) — the cohort base")
    retention_1: float | None
    retention_7: float | None
    retention_30: float | None
    converted: int
    conversion_rate: float | None
    gmv_fen: int
    spend_fen: int | None = Field(..., description="null: not visible in your data scope")
    cost_per_customer_fen: float | None
    roi: float | None = Field(..., description="(GMV − spend) / spend; null without spend")


class SeriesOut(Schema):
    source: str
    label: str
    days: list[LineOut]


class ReportOut(Schema):
    start: date
    end: date
    gmv_available: bool
    cost_visible: bool
    scans_known: bool
    total: LineOut
    rows: list[LineOut]
    series: list[SeriesOut]


class SpendIn(StrictIn):
    source: str = Field(..., pattern=r"^[a-z]{1,4}:[A-Za-z0-9_-]{1,30}$", examples=["ch:42"])
    start: date
    end: date
    amount_fen: int = Field(..., ge=0, le=services.MAX_SPEND_FEN, strict=True)
    note: str = Field("", max_length=200)


class SpendOut(Schema):
    id: int
    source: str
    start: date
    end: date
    amount_fen: int
    note: str
    created_by_id: int | None
    created_at: datetime

    @staticmethod
    def resolve_source(obj: Any) -> str:
        return f"{obj.source_kind}:{obj.source_id}"


def line_out(line: Line) -> dict[str, Any]:
    return {
        "source": line.key,
        "kind": line.source[0],
        "label": line.label,
        "day": line.day,
        "scans": line.scans,
        "adds": line.counts.adds,
        "deletes": line.counts.deletes,
        "net_adds": line.net_adds,
        "cohort": line.counts.cohort,
        "retention_1": line.retention_1,
        "retention_7": line.retention_7,
        "retention_30": line.retention_30,
        "converted": line.counts.converted,
        "conversion_rate": line.conversion_rate,
        "gmv_fen": line.counts.gmv_fen,
        "spend_fen": line.spend_fen,
        "cost_per_customer_fen": line.cost_per_customer_fen,
        "roi": line.roi,
    }


def report_out(report: Report) -> dict[str, Any]:
    return {
        "start": report.start,
        "end": report.end,
        "gmv_available": report.gmv_available,
        "cost_visible": report.cost_visible,
        "scans_known": report.scans_known,
        "total": line_out(report.total),
        "rows": [line_out(row) for row in report.rows],
        "series": [
            {
                "source": row.key,
                "label": row.label,
                "days": [line_out(line) for line in report.daily[row.source]],
            }
            for row in report.rows
        ],
    }


@router.get("/channels", response=ReportOut, summary="Per source totals and daily series")
def channel_report(request: HttpRequest, params: Query[ReportQuery]) -> dict[str, Any]:
    start, end = params.range()
    report = selectors.source_report(
        actor=actor(request),
        start=start,
        end=end,
        kind=params.kind_filter(),
        sources=params.sources(),
    )
    return report_out(report)


@router.post("/channels/export", summary="The channel report as CSV or xlsx (audited)")
def channel_export(request: HttpRequest, payload: ExportIn) -> HttpResponse:
    file = exports.report_export(
        actor=actor(request),
        start=payload.start,
        end=payload.end,
        kind=kind_filter(payload.kind),
        sources=[parse_source(item) for item in payload.source] or None,
        file_format=payload.format,
    )
    return download(file)


def download(file: exports.ExportFile) -> HttpResponse:
    response = HttpResponse(file.content, content_type=file.content_type)
    response["Content-Disposition"] = f'attachment; filename="{file.file_name}"'
    return response


class SpendPage(PageOut):
    items: list[SpendOut]


@router.get("/spend", response=SpendPage, summary="Spend entries, latest period first")
def list_spend(request: HttpRequest, params: Query[PageParams]) -> object:
    return paginate(selectors.spend_list(actor=actor(request)), params)


@router.post("/spend", response={201: SpendOut})
def create_spend(request: HttpRequest, payload: SpendIn) -> Status[object]:
    kind, source_id = parse_source(payload.source)
    spend = services.spend_create(
        actor=actor(request),
        source_kind=kind,
        source_id=source_id,
        start=payload.start,
        end=payload.end,
        amount_fen=payload.amount_fen,
        note=payload.note,
    )
    return Status(201, spend)


@router.delete("/spend/{spend_id}", response={204: None})
def delete_spend(request: HttpRequest, spend_id: int) -> Status[object]:
    services.spend_delete(actor=actor(request), spend_id=spend_id)
    return Status(204, None)
