"""/api/v1/dashboards: panel data (JSON per panel), panel exports, and goals with their PDCA
log."""

from datetime import date, datetime
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema, Status
from pydantic import Field

from siyu.accounts.permissions import Action, require
from siyu.analytics.api import download
from siyu.api.auth import actor
from siyu.api.schemas import StrictIn
from siyu.dashboards import exports, goals, selectors, services
from siyu.dashboards.selectors import Filters, Panel

router = Router(tags=["dashboards"])

PanelKey = Literal[
    "assets",
    "stages",
    "funnel",
    "staff",
    "channels",
    "content",
    "masssend",
    "sop",
    "cohort",
    "accounts",
    "hot_leads",
    "repurchase",
    "slipping",
]


class PanelQuery(Schema):
    start: date | None = Field(None, description="first local day; default 29 days before end")
    end: date | None = Field(None, description="last local day (inclusive); default today")
    department: int | None = Field(None, description="only this department (and below)")
    channel: str | None = Field(
        None,
        pattern=r"^(-|[a-z]{1,4}|[a-z]{1,4}:[A-Za-z0-9_-]{1,30})$",
        description="a source kind (ch, fx), one source (ch:42), or '-' (no Siyu state)",
    )
    grain: Literal["week", "month"] = Field("week", description="cohort panel: add week/month")

    def filters(self) -> Filters:
        return selectors.parse_filters(
            start=self.start, end=self.end, department=self.department, channel=self.channel
        )


class ExportQuery(PanelQuery):
    format: Literal["csv", "xlsx"] = "csv"


class ColumnOut(Schema):
    key: str
    label: str
    unit: str = Field(..., description="'fen' (money in 分), '%' (a ratio 0–1), or ''")


class PanelOut(Schema):
    key: str
    title: str
    chart: str
    available: bool = Field(..., description="false: the app feeding it is not installed")
    note: str
    columns: list[ColumnOut]
    rows: list[list[Any]]
    extra: dict[str, Any]


class DashboardOut(Schema):
    kind: str = Field(..., description="boss, operations, manager or staff")
    panels: list[str]


def panel_out(found: Panel) -> dict[str, Any]:
    return {
        "key": found.key,
        "title": found.title,
        "chart": found.chart,
        "available": found.available,
        "note": found.note,
        "columns": [vars(c) for c in found.columns],
        "rows": found.rows,
        "extra": found.extra,
    }


@router.get("", response=DashboardOut, summary="Which dashboard (and panels) the caller gets")
def dashboard(request: HttpRequest) -> dict[str, Any]:
    kind = selectors.dashboard_kind(actor(request))
    return {"kind": kind, "panels": list(selectors.ROLE_PANELS[kind])}


@router.get("/panels/{key}", response=PanelOut, summary="One panel's numbers, in scope")
def panel_data(request: HttpRequest, key: PanelKey, params: Query[PanelQuery]) -> dict[str, Any]:
    found = selectors.panel(actor(request), key, params.filters(), grain=params.grain)
    return panel_out(found)


@router.get("/panels/{key}/export", summary="One panel's numbers as CSV or xlsx (audited)")
def panel_export(request: HttpRequest, key: PanelKey, params: Query[ExportQuery]) -> HttpResponse:
    file = exports.panel_export(
        actor=actor(request),
        key=key,
        filters=params.filters(),
        file_format=params.format,
        grain=params.grain,
    )
    return download(file)


class GoalIn(StrictIn):
    name: str = Field(..., min_length=1, max_length=100)
    metric: str = Field(..., description="a key of GET /dashboards/metrics")
    target_kind: Literal["absolute", "relative"]
    target_value: float = Field(..., description="absolute: the value; relative: % over baseline")
    start: date
    deadline: date
    owner_id: int
    department_id: int | None = None
    window_days: int = Field(30, ge=1, le=366)


class LogIn(StrictIn):
    phase: Literal["plan", "do", "check", "act"]
    note: str = Field(..., min_length=1, max_length=2000)


class LogOut(Schema):
    id: int
    phase: str
    note: str
    author_id: int | None
    created_at: datetime


class GoalOut(Schema):
    id: int
    name: str
    metric: str
    department_id: int | None
    owner_id: int
    window_days: int
    baseline: float
    target_kind: str
    target_value: float
    target: float
    start: date
    deadline: date
    current: float | None
    progress: float | None = Field(..., description="(current − baseline) / (target − baseline)")
    pace: float = Field(..., description="share of the goal's time elapsed (linear plan)")
    forecast: float | None = Field(..., description="least-squares trend at the deadline")
    on_track: bool | None
    logs: list[LogOut]


class MetricOut(Schema):
    key: str
    label: str
    unit: str


def goal_out(goal: Any) -> dict[str, Any]:
    status = goals.goal_status(goal)
    return {
        "id": goal.pk,
        "name": goal.name,
        "metric": goal.metric,
        "department_id": goal.department_id,
        "owner_id": goal.owner_id,
        "window_days": goal.window_days,
        "baseline": goal.baseline,
        "target_kind": goal.target_kind,
        "target_value": goal.target_input,
        "target": goal.target,
        "start": goal.start,
        "deadline": goal.deadline,
        "current": status.current,
        "progress": status.progress,
        "pace": status.pace,
        "forecast": status.forecast,
        "on_track": status.on_track,
        "logs": list(goal.logs.all()),
    }


@router.get("/metrics", response=list[MetricOut], summary="Metrics a goal can be set on")
def metric_list(request: HttpRequest) -> list[dict[str, str]]:
    require(actor(request), Action.DASHBOARD_VIEW)
    return [{"key": m.key, "label": str(m.label), "unit": m.unit} for m in goals.METRICS.values()]


@router.get("/goals", response=list[GoalOut], summary="Goals in scope with progress and forecast")
def goal_list(request: HttpRequest) -> list[dict[str, Any]]:
    return [goal_out(goal) for goal in goals.goal_list(actor=actor(request))[:100]]


@router.post("/goals", response={201: GoalOut})
def goal_create(request: HttpRequest, payload: GoalIn) -> Status[object]:
    goal = services.goal_create(actor=actor(request), **payload.dict())
    return Status(201, goal_out(goal))


@router.get("/goals/{goal_id}", response=GoalOut)
def goal_get(request: HttpRequest, goal_id: int) -> dict[str, Any]:
    return goal_out(goals.goal_get(actor=actor(request), goal_id=goal_id))


@router.delete("/goals/{goal_id}", response={204: None})
def goal_delete(request: HttpRequest, goal_id: int) -> Status[object]:
    member = actor(request)
    services.goal_delete(actor=member, goal=goals.goal_get(actor=member, goal_id=goal_id))
    return Status(204, None)


@router.post("/goals/{goal_id}/logs", response={201: LogOut}, summary="Add a PDCA log entry")
def goal_log(request: HttpRequest, goal_id: int, payload: LogIn) -> Status[object]:
    member = actor(request)
    goal = goals.goal_get(actor=member, goal_id=goal_id)
    return Status(201, services.goal_log_add(actor=member, goal=goal, **payload.dict()))
