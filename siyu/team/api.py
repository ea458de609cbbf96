"""/api/v1/team: account assets (lifecycle, inventory, hand-back) and team performance."""

from datetime import date, datetime

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate
from siyu.core.errors import NotFound
from siyu.team import selectors, services
from siyu.team.models import AssetStage

router = Router(tags=["team"])


class AssetOut(Schema):
    id: int
    staff_id: int
    userid: str
    name: str
    account_kind: str
    stage: str
    holder: str
    note: str
    friends: int
    stage_changed_at: datetime | None
    last_audited_at: datetime | None

    @staticmethod
    def resolve_userid(obj: object) -> str:
        return obj.staff.userid  # type: ignore[attr-defined]

    @staticmethod
    def resolve_name(obj: object) -> str:
        return obj.staff.name  # type: ignore[attr-defined]

    @staticmethod
    def resolve_account_kind(obj: object) -> str:
        return obj.staff.account_kind  # type: ignore[attr-defined]


class AssetPage(PageOut):
    items: list[AssetOut]


class AssetQuery(PageParams):
    stage: AssetStage | None = None


class AssetIn(StrictIn):
    holder: str | None = Field(None, max_length=services.HOLDER_MAX)
    note: str | None = Field(None, max_length=services.NOTE_MAX)


class StageIn(StrictIn):
    stage: AssetStage
    note: str = Field("", max_length=services.NOTE_MAX)


class HandBackIn(StrictIn):
    successor_id: int
    note: str = Field("", max_length=services.NOTE_MAX)


class HandBackOut(Schema):
    asset: AssetOut
    transfer_job_ids: list[int]


class RunIn(StrictIn):
    name: str = Field(min_length=1, max_length=64)


class RunOut(Schema):
    id: int
    name: str
    created_at: datetime
    closed_at: datetime | None


class ItemOut(Schema):
    id: int
    asset_id: int
    name: str
    friends_recorded: int
    tagged_share: float
    holder_confirmed: bool | None
    friends_counted: int | None
    data_backed_up: bool | None
    note: str
    checked_at: datetime | None
    passed: bool


class RunDetailOut(RunOut):
    items: list[ItemOut]


class CheckIn(StrictIn):
    holder_confirmed: bool
    friends_counted: int = Field(ge=0, le=1_000_000)
    data_backed_up: bool
    note: str = Field("", max_length=services.NOTE_MAX)


class PeriodQuery(Schema):
    start: date | None = Field(None, description="default: the first of the end's month")
    end: date | None = Field(None, description="inclusive; default: today")
    department_id: int | None = None


class MemberOut(Schema):
    staff_id: int
    name: str
    gmv_fen: int
    orders: int
    refunds_fen: int
    commission_fen: int
    adds: int
    deletes: int
    net_adds: int
    tasks_due: int
    tasks_on_time: int
    new_customers_tagged: int
    moments: int
    grade: str
    checks: dict[str, bool]


class HonourOut(Schema):
    title: str
    staff_id: int
    name: str


class PerformanceOut(Schema):
    start: date
    end: date
    scheme: str | None
    members: list[MemberOut]
    honours: list[HonourOut]
    gmv_fen: int
    commission_fen: int


class TierIn(StrictIn):
    from_fen: int = Field(ge=0)
    rate_bp: int = Field(ge=0, le=services.RATE_MAX_BP)


class SchemeIn(StrictIn):
    name: str = Field(min_length=1, max_length=64)
    tiers: list[TierIn] = Field(min_length=1, max_length=services.TIERS_MAX)


class SchemeOut(Schema):
    id: int
    name: str
    tiers: list[dict[str, int]]
    active: bool


class TargetsIn(StrictIn):
    task_on_time_pct: int = Field(ge=0, le=100)
    tagged_pct: int = Field(ge=0, le=100)
    moments_per_day: float = Field(ge=0, le=50)


class TargetsOut(Schema):
    task_on_time_pct: int
    tagged_pct: int
    moments_per_day: float


def _asset(request: HttpRequest, asset_id: int) -> object:
    return selectors.asset_detail(actor=actor(request), asset_id=asset_id)


@router.get("/assets", response=AssetPage)
def list_assets(request: HttpRequest, params: Query[AssetQuery]) -> object:
    """Every WeCom account in scope as an asset: stage, holder, function and friends."""
    qs = selectors.asset_list(actor=actor(request), stage=params.stage or "")
    return paginate(qs, params)


@router.patch("/assets/{asset_id}", response=AssetOut)
def update_asset(request: HttpRequest, asset_id: int, payload: AssetIn) -> object:
    services.asset_update(
        actor=actor(request), asset_id=asset_id, holder=payload.holder, note=payload.note
    )
    return _asset(request, asset_id)


@router.post("/assets/{asset_id}/stage", response=AssetOut)
def set_stage(request: HttpRequest, asset_id: int, payload: StageIn) -> object:
    services.asset_stage_set(
        actor=actor(request), asset_id=asset_id, stage=payload.stage, note=payload.note
    )
    return _asset(request, asset_id)


@router.post("/assets/{asset_id}/hand-back", response=HandBackOut)
def hand_back(request: HttpRequest, asset_id: int, payload: HandBackIn) -> object:
    """还号: the account's customers go to the successor through WeCom's inheritance."""
    jobs = services.asset_hand_back(
        actor=actor(request),
        asset_id=asset_id,
        successor_id=payload.successor_id,
        note=payload.note,
    )
    return {"asset": _asset(request, asset_id), "transfer_job_ids": [j.pk for j in jobs]}


def _run_detail(request: HttpRequest, run_id: int) -> dict[str, object]:
    run = selectors.inventory_runs(actor=actor(request)).filter(pk=run_id).first()
    if run is None:
        raise NotFound("inventory not found")
    items = []
    for row in selectors.inventory_items(actor=actor(request), run_id=run_id):
        item = row["item"]
        items.append(
            {
                "id": item.pk,
                "asset_id": item.asset_id,
                "name": item.asset.staff.name,
                "friends_recorded": item.friends_recorded,
                "tagged_share": item.tagged_share,
                "holder_confirmed": item.holder_confirmed,
                "friends_counted": item.friends_counted,
                "data_backed_up": item.data_backed_up,
                "note": item.note,
                "checked_at": item.checked_at,
                "passed": row["passed"],
            }
        )
    return {
        "id": run.pk,
        "name": run.name,
        "created_at": run.created_at,
        "closed_at": run.closed_at,
        "items": items,
    }


@router.post("/inventories", response={201: RunDetailOut})
def start_inventory(request: HttpRequest, payload: RunIn) -> Status[object]:
    """盘号: a checklist of every account in service."""
    run = services.inventory_start(actor=actor(request), name=payload.name)
    return Status(201, _run_detail(request, run.pk))


@router.get("/inventories/{run_id}", response=RunDetailOut)
def get_inventory(request: HttpRequest, run_id: int) -> object:
    return _run_detail(request, run_id)


@router.post("/inventories/{run_id}/items/{inventory_item_id}", response=RunDetailOut)
def check_item(
    request: HttpRequest, run_id: int, inventory_item_id: int, payload: CheckIn
) -> object:
    _run_detail(request, run_id)  # the run is visible
    services.inventory_check(actor=actor(request), item_id=inventory_item_id, **payload.dict())
    return _run_detail(request, run_id)


@router.post("/inventories/{run_id}/close", response=RunDetailOut)
def close_inventory(request: HttpRequest, run_id: int) -> object:
    services.inventory_close(actor=actor(request), run_id=run_id)
    return _run_detail(request, run_id)


@router.get("/performance", response=PerformanceOut)
def get_performance(request: HttpRequest, params: Query[PeriodQuery]) -> object:
    """GMV, commission, adds, quality checks and the 2-7-1 grade of each member in scope."""
    first, last = selectors.period_clean(params.start, params.end)
    start, end = selectors.period_bounds(first, last)
    result = selectors.performance(
        actor=actor(request), start=start, end=end, department_id=params.department_id
    )
    return {
        "start": first,
        "end": last,
        "scheme": result["scheme"].name if result["scheme"] else None,
        "members": [
            {**vars(r), "staff_id": r.staff.pk, "name": r.staff.name, "net_adds": r.net_adds}
            for r in result["members"]
        ],
        "honours": [
            {"title": str(h["title"]), "staff_id": h["staff"].pk, "name": h["staff"].name}
            for h in result["honours"]
        ],
        "gmv_fen": result["totals"]["gmv_fen"],
        "commission_fen": result["totals"]["commission_fen"],
    }


@router.post("/commission-schemes", response={201: SchemeOut})
def set_scheme(request: HttpRequest, payload: SchemeIn) -> Status[object]:
    """A progressive scheme (each tier's rate on the sales inside it); replaces the active one."""
    scheme = services.commission_scheme_set(
        actor=actor(request), name=payload.name, tiers=[t.dict() for t in payload.tiers]
    )
    return Status(201, scheme)


@router.put("/quality-targets", response=TargetsOut)
def set_targets(request: HttpRequest, payload: TargetsIn) -> object:
    return services.quality_targets_set(actor=actor(request), **payload.dict())
