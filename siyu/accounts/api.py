from datetime import datetime

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from siyu.accounts import selectors, services
from siyu.accounts.models import DataScope, Role
from siyu.accounts.permissions import access_staff_member, effective_scope
from siyu.api.auth import actor
from siyu.api.schemas import PageOut, PageParams, StrictIn, paginate

router = Router(tags=["org"])


class DepartmentOut(Schema):
    id: int
    wecom_id: int
    name: str
    parent_id: int | None
    order: int


class StaffOut(Schema):
    id: int
    userid: str
    name: str
    role: str
    data_scope: str
    status: str
    position: str
    main_department_id: int | None
    department_ids: list[int]

    @staticmethod
    def resolve_department_ids(obj: object) -> list[int]:
        return [dept.pk for dept in obj.departments.all()]  # type: ignore[attr-defined]

    @staticmethod
    def resolve_data_scope(obj: object) -> str:
        return effective_scope(obj)  # type: ignore[arg-type]


class StaffPage(PageOut):
    items: list[StaffOut]


class MeOut(Schema):
    staff: StaffOut
    tenant: str
    permissions: list[str]


class PermissionsIn(StrictIn):
    role: Role
    data_scope: DataScope | None = Field(None, description="empty = the role's default")


class TokenIn(StrictIn):
    name: str = Field(..., min_length=1, max_length=64)
    staff_id: int | None = None


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    staff_id: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreatedOut(Schema):
    token: str = Field(..., description="shown once; store it now")


class StaffQuery(PageParams):
    q: str = Field("", max_length=64)
    department_id: int | None = None


@router.get("/me", response=MeOut)
def me(request: HttpRequest) -> dict[str, object]:
    from siyu.accounts.permissions import ROLE_ACTIONS

    staff = actor(request)
    return {
        "staff": staff,
        "tenant": staff.tenant.slug,
        "permissions": sorted(ROLE_ACTIONS[staff.role]),
    }


@router.get("/departments", response=list[DepartmentOut])
def list_departments(request: HttpRequest) -> object:
    return selectors.department_list(actor=actor(request))


@router.get("/staff", response=StaffPage)
def list_staff(request: HttpRequest, params: Query[StaffQuery]) -> object:
    qs = selectors.staff_list(
        actor=actor(request), query=params.q, department_id=params.department_id
    ).prefetch_related("departments")
    return paginate(qs, params)


@router.get("/staff/{member_id}", response=StaffOut)
def get_staff(request: HttpRequest, member_id: int) -> object:
    return access_staff_member(actor(request), member_id)


@router.put("/staff/{member_id}/permissions", response=StaffOut)
def set_permissions(request: HttpRequest, member_id: int, payload: PermissionsIn) -> object:
    return services.staff_set_role(
        actor=actor(request),
        member_id=member_id,
        role=payload.role,
        data_scope=payload.data_scope or "",
    )


@router.get("/tokens", response=list[TokenOut])
def list_tokens(request: HttpRequest) -> object:
    return selectors.api_token_list(actor=actor(request))


@router.post("/tokens", response={201: TokenCreatedOut})
def create_token(request: HttpRequest, payload: TokenIn) -> Status[object]:
    raw = services.api_token_create(
        actor=actor(request), name=payload.name, staff_id=payload.staff_id
    )
    return Status(201, {"token": raw})


@router.delete("/tokens/{token_id}", response={204: None})
def revoke_token(request: HttpRequest, token_id: int) -> Status[object]:
    services.api_token_revoke(actor=actor(request), token_id=token_id)
    return Status(204, None)
